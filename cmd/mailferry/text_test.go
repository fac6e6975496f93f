package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFitTable: a table wider than the terminal has its text columns
// shortened first, then the headers of number columns; numbers are never
// cut; without a width nothing is.
func TestFitTable(t *testing.T) {
	rows := "USER\tDESTINATION\tSTATE\tMAILBOXES\tCOPIED\tDUPLICATE\tFAILED\t\n" +
		"a.very.long.user.name@example.com\tanother.long.name@new.example.com\tcopied\t12\t123456\t0\t1\t\n" +
		"TOTAL\t\t1 copied\t12\t123456\t0\t1\t\n"
	for _, cols := range []int{0, 80, 60} {
		var out bytes.Buffer
		tw := newTable(&cleanWriter{w: &out, cols: cols})
		fmt.Fprint(tw, rows)
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d columns: %d lines:\n%s", cols, len(lines), out.String())
		}
		for _, l := range lines {
			if cols > 0 && utf8.RuneCountInString(l) > cols {
				t.Errorf("%d columns: line of %d: %q", cols, utf8.RuneCountInString(l), l)
			}
		}
		if !strings.Contains(lines[1], "123456") || !strings.Contains(lines[2], "123456") {
			t.Errorf("%d columns: a number was cut:\n%s", cols, out.String())
		}
		if cols == 0 && !strings.Contains(lines[1], "a.very.long.user.name@example.com") {
			t.Errorf("no width: a name was cut:\n%s", out.String())
		}
	}
}

// TestCleanWriter: control bytes never reach the output; newlines do.
func TestCleanWriter(t *testing.T) {
	var out bytes.Buffer
	fmt.Fprintf(&cleanWriter{w: &out}, "u1\x00u1\tx\x1b[31m\r\n")
	if got, want := out.String(), `u1\x00u1 x\x1b[31m\x0d`+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := accountLabel("reverse\x00ann\x00bob"); got != "way back of ann -> bob" {
		t.Errorf("label %q", got)
	}
}
