package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
	"github.com/mailferry/mailferry/providers/maildir"
)

// maildirBoxes are the mailboxes the maildir tests seed: nested, non-ASCII,
// and one with a '.' that Maildir++ must escape.
var maildirBoxes = []string{"INBOX", "Archive/2021", "Entwürfe/日本", "v1.2 release"}

func seedMaildirBoxes(t *testing.T, d *imaptest.Dovecot) {
	t.Helper()
	seed(t, d, "INBOX", 60, 1<<10, 20<<10, 71)
	seed(t, d, "Archive/2021", 12, 1<<10, 4<<10, 72)
	seed(t, d, "Entwürfe/日本", 5, 1<<10, 4<<10, 73)
	seed(t, d, "v1.2 release", 5, 1<<10, 4<<10, 74)
}

// servableDir makes a directory a Dovecot running as the mail user can
// reach (t.TempDir's parents are not).
func servableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mfmaildir")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestMaildirRoundTrip exports a Dovecot account to a maildir tree, in
// each layout, and imports it into another Dovecot: doveadm finds the
// same bytes, flags, keywords and dates on both; a re-run copies nothing;
// importing leaves the tree as it was; a Dovecot pointed at the tree
// serves it exactly, with the UIDs and UIDVALIDITY mailferry recorded; and
// undo of the export empties the tree again.
func TestMaildirRoundTrip(t *testing.T) {
	for _, layout := range []struct {
		name, opts string
		fs         bool
	}{{"Maildir++", "", false}, {"fs", ":LAYOUT=fs", true}} {
		t.Run(layout.name, func(t *testing.T) {
			p := newPair(t, imaptest.DovecotOptions{})
			seedMaildirBoxes(t, p.src)
			tree := filepath.Join(servableDir(t), "alice")
			to := "maildir:" + tree + layout.opts
			exportCkpt := filepath.Join(t.TempDir(), "export.db")
			export := []string{"migrate", "--from", "imap+plain://alice@" + p.src.Addr(), "--to", to,
				"--checkpoint", exportCkpt, "--output", "json"}

			dryReport := filepath.Join(t.TempDir(), "dry.json")
			if r := runBinary(t, p.env, append(slices.Clone(export), "--dry-run", "--report", dryReport)...); r.code != 0 {
				t.Fatalf("dry-run export exit %d\n%s", r.code, r.stderr)
			}
			if _, err := os.Stat(tree); err == nil {
				t.Errorf("the dry run created %s", tree)
			}
			want := 0
			for _, b := range maildirBoxes {
				want += len(p.src.Messages(t, "alice", b))
			}
			if n := readReport(t, dryReport).Accounts[0].Totals().New; n != want || want == 0 {
				t.Errorf("the dry run would copy %d messages, want %d", n, want)
			}

			if r := runBinary(t, p.env, export...); r.code != 0 {
				t.Fatalf("export exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			exported := filepath.Join(t.TempDir(), "export-rerun.json")
			if r := runBinary(t, p.env, append(slices.Clone(export), "--report", exported)...); r.code != 0 {
				t.Fatalf("export re-run exit %d\n%s", r.code, r.stderr)
			}
			if n := readReport(t, exported).Accounts[0].Totals().New; n != 0 {
				t.Errorf("export re-run copied %d messages, want 0", n)
			}

			before := treeSnapshot(t, tree)
			imp := []string{"migrate", "--from", to, "--to", "imap+plain://alice@" + p.dst.Addr(),
				"--checkpoint", filepath.Join(t.TempDir(), "import.db"), "--output", "json"}
			if r := runBinary(t, p.env, imp...); r.code != 0 {
				t.Fatalf("import exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			checkSame(t, p, maildirBoxes...)
			if r := runBinary(t, p.env, imp...); r.code != 0 {
				t.Fatalf("import re-run exit %d\n%s", r.code, r.stderr)
			}
			checkSame(t, p, maildirBoxes...)
			if diff := sameTree(before, treeSnapshot(t, tree)); diff != "" {
				t.Errorf("importing from the maildir changed it (a source must never change): %s", diff)
			}

			// What mailferry reads: UIDs and UIDVALIDITY per mailbox.
			st, err := maildir.Open(tree, maildir.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			ours := map[string][]providers.UID{}
			validity := map[string]uint32{}
			for _, b := range maildirBoxes {
				mb, err := st.Mailbox(t.Context(), b)
				if err != nil {
					t.Fatalf("read back %q: %v", b, err)
				}
				ours[b], err = mb.UIDs(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				validity[b] = mb.Info().UIDValidity
				mb.Close()
			}
			if ps := st.Problems(); len(ps) > 0 {
				t.Errorf("the tree mailferry wrote reads with problems: %v", ps)
			}

			served := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": dstPass},
				Maildir: &imaptest.MaildirLocation{Root: tree, FS: layout.fs, Listescape: true}})
			served.Adopt(t, tree)
			for _, b := range maildirBoxes {
				got, want := served.Messages(t, "alice", b), p.src.Messages(t, "alice", b)
				if g, w := lineSet(got), lineSet(want); !slices.Equal(g, w) {
					missing, extra := diff(w, g)
					t.Errorf("Dovecot serving the tree: %s has %d messages, the source %d; %d missing, %d extra", b, len(g), len(w), len(missing), len(extra))
				}
				var uids []providers.UID
				for _, m := range got {
					uids = append(uids, providers.UID(m.UID))
				}
				if !slices.Equal(uids, ours[b]) {
					t.Errorf("Dovecot serving the tree: %s has UIDs %v, mailferry recorded %v", b, uids, ours[b])
				}
				if v := served.UIDValidity(t, "alice", b); v != validity[b] {
					t.Errorf("Dovecot serving the tree: %s has UIDVALIDITY %d, mailferry recorded %d", b, v, validity[b])
				}
			}

			// Undo the export: the messages go, and the folders mailferry
			// created, once empty.
			undo := []string{"undo", "--from", "imap+plain://alice@" + p.src.Addr(), "--to", to,
				"--checkpoint", exportCkpt, "--yes"}
			if r := runBinary(t, p.env, undo...); r.code != 0 {
				t.Fatalf("undo exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			after, err := maildir.Open(tree, maildir.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			left, err := after.Mailboxes(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range left {
				if m.Name != "INBOX" && slices.Contains(maildirBoxes, m.Name) {
					t.Errorf("%s, created by the export, survived its undo", m.Name)
				}
			}
			mb, err := after.Mailbox(t.Context(), "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if uids, err := mb.UIDs(t.Context()); err != nil || len(uids) != 0 {
				t.Errorf("INBOX holds %v (%v) after undoing the export, want nothing", uids, err)
			}
			mb.Close()
		})
	}
}

// TestMaildirFromDovecot reads a tree Dovecot wrote (its own Maildir++
// store, filled by IMAP APPEND) as a source: mailferry sees Dovecot's UIDs
// and UIDVALIDITY, a copy into another Dovecot is exact by doveadm, and
// the tree is left as it was.
func TestMaildirFromDovecot(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{Maildir: &imaptest.MaildirLocation{Listescape: true}})
	seedMaildirBoxes(t, p.src)
	if r := p.migrate(t, nil); r.code != 0 {
		t.Fatalf("IMAP to IMAP exit %d\n%s", r.code, r.stderr)
	}
	checkSame(t, p, maildirBoxes...)
	tree := p.dst.MailDir("alice")

	st, err := maildir.Open(tree, maildir.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Layout() != maildir.LayoutMaildirPP {
		t.Errorf("Dovecot's default tree read as layout %v, want Maildir++", st.Layout())
	}
	for _, b := range maildirBoxes {
		mb, err := st.Mailbox(t.Context(), b)
		if err != nil {
			t.Fatalf("open %q in Dovecot's tree: %v", b, err)
		}
		uids, err := mb.UIDs(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var want []providers.UID
		for _, m := range p.dst.Messages(t, "alice", b) {
			want = append(want, providers.UID(m.UID))
		}
		if !slices.Equal(uids, want) {
			t.Errorf("%s: mailferry reads UIDs %v, Dovecot has %v", b, uids, want)
		}
		if v, w := mb.Info().UIDValidity, p.dst.UIDValidity(t, "alice", b); v != w {
			t.Errorf("%s: mailferry reads UIDVALIDITY %d, Dovecot has %d", b, v, w)
		}
		mb.Close()
	}

	third := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": dstPass}})
	q := &pair{src: p.dst, dst: third, env: p.env}
	args := []string{"migrate", "--from", "maildir:" + tree, "--to", "imap+plain://alice@" + third.Addr(),
		"--checkpoint", filepath.Join(t.TempDir(), "from-tree.db"), "--output", "json"}
	// Only mailferry may touch the tree in between: doveadm syncs it.
	before := treeSnapshot(t, tree)
	if r := runBinary(t, p.env, args...); r.code != 0 {
		t.Fatalf("maildir to IMAP exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if diff := sameTree(before, treeSnapshot(t, tree)); diff != "" {
		t.Errorf("reading Dovecot's tree changed it: %s", diff)
	}
	checkSame(t, q, maildirBoxes...)
}

// treeSnapshot maps every file under dir to its size, mtime and sha256,
// and every directory to its mtime.
func treeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[path] = fmt.Sprintf("dir %d", fi.ModTime().UnixNano())
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[path] = fmt.Sprintf("%d %d %x", fi.Size(), fi.ModTime().UnixNano(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return out
}

// sameTree describes the first difference of two snapshots, "" if none.
func sameTree(a, b map[string]string) string {
	for k, v := range a {
		if w, ok := b[k]; !ok {
			return k + " is gone"
		} else if v != w {
			return k + " changed"
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return k + " appeared"
		}
	}
	return ""
}
