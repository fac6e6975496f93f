package mbox_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
)

func write(t *testing.T, path string, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func openBox(t *testing.T, st providers.Store, name string) providers.Mailbox {
	t.Helper()
	mb, err := st.Mailbox(context.Background(), name)
	if err != nil {
		t.Fatalf("Mailbox(%q): %v", name, err)
	}
	t.Cleanup(func() { mb.Close() })
	return mb
}

type message struct {
	uid  providers.UID
	raw  []byte
	info providers.MessageInfo
}

// read lists and fetches every message of a mailbox and checks that List
// and Fetch agree on UIDs, sizes and keys.
func read(t *testing.T, st providers.Store, name string) []message {
	t.Helper()
	mb := openBox(t, st, name)
	var infos []providers.MessageInfo
	if err := mb.List(context.Background(), nil, func(m providers.MessageInfo) error {
		infos = append(infos, m)
		return nil
	}); err != nil {
		t.Fatalf("List %q: %v", name, err)
	}
	var out []message
	if err := mb.Fetch(context.Background(), nil, func(uid providers.UID, size int64, body io.Reader) error {
		raw, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if int64(len(raw)) != size {
			t.Errorf("uid %d: %d bytes announced, %d read", uid, size, len(raw))
		}
		out = append(out, message{uid: uid, raw: raw})
		return nil
	}); err != nil {
		t.Fatalf("Fetch %q: %v", name, err)
	}
	if len(out) != len(infos) {
		t.Fatalf("List gave %d messages, Fetch %d", len(infos), len(out))
	}
	for i := range out {
		out[i].info = infos[i]
		if infos[i].UID != out[i].uid || infos[i].Size != int64(len(out[i].raw)) {
			t.Errorf("message %d: listed uid %d size %d, fetched uid %d size %d", i, infos[i].UID, infos[i].Size, out[i].uid, len(out[i].raw))
		}
		if k := providers.KeyOf(out[i].raw); infos[i].Key != k {
			t.Errorf("uid %d: listed key %+v, KeyOf(fetched) %+v", out[i].uid, infos[i].Key, k)
		}
	}
	return out
}

func raws(msgs []message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.raw)
	}
	return out
}

// hasProblem checks that a problem mentions the file, the line (if given)
// and the words.
func hasProblem(t *testing.T, st *mbox.Store, path string, line int64, words string) {
	t.Helper()
	for _, p := range st.Problems() {
		if p.Path == path && (line == 0 || p.Line == line) && strings.Contains(p.What, words) {
			if !strings.Contains(p.String(), path) {
				t.Errorf("problem %q does not name the file", p.String())
			}
			return
		}
	}
	t.Errorf("no problem %q at %s line %d; problems: %v", words, path, line, st.Problems())
}

const (
	from1 = "From a@example.org Mon Jan  1 00:00:00 2001\n"
	from2 = "From b@example.org Tue Jan  2 00:00:00 2001\n"
)

