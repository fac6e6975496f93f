package mbox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
)

// appendRaw appends messages through the store and returns their UIDs.
func appendRaw(t *testing.T, st providers.Store, name string, msgs ...string) []providers.UID {
	t.Helper()
	mb := openBox(t, st, name)
	var uids []providers.UID
	for _, m := range msgs {
		err := mb.Append(context.Background(), strings.NewReader(m), int64(len(m)),
			providers.MessageInfo{Flags: []string{`\Flagged`, "Kw"}, InternalDate: time.Date(2022, 2, 2, 2, 2, 2, 0, time.UTC)},
			func(uid providers.UID, err error) {
				if err != nil {
					t.Errorf("append refused: %v", err)
				}
				uids = append(uids, uid)
			})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if err := mb.Close(); err != nil {
		t.Fatal(err)
	}
	return uids
}

// state is a mailbox as a fresh store (another process) sees it.
func state(t *testing.T, dir, name string) (uint32, []providers.UID, []message) {
	t.Helper()
	st := openStore(t, dir, mbox.Options{ReadOnly: true})
	msgs := read(t, st, name)
	var uids []providers.UID
	for _, m := range msgs {
		uids = append(uids, m.uid)
	}
	return openBox(t, st, name).Info().UIDValidity, uids, msgs
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestUIDsOfAFileMailferryWrote(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.mbox")
	st := openStore(t, dir, mbox.Options{})
	if err := st.CreateMailbox(context.Background(), "w", ""); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, st, "w", "Subject: 1\n\n1\n", "Subject: 2\n\n2\n", "Subject: 3\n\n3\n")
	v1, uids1, _ := state(t, dir, "w")
	if !slices.Equal(uids1, []providers.UID{1, 2, 3}) {
		t.Fatalf("UIDs %v", uids1)
	}

	// Another program appends (a delivery agent): UIDVALIDITY and UIDs
	// stay, the new message gets the next UID.
	appendFile(t, path, from1+"Subject: delivered\n\nd\n\n")
	v2, uids2, msgs := state(t, dir, "w")
	if v2 != v1 || !slices.Equal(uids2, []providers.UID{1, 2, 3, 4}) {
		t.Errorf("after a foreign append: UIDVALIDITY %d (was %d), UIDs %v", v2, v1, uids2)
	}
	if !slices.Equal(msgs[0].info.Flags, []string{`\Flagged`, "Kw"}) || len(msgs[3].info.Flags) != 0 {
		t.Errorf("flags %q and %q: the sidecar's for ours, none for the foreign one", msgs[0].info.Flags, msgs[3].info.Flags)
	}
	// mailferry appends after it.
	st2 := openStore(t, dir, mbox.Options{})
	if got := appendRaw(t, st2, "w", "Subject: 5\n\n5\n"); !slices.Equal(got, []providers.UID{5}) {
		t.Errorf("next append got UID %v, want 5", got)
	}
	v3, uids3, _ := state(t, dir, "w")
	if v3 != v1 || !slices.Equal(uids3, []providers.UID{1, 2, 3, 4, 5}) {
		t.Errorf("UIDVALIDITY %d (was %d), UIDs %v", v3, v1, uids3)
	}

	// Another program rewrites the file without message 2 (a mail client
	// compacting): the UIDs would shift, so UIDVALIDITY must change.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parts := bytes.SplitAfter(b, []byte("\n\nFrom "))
	write(t, path, string(bytes.Join([][]byte{parts[0], parts[2], parts[3], parts[4]}, nil)))
	v4, uids4, msgs4 := state(t, dir, "w")
	if v4 == v1 {
		t.Errorf("file rewritten by another program, UIDVALIDITY unchanged (%d)", v4)
	}
	if !slices.Equal(uids4, []providers.UID{1, 2, 3, 4}) || string(msgs4[1].raw) != "Subject: 3\n\n3\n" {
		t.Errorf("after the rewrite: UIDs %v, second message %q", uids4, msgs4[1].raw)
	}
}

func TestUIDsOfAForeignFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Inbox")
	write(t, path, from1+"Subject: 1\n\n1\n\n"+from2+"Subject: 2\n\n2\n\n")
	v1, uids1, _ := state(t, dir, "INBOX")
	v2, _, _ := state(t, dir, "INBOX")
	if v1 == 0 || v2 != v1 || !slices.Equal(uids1, []providers.UID{1, 2}) {
		t.Fatalf("a file without sidecar read twice: UIDVALIDITY %d then %d, UIDs %v", v1, v2, uids1)
	}
	if _, err := os.Stat(path + ".mailferry"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reading wrote a sidecar: %v", err)
	}
	// Without a sidecar nothing proves the old messages are unchanged, so
	// any change gives a new UIDVALIDITY.
	appendFile(t, path, from1+"Subject: 3\n\n3\n\n")
	v3, _, _ := state(t, dir, "INBOX")
	if v3 == v1 {
		t.Errorf("foreign file grew, UIDVALIDITY unchanged")
	}

	// The first append by mailferry keeps the UIDVALIDITY the open mailbox
	// reported, and from then on the sidecar keeps it.
	st := openStore(t, dir, mbox.Options{})
	mb := openBox(t, st, "INBOX")
	before := mb.Info().UIDValidity
	var got providers.UID
	raw := "Subject: 4\n\n4\n"
	if err := mb.Append(context.Background(), strings.NewReader(raw), int64(len(raw)), providers.MessageInfo{},
		func(uid providers.UID, err error) { got = uid }); err != nil {
		t.Fatal(err)
	}
	if got != 4 || before != v3 {
		t.Errorf("append to a foreign file: UID %d (want 4), UIDVALIDITY on open %d (want %d)", got, before, v3)
	}
	v4, uids4, _ := state(t, dir, "INBOX")
	if v4 != v3 || !slices.Equal(uids4, []providers.UID{1, 2, 3, 4}) {
		t.Errorf("after mailferry's first append: UIDVALIDITY %d (want %d), UIDs %v", v4, v3, uids4)
	}
}

