package mbox_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/providers/mbox"
)

// TestKillDuringAppend recreates what a kill -9 leaves at every byte of
// an append, in the sidecar and in the mbox file, then resumes as a run
// does: open the mailbox for writing and append the message again, then
// one more. After that, mailferry, go-mbox and Python's mailbox module
// must all find exactly the messages appended, each once: no torn message,
// no message merged into another.
func TestKillDuringAppend(t *testing.T) {
	msgs := []string{
		"Message-ID: <a@example.org>\nSubject: a\n\nFrom the start\n",
		"Message-ID: <b@example.org>\r\nSubject: b\r\n\r\n>From quoted\r\nno final newline",
		// The one being written when killed: From lines in the body, so
		// that a cut can fall inside quoting.
		"Message-ID: <c@example.org>\nSubject: c\n\nline\n\nFrom the middle of a paragraph\n>>From deeper\n\nend\n",
		"Message-ID: <d@example.org>\nSubject: d\n\nafter the resume\n",
	}
	ids := []string{"<a@example.org>", "<b@example.org>", "<c@example.org>", "<d@example.org>"}
	t.Run("after-two", func(t *testing.T) { killDuringAppend(t, msgs, ids, 2) })
	// The first append into a new mailbox: its sidecar's one checkpoint
	// is the empty file's.
	t.Run("first", func(t *testing.T) { killDuringAppend(t, msgs[2:], ids[2:], 0) })
}

// killDuringAppend appends msgs[:n], then recreates what a kill -9 leaves
// at every byte of the append of msgs[n], resumes, and appends the rest.
func killDuringAppend(t *testing.T, msgs, ids []string, n int) {
	// The files before and after the append of message n.
	base := t.TempDir()
	st := openStore(t, base, mbox.Options{})
	mustCreate(t, st, "INBOX")
	if n > 0 {
		appendRaw(t, st, "INBOX", msgs[:n]...)
	}
	path := filepath.Join(base, "INBOX.mbox")
	m0, s0 := readBoth(t, path)
	appendRaw(t, st, "INBOX", msgs[n])
	m1, s1 := readBoth(t, path)
	if !bytes.HasPrefix(m1, m0) || !bytes.HasPrefix(s1, s0) {
		t.Fatal("an append did not only append")
	}
	written := m1[len(m0):]
	lines := bytes.SplitAfter(s1[len(s0):], []byte{'\n'})
	if len(lines) != 3 || len(lines[2]) != 0 {
		t.Fatalf("the append wrote %d sidecar lines, want a record and a checkpoint: %q", len(lines), s1[len(s0):])
	}
	record := lines[0]

	type point struct {
		name          string
		mbox, sidecar []byte
		complete      bool // message c was written whole
	}
	var points []point
	for j := 0; j < len(record); j++ {
		points = append(points, point{fmt.Sprintf("sidecar record cut at %d", j), m0, cat(s0, record[:j]), false})
	}
	for k := 0; k <= len(written); k++ {
		// Only the blank line after it missing, the message is whole.
		points = append(points, point{fmt.Sprintf("message cut at %d of %d", k, len(written)), cat(m0, written[:k]), cat(s0, record), k >= len(written)-1})
	}
	points = append(points, point{"checkpoint line cut", m1, cat(s0, record, lines[1][:len(lines[1])/2]), true})

	var files []string
	for i, p := range points {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		write(t, filepath.Join(dir, "INBOX.mbox"), string(p.mbox))
		write(t, filepath.Join(dir, "INBOX.mbox.mailferry"), string(p.sidecar))
		// The resume: a writable store, the mailbox opened, what is not
		// there appended again.
		st := openStore(t, dir, mbox.Options{})
		got := raws(read(t, st, "INBOX"))
		want := msgs[:n]
		if p.complete {
			want = msgs[:n+1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: after the kill, mailferry reads %q, want %q", p.name, got, want)
			continue
		}
		if !p.complete {
			appendRaw(t, st, "INBOX", msgs[n])
		}
		appendRaw(t, st, "INBOX", msgs[n+1:]...)
		if got := raws(read(t, openStore(t, dir, mbox.Options{ReadOnly: true}), "INBOX")); !slices.Equal(got, msgs) {
			t.Errorf("%s: after the resume, mailferry reads %q", p.name, got)
		}
		f := filepath.Join(dir, "INBOX.mbox")
		if got := goMboxIDs(t, f); !slices.Equal(got, ids) {
			t.Errorf("%s: go-mbox finds %q, want %q", p.name, got, ids)
		}
		files = append(files, f)
	}
	py := pythonIDs(t, files...)
	for i, f := range files {
		if py != nil && !slices.Equal(py[f], ids) {
			t.Errorf("%s: Python's mailbox finds %q, want %q", points[i].name, py[f], ids)
		}
	}
	t.Logf("%d kill points checked", len(points))
}

// TestKillDuringAppendReadOnly: a reader that may not write (a dry run, a
// verify) leaves the torn append where it is and says so.
func TestKillDuringAppendReadOnly(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, mbox.Options{})
	mustCreate(t, st, "INBOX")
	appendRaw(t, st, "INBOX", "Subject: a\n\na\n")
	path := filepath.Join(dir, "INBOX.mbox")
	m0, _ := readBoth(t, path)
	appendRaw(t, st, "INBOX", "Subject: b\n\n"+strings.Repeat("b\n", 50))
	m1, s1 := readBoth(t, path)
	cut := cat(m0, m1[len(m0):len(m0)+40])
	write(t, path, string(cut))
	write(t, path+".mailferry", string(s1[:bytes.LastIndexByte(s1[:len(s1)-1], '\n')+1]))

	ro := openStore(t, dir, mbox.Options{ReadOnly: true})
	if got := raws(read(t, ro, "INBOX")); !slices.Equal(got, []string{"Subject: a\n\na\n"}) {
		t.Errorf("read-only: %q", got)
	}
	hasProblem(t, ro, path, 0, "interrupted writing (UID 2")
	if now, _ := os.ReadFile(path); !bytes.Equal(now, cut) {
		t.Error("a read-only store changed the file")
	}
}