func TestReadMalformed(t *testing.T) {
	huge := strings.Repeat("0123456789", 300<<10) // one 3 MB line
	for _, c := range []struct {
		name    string
		file    string
		want    []string
		line    int64 // of the problem, 0 for any
		problem string
		also    []string // more problems, anywhere
		doubt   bool     // the message count is in doubt
	}{
		{name: "well formed", file: from1 + "Subject: 1\n\nbody 1\n\n" + from2 + "Subject: 2\n\nbody 2\n\n",
			want: []string{"Subject: 1\n\nbody 1\n", "Subject: 2\n\nbody 2\n"}},
		{name: "no blank line before From_", file: from1 + "Subject: 1\n\nbody 1\n" + from2 + "Subject: 2\n\nbody 2\n\n",
			want: []string{"Subject: 1\n\nbody 1\n", "Subject: 2\n\nbody 2\n"}, line: 5, problem: "without a blank line before it"},
		{name: "CRLF file", file: strings.ReplaceAll(from1+"Subject: 1\n\nbody 1\n\n"+from2+"Subject: 2\n\nbody 2\n\n", "\n", "\r\n"),
			want: []string{"Subject: 1\r\n\r\nbody 1\r\n", "Subject: 2\r\n\r\nbody 2\r\n"}},
		{name: "truncated last message", file: from1 + "Subject: 1\n\nbody 1\n\n" + from2 + "Subject: 2\n\nbo",
			want: []string{"Subject: 1\n\nbody 1\n", "Subject: 2\n\nbo"}, line: 6, problem: "may be truncated"},
		{name: "huge line", file: from1 + "Subject: huge\n\n" + huge + "\n\n" + from2 + "Subject: 2\n\n\n",
			want: []string{"Subject: huge\n\n" + huge + "\n", "Subject: 2\n\n"}},
		{name: "junk before the first From_", file: "junk\x00\xff\x01 binary\nmore junk\n\n" + from1 + "Subject: 1\n\nbody\n\n",
			want: []string{"Subject: 1\n\nbody\n"}, line: 1, problem: "bytes before the first From_ line skipped"},
		{name: "no From_ line at all", file: "\x00\x01\x02 binary junk\nSubject: not mbox\n\nbody\n",
			want: nil, line: 1, problem: "no From_ line found"},
		{name: "empty file", file: "", want: nil},
		{name: "unquoted From in the body (mboxo)", file: "From -\nSubject: x\n\nFavourite film:\n\nFrom Russia with love\n\nThe end\n\nFrom -\nSubject: y\n\nz\n\n",
			want: []string{"Subject: x\n\nFavourite film:\n\nFrom Russia with love\n\nThe end\n", "Subject: y\n\nz\n"}, line: 6,
			problem: "after a blank line, with no date that could be read and no header after it: kept as message text", doubt: true,
			also: []string{"2 From_ line(s) without a date"}},
		{name: "mboxrd quoting", file: from1 + "Subject: q\n\n>From a\n>>From b\n>Fromage\nFrom: not a separator\n\n",
			want: []string{"Subject: q\n\nFrom a\n>From b\n>Fromage\nFrom: not a separator\n"}},
		{name: "byte order mark", file: "\xef\xbb\xbf" + from1 + "Subject: bom\n\nb\n\n", want: []string{"Subject: bom\n\nb\n"}},
		{name: "From_ without a date, header follows", file: "From 1844347792267117879@xxx\nSubject: 1\n\nb1\n\nFrom 1844347839636459560@xxx\nSubject: 2\n\nb2\n\n",
			want: []string{"Subject: 1\n\nb1\n", "Subject: 2\n\nb2\n"}, line: 1, problem: "the file's time for 2"},
		{name: "file ends inside a From_ line", file: from1 + "Subject: 1\n\nb\n\nFrom x@y Mon Jan  1 00:00:00 2001",
			want: []string{"Subject: 1\n\nb\n", ""}, line: 6, problem: "may be truncated"},
		{name: "message of blank lines", file: from1 + "\n\n\n\n" + from2 + "\n", want: []string{"\n\n\n", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.mbox")
			write(t, path, c.file)
			st := openStore(t, dir, mbox.Options{ReadOnly: true})
			got := raws(read(t, st, "x"))
			if !slices.Equal(got, c.want) {
				t.Errorf("messages:\n got %q\nwant %q", got, c.want)
			}
			if c.problem != "" {
				hasProblem(t, st, path, c.line, c.problem)
			}
			for _, w := range c.also {
				hasProblem(t, st, path, 0, w)
			}
			for _, p := range st.Problems() {
				if (c.problem == "" || !strings.Contains(p.What, c.problem)) &&
					!slices.ContainsFunc(c.also, func(w string) bool { return strings.Contains(p.What, w) }) {
					t.Errorf("unexpected problem: %s", p)
				}
			}
			if doubts := st.Doubts("x"); len(doubts) > 0 != c.doubt {
				t.Errorf("doubts %q, want some: %v", doubts, c.doubt)
			}
		})
	}
}

func TestDates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.mbox")
	write(t, path, "From a Sun Mar 25 02:00:00 2007 +0200\nDate: Mon, 1 Jan 2001 00:00:00 +0000\n\n1\n\n"+
		"From -\nDate: Tue, 2 Jan 2001 10:00:00 -0500\n\n2\n\n"+
		"From -\nSubject: no date anywhere\n\n3\n\n")
	mtime := time.Date(2015, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, dir, mbox.Options{ReadOnly: true})
	msgs := read(t, st, "d")
	want := []time.Time{
		time.Date(2007, 3, 25, 0, 0, 0, 0, time.UTC), // the From_ line wins
		time.Date(2001, 1, 2, 15, 0, 0, 0, time.UTC), // then the Date field
		mtime, // then the file's time
	}
	for i, m := range msgs {
		if !m.info.InternalDate.Equal(want[i]) {
			t.Errorf("message %d: InternalDate %v, want %v", i+1, m.info.InternalDate, want[i])
		}
	}
}

