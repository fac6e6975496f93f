package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// TestMboxRoundTrip exports a Dovecot account to mbox files and imports
// them into another Dovecot: bytes, flags, keywords and dates survive,
// re-runs copy nothing, and the import can be undone.
func TestMboxRoundTrip(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 80, 1<<10, 20<<10, 61)
	seed(t, p.src, "Archive/2021", 15, 1<<10, 4<<10, 62)
	dir := filepath.Join(t.TempDir(), "export")
	export := []string{"migrate", "--from", "imap+plain://alice@" + p.src.Addr(), "--to", "mbox:" + dir,
		"--checkpoint", filepath.Join(t.TempDir(), "export.db"), "--output", "json"}
	// A dry run of the export counts everything and creates nothing, not
	// even the directory.
	dryReport := filepath.Join(t.TempDir(), "dry.json")
	if r := runBinary(t, p.env, append(slices.Clone(export), "--dry-run", "--report", dryReport)...); r.code != 0 {
		t.Fatalf("dry-run export exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the dry run created %s", dir)
	}
	want := len(p.src.Messages(t, "alice", "INBOX")) + len(p.src.Messages(t, "alice", "Archive/2021"))
	if n := readReport(t, dryReport).Accounts[0].Totals().New; n != want || want == 0 {
		t.Errorf("the dry run would copy %d messages, want %d", n, want)
	}
	if r := runBinary(t, p.env, export...); r.code != 0 {
		t.Fatalf("export exit %d\n%s", r.code, r.stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("nothing exported into %s", dir)
	}
	if r := runBinary(t, p.env, export...); r.code != 0 || strings.Contains(r.stdout, `"new":1`) {
		t.Errorf("export re-run: exit %d\n%s", r.code, r.stdout)
	}

	importCkpt := filepath.Join(t.TempDir(), "import.db")
	imp := []string{"migrate", "--from", "mbox:" + dir, "--to", "imap+plain://alice@" + p.dst.Addr(), "--checkpoint", importCkpt, "--output", "json"}
	before := snapshotFiles(t, dir)
	if r := runBinary(t, p.env, imp...); r.code != 0 {
		t.Fatalf("import exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	checkSame(t, p, "INBOX", "Archive/2021")
	if r := runBinary(t, p.env, imp...); r.code != 0 {
		t.Fatalf("import re-run exit %d", r.code)
	}
	checkSame(t, p, "INBOX", "Archive/2021")
	if !maps2Equal(before, snapshotFiles(t, dir)) {
		t.Errorf("importing from mbox changed the mbox files (a source must never change)")
	}

	// Undo the import: the destination is empty again.
	undo := []string{"undo", "--from", "mbox:" + dir, "--to", "imap+plain://alice@" + p.dst.Addr(), "--checkpoint", importCkpt, "--yes"}
	if r := runBinary(t, p.env, undo...); r.code != 0 {
		t.Fatalf("undo exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := len(p.dst.Messages(t, "alice", "INBOX")); n != 0 {
		t.Errorf("INBOX holds %d messages after undoing the import", n)
	}
	if slices.Contains(p.dst.Mailboxes(t, "alice"), "Archive/2021") {
		t.Errorf("Archive/2021, created by the import, survived its undo")
	}
}

func snapshotFiles(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			out[path] = string(b)
		}
		return nil
	})
	return out
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	return !slices.ContainsFunc(keys, func(k string) bool { return a[k] != b[k] })
}