// TestInterruptedAppend simulates a crash in the middle of an append: the
// sidecar names the message but the file holds only part of it. A reader
// leaves it out; the first writer cuts it off, so that no other program
// sees it as a message.
func TestInterruptedAppend(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.mbox")
	st := openStore(t, dir, mbox.Options{})
	if err := st.CreateMailbox(context.Background(), "c", ""); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, st, "c", "Subject: 1\n\n1\n", "Subject: 2\n\n2\n")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".mailferry", `{"uid":3,"off":`+strconv.FormatInt(fi.Size(), 10)+`,"size":100,"flags":[],"date":"2022-02-02T02:02:02Z"}`+"\n")
	appendFile(t, path, "From MAILER-DAEMON Wed Feb  2 02:02:02 2022\nSubject: 3\n\nonly part of")

	ro := openStore(t, dir, mbox.Options{ReadOnly: true})
	if got := raws(read(t, ro, "c")); !slices.Equal(got, []string{"Subject: 1\n\n1\n", "Subject: 2\n\n2\n"}) {
		t.Errorf("messages %q: the interrupted one must be left out", got)
	}
	hasProblem(t, ro, path, 0, "interrupted writing (UID 3, bytes 118 to 186) is left out")
	if fi, _ := os.Stat(path); fi.Size() != 186 {
		t.Errorf("a read-only store changed the file to %d bytes", fi.Size())
	}

	st2 := openStore(t, dir, mbox.Options{})
	msgs := read(t, st2, "c")
	if got := raws(msgs); !slices.Equal(got, []string{"Subject: 1\n\n1\n", "Subject: 2\n\n2\n"}) {
		t.Errorf("messages %q: the interrupted one must be left out", got)
	}
	hasProblem(t, st2, path, 0, "(UID 3) was cut off: the file is cut back from 186 to 118 bytes")
	if now, err := os.ReadFile(path); err != nil || string(now) != string(committed) {
		t.Errorf("opening for writing left %q, want the file as committed %q (%v)", now, committed, err)
	}
	if uids := appendRaw(t, st2, "c", "Subject: 4\n\n4\n"); !slices.Equal(uids, []providers.UID{4}) {
		t.Errorf("append after an interrupted one got UID %v, want 4 (3 was handed out)", uids)
	}
	_, uids, msgs := state(t, dir, "c")
	if !slices.Equal(uids, []providers.UID{1, 2, 4}) || string(msgs[2].raw) != "Subject: 4\n\n4\n" {
		t.Errorf("UIDs %v, last message %q", uids, msgs[len(msgs)-1].raw)
	}
}

func TestReadOnlyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "Inbox"), from1+"Subject: 1\n\n1\n\n")
	before := tree(t, dir)
	st := openStore(t, dir, mbox.Options{ReadOnly: true})
	ctx := context.Background()
	read(t, st, "INBOX")
	if err := st.CreateMailbox(ctx, "New", ""); err == nil {
		t.Error("CreateMailbox on a read-only store succeeded")
	}
	mb := openBox(t, st, "INBOX")
	if err := mb.Append(ctx, strings.NewReader("x"), 1, providers.MessageInfo{}, func(providers.UID, error) {}); err == nil {
		t.Error("Append on a read-only store succeeded")
	}
	if err := st.Remove(ctx, "INBOX", mb.Info().UIDValidity, []providers.UID{1}); err == nil {
		t.Error("Remove on a read-only store succeeded")
	}
	mb.Close()
	if after := tree(t, dir); !slices.Equal(after, before) {
		t.Errorf("read-only store changed the directory:\n%v\n%v", before, after)
	}
	if _, err := mbox.Open(filepath.Join(dir, "missing"), mbox.Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only Open of a missing path: %v", err)
	}
}

// tree lists every file under dir with its size and time.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		out = append(out, p+" "+fi.ModTime().String()+" "+strconv.FormatInt(fi.Size(), 10))
		return nil
	})
	return out
}

func TestSingleFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "export.mbox")
	write(t, path, from1+"Subject: 1\n\n1\n\n")
	st := openStore(t, path, mbox.Options{})
	ctx := context.Background()
	list, err := st.Mailboxes(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "INBOX" {
		t.Fatalf("Mailboxes of a single file: %v, %v; want INBOX alone", list, err)
	}
	appendRaw(t, st, "INBOX", "Subject: 2\n\n2\n")
	if err := st.CreateMailbox(ctx, "Other", ""); err == nil || errors.Is(err, providers.ErrMailboxExists) {
		t.Errorf("CreateMailbox in a single-file store: %v, want a refusal", err)
	}
	if err := st.CreateMailbox(ctx, "INBOX", ""); !errors.Is(err, providers.ErrMailboxExists) {
		t.Errorf("CreateMailbox(INBOX) in a single-file store: %v, want ErrMailboxExists", err)
	}
	if got := raws(read(t, openStore(t, path, mbox.Options{ReadOnly: true}), "INBOX")); !slices.Equal(got, []string{"Subject: 1\n\n1\n", "Subject: 2\n\n2\n"}) {
		t.Errorf("messages %q", got)
	}
}

func TestMailboxVanishes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gone.mbox")
	write(t, path, from1+"Subject: 1\n\n1\n\n")
	st := openStore(t, dir, mbox.Options{})
	mb := openBox(t, st, "gone")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err := mb.UIDs(context.Background())
	if !errors.Is(err, providers.ErrMailboxNotFound) || providers.ClassOf(err) != providers.ClassMailbox {
		t.Errorf("UIDs of a removed file: %v (class %v), want ErrMailboxNotFound of class mailbox", err, providers.ClassOf(err))
	}
}

