package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunnerStopsOnFatal: a fatal error of a helper ends the run with that
// error, and the cleanups registered before it still run.
func TestRunnerStopsOnFatal(t *testing.T) {
	var log bytes.Buffer
	r := &runner{log: &log}
	cleaned := false
	r.Cleanup(func() { cleaned = true })
	dir := r.TempDir()
	_, err := r.do(func() string {
		r.Logf("about to fail")
		r.Fatalf("dovecot did not start: %s", "port in use")
		return "unreachable"
	})
	r.finish()
	if err == nil || !strings.Contains(err.Error(), "port in use") {
		t.Errorf("do returned %v, want the fatal error", err)
	}
	if !cleaned {
		t.Errorf("cleanups did not run")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s survived the cleanups", dir)
	}
	if !strings.Contains(log.String(), "about to fail") {
		t.Errorf("log lacks the helper's line: %q", log.String())
	}
}

func TestReplaceSection(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.md")
	os.WriteFile(p, []byte("head\n<!-- peers:begin -->\nold\n<!-- peers:end -->\ntail\n"), 0o600)
	if err := replaceSection(p, "peers", "new table\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "head\n<!-- peers:begin -->\nnew table\n<!-- peers:end -->\ntail\n" {
		t.Errorf("got %q", b)
	}
	if err := replaceSection(p, "other", "x"); err == nil {
		t.Errorf("a missing section was not an error")
	}
}
