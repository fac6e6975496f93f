package mbox_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
)

// TestWarnings: the store tells migrate its problems as printable lines
// naming the file and the place.
func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.mbox")
	write(t, path, "junk\n"+from1+"Subject: 1\n\nbody 1\n"+from2+"Subject: 2\n\nbody 2\n\n")
	write(t, filepath.Join(dir, "caf\xe9.mbox"), from1+"Subject: 3\n\nbody 3\n\n")
	st := openStore(t, dir, mbox.Options{ReadOnly: true})
	var w providers.Warner = st
	if got := w.Warnings(); got != nil {
		t.Errorf("warnings before anything was read: %q", got)
	}
	read(t, st, "x")
	want := []string{
		filepath.Join(dir, `caf\xe9.mbox`) + `: file name is not UTF-8; mailbox named "caf%E9"`,
		path + ":1 (byte 0): 5 bytes before the first From_ line skipped",
		path + ":6 (byte 68): From_ line without a blank line before it; taken as the start of a new message",
	}
	if got := w.Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings\n got %q\nwant %q", got, want)
	}
}