// TestAppendToFileWithoutFinalNewline: the sidecar's checkpoint then falls
// inside a line, where the file is cut, and must still be checked there.
func TestAppendToFileWithoutFinalNewline(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "t.mbox"), from1+"Subject: 1\n\ncut short")
	v1, _, _ := state(t, dir, "t")
	st := openStore(t, dir, mbox.Options{})
	appendRaw(t, st, "t", "Subject: 2\n\n2\n")
	v2, uids, msgs := state(t, dir, "t")
	if v2 != v1 || !slices.Equal(uids, []providers.UID{1, 2}) {
		t.Errorf("UIDVALIDITY %d then %d, UIDs %v", v1, v2, uids)
	}
	// The blank line written after the cut message is not served: the
	// sidecar knows its size.
	if got := raws(msgs); !slices.Equal(got, []string{"Subject: 1\n\ncut short", "Subject: 2\n\n2\n"}) {
		t.Errorf("messages %q", got)
	}
}

// failingReader gives n bytes, then a transient error, as a dropped IMAP
// connection does in the middle of a message.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, providers.WithClass(providers.ClassTransient, errors.New("connection reset"))
	}
	k := min(len(p), f.n)
	for i := range k {
		p[i] = 'x'
	}
	f.n -= k
	return k, nil
}

func TestAppendSourceFails(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, mbox.Options{})
	ctx := context.Background()
	if err := st.CreateMailbox(ctx, "s", ""); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, st, "s", "Subject: 1\n\n1\n")
	fi, _ := os.Stat(filepath.Join(dir, "s.mbox"))
	mb := openBox(t, st, "s")
	called := false
	err := mb.Append(ctx, &failingReader{n: 100 << 10}, 1<<20, providers.MessageInfo{}, func(providers.UID, error) { called = true })
	if err == nil || providers.ClassOf(err) != providers.ClassTransient || called {
		t.Errorf("Append from a failing source: %v (class %v), done called %v; want the source's transient error and no done", err, providers.ClassOf(err), called)
	}
	if fi2, _ := os.Stat(filepath.Join(dir, "s.mbox")); fi2.Size() != fi.Size() {
		t.Errorf("the failed append left %d bytes behind", fi2.Size()-fi.Size())
	}
	err = mb.Append(ctx, strings.NewReader("short"), 10, providers.MessageInfo{}, func(providers.UID, error) { called = true })
	if !errors.Is(err, io.ErrUnexpectedEOF) || called {
		t.Errorf("Append of fewer bytes than announced: %v, done called %v", err, called)
	}
	mb.Close()
	appendRaw(t, st, "s", "Subject: 2\n\n2\n")
	_, uids, msgs := state(t, dir, "s")
	if got := raws(msgs); !slices.Equal(got, []string{"Subject: 1\n\n1\n", "Subject: 2\n\n2\n"}) || len(uids) != 2 || uids[1] <= uids[0] {
		t.Errorf("after failed appends: UIDs %v, messages %q", uids, got)
	}
	if p := openStore(t, dir, mbox.Options{ReadOnly: true}).Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
}

func TestRemoveFromForeignFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "f.mbox"), "junk first\n\n"+from1+"Subject: 1\n\n1\n\n"+from2+"Subject: 2\n\n2\n\n"+from1+"Subject: 3\n\n3")
	st := openStore(t, dir, mbox.Options{})
	mb := openBox(t, st, "f")
	v := mb.Info().UIDValidity
	if err := st.Remove(context.Background(), "f", v, []providers.UID{2}); err != nil {
		t.Fatal(err)
	}
	v2, uids, msgs := state(t, dir, "f")
	if v2 != v || !slices.Equal(uids, []providers.UID{1, 3}) {
		t.Errorf("after Remove: UIDVALIDITY %d (was %d), UIDs %v", v2, v, uids)
	}
	if got := raws(msgs); !slices.Equal(got, []string{"Subject: 1\n\n1\n", "Subject: 3\n\n3"}) {
		t.Errorf("messages %q", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "f.mbox"))
	if !strings.HasPrefix(string(b), "junk first\n\n"+from1) {
		t.Errorf("Remove did not keep the rest of the file as it was: %q", b)
	}
}
