package maildir_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/maildir"
)

// put writes a message file with an mtime.
func put(t *testing.T, path string, raw string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mkMaildir(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot maps every path under dir to its size, mtime and content hash.
func snapshot(t *testing.T, dir string) map[string]string {
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
			out[path] = fmt.Sprint("dir ", fi.ModTime().UnixNano())
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
		t.Fatal(err)
	}
	return out
}

type listed struct {
	uid   providers.UID
	flags []string
	date  time.Time
	raw   string
}

// readAll lists and fetches a mailbox.
func readAll(t *testing.T, st *maildir.Store, name string) (providers.MailboxInfo, []listed) {
	t.Helper()
	mb, err := st.Mailbox(t.Context(), name)
	if err != nil {
		t.Fatalf("Mailbox(%q): %v", name, err)
	}
	defer mb.Close()
	var out []listed
	if err := mb.List(t.Context(), nil, func(m providers.MessageInfo) error {
		f := slices.Clone(m.Flags)
		slices.Sort(f)
		out = append(out, listed{uid: m.UID, flags: f, date: m.InternalDate})
		return nil
	}); err != nil {
		t.Fatalf("List %q: %v", name, err)
	}
	i := 0
	if err := mb.Fetch(t.Context(), nil, func(uid providers.UID, size int64, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if i >= len(out) || out[i].uid != uid {
			t.Fatalf("Fetch gave uid %d at %d, List %v", uid, i, out)
		}
		out[i].raw = string(b)
		i++
		return nil
	}); err != nil {
		t.Fatalf("Fetch %q: %v", name, err)
	}
	return mb.Info(), out
}

func problemsAbout(st *maildir.Store, substr string) []string {
	var out []string
	for _, p := range st.Problems() {
		if strings.Contains(p.String(), substr) {
			out = append(out, p.String())
		}
	}
	return out
}

var day = time.Date(2022, 3, 4, 5, 6, 7, 0, time.UTC)

// TestDovecotTree reads a Maildir++ tree as Dovecot leaves it: UIDs from
// dovecot-uidlist, files in new/ and cur/, keyword letters from
// dovecot-keywords, P as $Forwarded, the mtime as INTERNALDATE, and
// nothing in the tree changes.
func TestDovecotTree(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, root)
	inbox := "3 V1600000000 N12 G0123456789abcdef0123456789abcdef\n" +
		"5 :1600000001.M1P1.host,S=20,W=22\n" +
		"7 :1600000002.M2P1.host,S=20\n" +
		"9 :1600000003.M3P1.host\n" + // expunged: no file
		"10 :1600000004.M4P1.host\n" // in new/, not yet moved
	write(t, filepath.Join(root, "dovecot-uidlist"), inbox)
	write(t, filepath.Join(root, "dovecot-keywords"), "0 $Forwarded\n1 Project-X\n3 $Junk\n")
	put(t, filepath.Join(root, "cur", "1600000001.M1P1.host,S=20,W=22:2,RSa"), "Subject: one\n\nbody\r\n", day)
	put(t, filepath.Join(root, "cur", "1600000002.M2P1.host,S=20:2,FPbc"), "Subject: two\r\n\r\nbody\r\n", day.Add(time.Hour))
	put(t, filepath.Join(root, "new", "1600000004.M4P1.host"), "Subject: four\r\n\r\n", day.Add(2*time.Hour))
	sub := filepath.Join(root, ".Work.Q&-A.v1\\2e2")
	mkMaildir(t, sub)
	write(t, filepath.Join(sub, "maildirfolder"), "")
	write(t, filepath.Join(sub, "dovecot-uidlist"), "3 V1600000100 N2\n1 :1.M1P1.h\n")
	put(t, filepath.Join(sub, "cur", "1.M1P1.h:2,T"), "x", day)
	before := snapshot(t, root)

	st, err := maildir.Open(root, maildir.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := st.Mailboxes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Name)
	}
	slices.Sort(names)
	if want := []string{"INBOX", "Work/Q&A/v1.2"}; !slices.Equal(names, want) {
		t.Errorf("Mailboxes = %q, want %q", names, want)
	}

	info, got := readAll(t, st, "INBOX")
	if info.UIDValidity != 1600000000 || info.UIDNext != 12 {
		t.Errorf("INBOX UIDVALIDITY %d UIDNEXT %d, want 1600000000 and 12 from dovecot-uidlist", info.UIDValidity, info.UIDNext)
	}
	want := []listed{
		{5, []string{"$Forwarded", `\Answered`, `\Seen`}, day, "Subject: one\n\nbody\r\n"},
		{7, []string{"$Forwarded", "Project-X", `\Flagged`}, day.Add(time.Hour), "Subject: two\r\n\r\nbody\r\n"},
		{10, nil, day.Add(2 * time.Hour), "Subject: four\r\n\r\n"},
	}
	if len(got) != len(want) {
		t.Fatalf("INBOX: %d messages %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.uid != w.uid || !slices.Equal(g.flags, w.flags) || !g.date.Equal(w.date) || g.raw != w.raw {
			t.Errorf("INBOX message %d: %+v, want %+v", i, g, w)
		}
	}
	if p := problemsAbout(st, `letter 'c'`); len(p) != 1 {
		t.Errorf("a keyword letter without a name gives %d problems, want 1: %v", len(p), st.Problems())
	}
	if p := problemsAbout(st, "S=20, the file holds 22"); len(p) != 1 {
		t.Errorf("a wrong S= gives %d problems, want 1: %v", len(p), st.Problems())
	}
	if p := problemsAbout(st, "W="); len(p) != 0 {
		t.Errorf("a right W= is reported: %v", p)
	}
	info, got = readAll(t, st, "Work/Q&A/v1.2")
	if info.UIDValidity != 1600000100 || len(got) != 1 || got[0].uid != 1 || !slices.Equal(got[0].flags, []string{`\Deleted`}) {
		t.Errorf("Work/Q&A/v1.2: %+v %+v", info, got)
	}
	if d := diffSnapshots(before, snapshot(t, root)); d != "" {
		t.Errorf("reading changed the tree: %s", d)
	}
}