func TestFlagsFromHeaders(t *testing.T) {
	dir := t.TempDir()
	msg1 := "Status: RO\nX-Status: AF\nX-Keywords: $Label1 work\nSubject: mutt\n\nb\n"
	msg2 := "X-Mozilla-Status: 0003\nX-Mozilla-Status2: 00800000\nX-Mozilla-Keys: todo                \nSubject: thunderbird\n\nb\n"
	msg3 := "Status: O\nSubject: unread\n\nb\n"
	write(t, filepath.Join(dir, "f.mbox"), from1+msg1+"\n"+from1+msg2+"\n"+from1+msg3+"\n")
	st := openStore(t, dir, mbox.Options{ReadOnly: true})
	msgs := read(t, st, "f")
	want := [][]string{{`\Seen`, `\Answered`, `\Flagged`, "$Label1", "work"}, {`\Seen`, `\Answered`, "$MDNSent", "todo"}, nil}
	for i, m := range msgs {
		if !slices.Equal(m.info.Flags, want[i]) {
			t.Errorf("message %d: flags %q, want %q", i+1, m.info.Flags, want[i])
		}
	}
	// The headers that carry flags are served untouched.
	if got := raws(msgs); !slices.Equal(got, []string{msg1, msg2, msg3}) {
		t.Errorf("bytes changed:\n got %q", got)
	}
}

func TestNames(t *testing.T) {
	dir := t.TempDir()
	mb := from1 + "Subject: x\n\nb\n\n"
	files := map[string]string{
		"Inbox":                        mb, // Thunderbird: no extension
		"Inbox.msf":                    "// <!-- <mdb:mork:z v=\"1.4\"/> -->",
		"Inbox.sbd/Sub":                mb,
		"Sent.mbox":                    mb,
		"Sent":                         mb, // the same name as Sent.mbox
		"Archive/2023.mbox":            mb,
		"Archive/2023.mbox.mailferry":  "{}",
		"Trash":                        "", // an empty Thunderbird folder
		".hidden.mbox":                 mb,
		".git/config.mbox":             mb,
		"notes.txt":                    "shopping list\n",
		"Apple.mbox/mbox":              mb,
		"Apple.mbox/table_of_contents": "\x00\x01",
		"Apple.mbox/Child.mbox/mbox":   mb,
		"caf\xe9.mbox":                 mb, // Latin-1 file name
		"v1.2 release":                 mb,
		"100%25 done.mbox":             mb,
	}
	for name, content := range files {
		write(t, filepath.Join(dir, name), content)
	}
	st := openStore(t, dir, mbox.Options{ReadOnly: true})
	list, err := st.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range list {
		got[m.Name] = m.SpecialUse
	}
	want := map[string]string{
		"INBOX": "", "INBOX/Sub": "", "Sent": providers.RoleSent, "Archive/2023": "", "Trash": providers.RoleTrash,
		"Apple": "", "Apple/Child": "", "caf%E9": "", "v1.2 release": "", "100% done": "",
	}
	if len(got) != len(want) {
		t.Errorf("mailboxes %v, want %v", got, want)
	}
	for name, role := range want {
		if r, ok := got[name]; !ok || r != role {
			t.Errorf("mailbox %q: present %v, role %q; want role %q", name, ok, r, role)
		}
	}
	hasProblem(t, st, filepath.Join(dir, "notes.txt"), 0, "not an mbox file")
	hasProblem(t, st, filepath.Join(dir, "caf\xe9.mbox"), 0, "not UTF-8")
	hasProblem(t, st, filepath.Join(dir, "Sent.mbox"), 0, "already")
	for _, name := range []string{"INBOX/Sub", "caf%E9", "Apple/Child"} {
		if msgs := read(t, st, name); len(msgs) != 1 {
			t.Errorf("%q holds %d messages, want 1", name, len(msgs))
		}
	}
}

func TestCreateOddNames(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, mbox.Options{})
	ctx := context.Background()
	names := []string{".hidden", "100%", "%2E", "a.sbd/b", "x.mbox/y", "x.mbox/mbox", "Inbox/child", "table_of_contents", "notes.msf", "Ünïcödé/日本語/한국어"}
	for _, n := range names {
		if err := st.CreateMailbox(ctx, n, ""); err != nil {
			t.Errorf("CreateMailbox(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "a//b", "..", "a/../b", "./a", "a/."} {
		if err := st.CreateMailbox(ctx, n, ""); err == nil || errors.Is(err, providers.ErrMailboxExists) {
			t.Errorf("CreateMailbox(%q): %v, want a refusal", n, err)
		}
	}
	// Another store reads the names back from the files.
	list, err := openStore(t, dir, mbox.Options{ReadOnly: true}).Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range list {
		got = append(got, m.Name)
	}
	want := slices.Clone(names)
	want[slices.Index(want, "Inbox/child")] = "INBOX/child"
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("names read back:\n got %q\nwant %q", got, want)
	}
	err = st.CreateMailbox(ctx, "INBOX/CHILD", "")
	if err != nil {
		t.Errorf("CreateMailbox(INBOX/CHILD) next to INBOX/child: %v", err)
	}
	if err := st.CreateMailbox(ctx, "inbox/child", ""); !errors.Is(err, providers.ErrMailboxExists) {
		t.Errorf("CreateMailbox(inbox/child): %v, want ErrMailboxExists", err)
	}
}
