package main

import (
	"strings"
	"testing"
)

// TestDemo runs the README's first command as a user would and checks it
// tells the whole story and succeeds.
func TestDemo(t *testing.T) {
	r := runBinary(t, nil, "demo")
	if r.code != 0 {
		t.Fatalf("demo exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"killed:", "TOTAL", "330", "identical", "copied nothing", "Demo finished"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("demo wrote to stderr:\n%s", r.stderr)
	}
}