func diffSnapshots(a, b map[string]string) string {
	for k, v := range a {
		if b[k] != v {
			return k + " changed or gone"
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return k + " appeared"
		}
	}
	return ""
}

// TestUnlistedReadOnly: a read-only store numbers files dovecot-uidlist
// does not know after the listed ones, in Dovecot's order, and reports a
// UIDVALIDITY of its own while they are there, the same on every reading;
// it writes nothing.
func TestUnlistedReadOnly(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, root)
	write(t, filepath.Join(root, "dovecot-uidlist"), "3 V42 N3\n2 :100.M5P1.h\n")
	put(t, filepath.Join(root, "cur", "100.M5P1.h:2,S"), "a", day)
	// Dovecot orders by seconds, then microseconds, then name: 100.M20
	// before 101.M3 before 101.M10.
	put(t, filepath.Join(root, "new", "101.M10P1.h"), "c", day)
	put(t, filepath.Join(root, "new", "101.M3P1.h"), "b", day)
	put(t, filepath.Join(root, "new", "100.M20P1.h"), "z", day)
	before := snapshot(t, root)
	read := func() (uint32, []listed) {
		st, err := maildir.Open(root, maildir.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		info, got := readAll(t, st, "INBOX")
		return info.UIDValidity, got
	}
	v1, got := read()
	var order []string
	var uids []providers.UID
	for _, m := range got {
		order = append(order, m.raw)
		uids = append(uids, m.uid)
	}
	if !slices.Equal(order, []string{"a", "z", "b", "c"}) || !slices.Equal(uids, []providers.UID{2, 3, 4, 5}) {
		t.Errorf("read %q as UIDs %v; want a z b c as 2 3 4 5", order, uids)
	}
	if v1 == 42 || v1 == 0 {
		t.Errorf("UIDVALIDITY %d with unlisted files; want one of its own, not the list's 42", v1)
	}
	if v2, _ := read(); v2 != v1 {
		t.Errorf("UIDVALIDITY %d, then %d on an unchanged tree", v1, v2)
	}
	if d := diffSnapshots(before, snapshot(t, root)); d != "" {
		t.Errorf("a read-only store changed the tree: %s", d)
	}
	put(t, filepath.Join(root, "new", "102.M1P1.h"), "d", day)
	if v3, _ := read(); v3 == v1 {
		t.Errorf("UIDVALIDITY stays %d when another unlisted file arrives", v1)
	}
}

