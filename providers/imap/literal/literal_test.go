package literal

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestTrailing(t *testing.T) {
	cases := []struct {
		line string
		n    int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {12}\r\n", 12, true},
		{"* 1 FETCH (BODY[] ~{7}\r\n", 7, true},
		{"A1 APPEND INBOX {3+}\r\n", 3, true},
		{"* 1 FETCH (FLAGS (\\Seen))\r\n", 0, false},
		{"* OK {x}\r\n", 0, false},
		{"* OK }\r\n", 0, false},
	}
	for _, c := range cases {
		if n, ok := Trailing(c.line); n != c.n || ok != c.ok {
			t.Errorf("Trailing(%q) = %d, %v, want %d, %v", c.line, n, ok, c.n, c.ok)
		}
	}
}

func TestLiteral8Reader(t *testing.T) {
	in := "* 1 FETCH (UID 5 BODY[] ~{6}\r\na\x00~{1}\n)\r\n* 2 FETCH (BODY[] {2}\r\nab)\r\nA1 OK done\r\n"
	want := "* 1 FETCH (UID 5 BODY[] {6}\r\na\x00~{1}\n)\r\n* 2 FETCH (BODY[] {2}\r\nab)\r\nA1 OK done\r\n"
	// 16 bytes: the first line comes in two reads, and its end is still
	// seen.
	for _, size := range []int{16, 4096} {
		got, err := io.ReadAll(Literal8Reader(bufio.NewReaderSize(strings.NewReader(in), size)))
		if err != nil || string(got) != want {
			t.Errorf("buffer %d: read %q, %v; want %q", size, got, err, want)
		}
	}
}