func mustCreate(t *testing.T, st *mbox.Store, name string) {
	t.Helper()
	if err := st.CreateMailbox(t.Context(), name, ""); err != nil {
		t.Fatal(err)
	}
}

func readBoth(t *testing.T, path string) (mboxBytes, sidecar []byte) {
	t.Helper()
	m, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile(path + ".mailferry")
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestKillThenForeignAppend: killed before writing any byte of the
// message, and another program (Python's mailbox writes MAILER-DAEMON
// From_ lines too) appended mail before the resume. That mail is never
// cut off nor hidden.
func TestKillThenForeignAppend(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, mbox.Options{})
	mustCreate(t, st, "INBOX")
	appendRaw(t, st, "INBOX", "Subject: a\n\na\n")
	path := filepath.Join(dir, "INBOX.mbox")
	m0, _ := readBoth(t, path)
	appendFile(t, path+".mailferry", fmt.Sprintf(`{"uid":2,"off":%d,"size":500,"flags":[],"date":"2022-02-02T02:02:02Z"}`+"\n", len(m0)))
	foreign := "From MAILER-DAEMON Thu Jan  2 02:04:05 2020\nSubject: delivered meanwhile\n\nhello\n\n"
	appendFile(t, path, foreign)

	st2 := openStore(t, dir, mbox.Options{})
	if got := raws(read(t, st2, "INBOX")); !slices.Equal(got, []string{"Subject: a\n\na\n", "Subject: delivered meanwhile\n\nhello\n"}) {
		t.Errorf("messages %q: the mail delivered meanwhile must be there", got)
	}
	appendRaw(t, st2, "INBOX", "Subject: c\n\nc\n")
	now, _ := readBoth(t, path)
	if !bytes.HasPrefix(now, cat(m0, []byte(foreign))) {
		t.Errorf("the file lost what another program appended:\n%q", now)
	}
}