// TestUnlistedWritable: a writable store gives unlisted files the next
// UIDs and records them, so they stay; UIDs are never given twice, not
// even after the highest message is removed.
func TestUnlistedWritable(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, root)
	write(t, filepath.Join(root, "dovecot-uidlist"), "3 V42 N3 Gabcdefabcdefabcdefabcdefabcdefab\n2 :100.M5P1.h\n")
	put(t, filepath.Join(root, "cur", "100.M5P1.h:2,S"), "a", day)
	put(t, filepath.Join(root, "new", "101.M3P1.h"), "b", day)
	st, err := maildir.Open(root, maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, got := readAll(t, st, "INBOX")
	if info.UIDValidity != 42 || len(got) != 2 || got[1].uid != 3 || got[1].raw != "b" {
		t.Fatalf("writable read: %+v %+v; want UIDVALIDITY 42 and b as UID 3", info, got)
	}
	list, _ := os.ReadFile(filepath.Join(root, "dovecot-uidlist"))
	if !strings.HasSuffix(string(list), "\n3 :101.M3P1.h\n") {
		t.Errorf("dovecot-uidlist after the writable read:\n%s\nwant a line for UID 3", list)
	}
	if err := st.Remove(t.Context(), "INBOX", 42, []providers.UID{3}); err != nil {
		t.Fatal(err)
	}
	uid := appendOne(t, st, "INBOX", "c", []string{"Kw"})
	if uid != 4 {
		t.Errorf("append after removing UID 3 got UID %d, want 4 (UIDs are never given twice)", uid)
	}
	st2, err := maildir.Open(root, maildir.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	info, got = readAll(t, st2, "INBOX")
	if info.UIDValidity != 42 || len(got) != 2 || got[1].uid != 4 || !slices.Equal(got[1].flags, []string{"Kw"}) {
		t.Errorf("read again: %+v %+v", info, got)
	}
}

func appendOne(t *testing.T, st *maildir.Store, box, raw string, flags []string) providers.UID {
	t.Helper()
	mb, err := st.Mailbox(t.Context(), box)
	if err != nil {
		t.Fatal(err)
	}
	var uid providers.UID
	var derr error
	calls := 0
	err = mb.Append(t.Context(), strings.NewReader(raw), int64(len(raw)), providers.MessageInfo{Flags: flags, InternalDate: day},
		func(u providers.UID, err error) { uid, derr, calls = u, err, calls+1 })
	if err == nil {
		err = mb.Close()
	}
	if err != nil || derr != nil || calls != 1 {
		t.Fatalf("append %q: %v, done %d times with %v", raw, err, calls, derr)
	}
	return uid
}

// TestCourierTree reads Courier-IMAP's files: UIDs from courierimapuiddb,
// keywords from courierimapkeywords (the :list and the newer per-message
// files), subscriptions from courierimapsubscribed. Written to, the folder
// gets a dovecot-uidlist that keeps Courier's UIDs.
func TestCourierTree(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, root)
	sent := filepath.Join(root, ".Sent")
	mkMaildir(t, sent)
	write(t, filepath.Join(sent, "maildirfolder"), "")
	write(t, filepath.Join(sent, "courierimapuiddb"), "1 1500000000 9\n3 1000.1.h\n8 1001.2.h\n")
	put(t, filepath.Join(sent, "cur", "1000.1.h:2,S"), "one", day)
	put(t, filepath.Join(sent, "cur", "1001.2.h:2,RS"), "two", day)
	write(t, filepath.Join(sent, "courierimapkeywords", ":list"), "Work\n$Label2\n\n1000.1.h:0 1\n1001.2.h:1\n")
	// A newer update for 1001.2.h: numbered files, the highest wins.
	write(t, filepath.Join(sent, "courierimapkeywords", ".5.1001.2.h"), "Home\n")
	write(t, filepath.Join(sent, "courierimapkeywords", ".3.1001.2.h"), "Old\n")
	write(t, filepath.Join(root, "courierimapsubscribed"), "INBOX\nINBOX.Sent\n")
	before := snapshot(t, root)

	st, err := maildir.Open(root, maildir.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	boxes, _ := st.Mailboxes(t.Context())
	subscribed := map[string]bool{}
	for _, b := range boxes {
		subscribed[b.Name] = b.Subscribed
	}
	if !subscribed["INBOX"] || !subscribed["Sent"] {
		t.Errorf("subscriptions from courierimapsubscribed: %v", subscribed)
	}
	info, got := readAll(t, st, "Sent")
	if info.UIDValidity != 1500000000 || info.UIDNext != 9 || len(got) != 2 {
		t.Fatalf("Sent: %+v %+v", info, got)
	}
	if got[0].uid != 3 || !slices.Equal(got[0].flags, []string{"$Label2", "Work", `\Seen`}) {
		t.Errorf("first message: %+v", got[0])
	}
	if got[1].uid != 8 || !slices.Equal(got[1].flags, []string{"Home", `\Answered`, `\Seen`}) {
		t.Errorf("second message: %+v (the newest update file wins)", got[1])
	}
	if d := diffSnapshots(before, snapshot(t, root)); d != "" {
		t.Errorf("reading changed the tree: %s", d)
	}

	w, err := maildir.Open(root, maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if uid := appendOne(t, w, "Sent", "three", nil); uid != 9 {
		t.Errorf("append to the Courier folder got UID %d, want 9", uid)
	}
	info, got = readAll(t, w, "Sent")
	if info.UIDValidity != 1500000000 || len(got) != 3 || got[0].uid != 3 || got[1].uid != 8 {
		t.Errorf("after writing: %+v %+v; Courier's UIDs and UIDVALIDITY must stay", info, got)
	}
	if _, err := os.Stat(filepath.Join(sent, "dovecot-uidlist")); err != nil {
		t.Errorf("no dovecot-uidlist after writing: %v", err)
	}
}

// TestReadOnlyRefuses: a read-only store refuses every write as an
// account error, and creates nothing.
func TestReadOnlyRefuses(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, root)
	put(t, filepath.Join(root, "new", "1.M1P1.h"), "a", day)
	before := snapshot(t, root)
	st, err := maildir.Open(root, maildir.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.Mailbox(t.Context(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	uids, err := mb.UIDs(t.Context())
	if err != nil || len(uids) != 1 {
		t.Fatalf("UIDs: %v %v", uids, err)
	}
	v := mb.Info().UIDValidity
	ctx := t.Context()
	errs := map[string]error{
		"CreateMailbox": st.CreateMailbox(ctx, "New", ""),
		"Remove":        st.Remove(ctx, "INBOX", v, uids),
		"SetFlags":      st.SetFlags(ctx, "INBOX", v, map[providers.UID][]string{uids[0]: {`\Seen`}}),
		"DeleteMailbox": st.DeleteMailbox(ctx, "INBOX"),
		"Subscribe":     st.Subscribe(ctx, "INBOX"),
		"Append": mb.Append(ctx, strings.NewReader("x"), 1, providers.MessageInfo{}, func(providers.UID, error) {
			t.Error("done called for a refused Append")
		}),
	}
	for what, err := range errs {
		if err == nil || providers.ClassOf(err) != providers.ClassAccount {
			t.Errorf("%s on a read-only store: %v (class %v), want an account error", what, err, providers.ClassOf(err))
		}
	}
	if d := diffSnapshots(before, snapshot(t, root)); d != "" {
		t.Errorf("a read-only store changed the tree: %s", d)
	}
}

// TestOddFiles: files a maildir should not hold are skipped and reported,
// naming the file; the rest is served.
func TestOddFiles(t *testing.T) {
	root := t.TempDir()
	mkMaildir(t, root)
	put(t, filepath.Join(root, "cur", "1.M1P1.h:2,S"), "good", day)
	put(t, filepath.Join(root, "cur", "2.M1P1.h\n:2,S"), "line break", day)
	if err := os.Mkdir(filepath.Join(root, "cur", "3.M1P1.h:2,"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("1.M1P1.h:2,S", filepath.Join(root, "cur", "4.M1P1.h:2,S")); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(root, "new", "1.M1P1.h"), "same base as one in cur", day)
	put(t, filepath.Join(root, "cur", ".hidden"), "dotfile", day)
	write(t, filepath.Join(root, "dovecot-uidlist"), "3 V1 N5\n2 :x\n1 :y\n") // UIDs out of order: broken
	st, err := maildir.Open(root, maildir.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, got := readAll(t, st, "INBOX")
	if len(got) != 1 || got[0].raw != "good" {
		t.Errorf("served %+v, want only the good message", got)
	}
	for _, want := range []string{"line break", "not a regular file", "duplicate", "UID 1 after 2"} {
		if len(problemsAbout(st, want)) == 0 {
			t.Errorf("no problem reported about %q; got %v", want, st.Warnings())
		}
	}
	for _, w := range st.Warnings() {
		if strings.ContainsAny(w, "\n") {
			t.Errorf("warning holds a raw line break: %q", w)
		}
	}
}

// TestStaleLock: a lock left by a process that is gone is taken over; a
// live one makes a writer wait, until its context ends.
func TestStaleLock(t *testing.T) {
	root := t.TempDir()
	st, err := maildir.Open(root, maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	lock := filepath.Join(root, "dovecot-uidlist.lock")
	write(t, lock, fmt.Sprintf("%d:%s", 1<<22+12345, host)) // beyond any pid in use
	if uid := appendOne(t, st, "INBOX", "after a dead writer", nil); uid == 0 {
		t.Errorf("no UID after taking over a stale lock")
	}
	write(t, lock, fmt.Sprintf("%d:%s", os.Getppid(), host))
	ctx, cancel := context.WithCancel(t.Context())
	mb, err := st.Mailbox(t.Context(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	called := false
	go cancel()
	err = mb.Append(ctx, bytes.NewReader([]byte("held")), 4, providers.MessageInfo{}, func(providers.UID, error) { called = true })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Append while another live process holds the lock: %v (done called: %v), want context.Canceled", err, called)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Errorf("the live process's lock was removed: %v", err)
	}
}
