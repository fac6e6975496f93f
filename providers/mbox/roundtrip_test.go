package mbox_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/memserver"
	"github.com/mailferry/mailferry/providers/mbox"
	"github.com/mailferry/mailferry/providers/mem"
)

// migrateOnce runs one migration through the checkpoint at ledger and
// returns how many messages it copied.
func migrateOnce(t *testing.T, src, dst providers.Store, ledger string) migrate.MailboxSummary {
	t.Helper()
	l, err := checkpoint.Open(ledger, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sum, err := migrate.Migrate(context.Background(), migrate.Account{ID: "rt", SourceUser: "a", DestUser: "a", Source: src, Dest: dst}, l, migrate.Options{Retries: -1})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !sum.OK() {
		t.Fatalf("Migrate not OK: %+v", sum)
	}
	return sum.Totals()
}

// tricky are messages that are hard for mbox: From lines, quoting, no final
// newline, no blank line, nothing at all.
func tricky() [][]byte {
	return [][]byte{
		[]byte("From: a@example.org\r\nSubject: From lines\r\nMessage-ID: <rt1@example.org>\r\n\r\nFrom here\r\n>From there\r\n>>From x\r\n\r\nFrom MAILER-DAEMON Sat Jan  1 00:00:00 2000\r\n"),
		[]byte("From a@example.org Sat Jan  1 00:00:00 2000\nSubject: starts with a From_ line, LF only\n\nbody\n"),
		[]byte("Subject: no final newline\r\nMessage-ID: <rt3@example.org>\r\n\r\nend"),
		[]byte("Subject: ends with blank lines\r\n\r\nbody\r\n\r\n\r\n"),
		[]byte("Subject: header only"),
		{},
		[]byte("\r\n"),
	}
}

// memLines describes a mem mailbox: sha256, flags and date of each message.
func memLines(s *mem.Store, name string) []string {
	var out []string
	for _, m := range s.Messages(name) {
		flags := slices.Clone(m.Flags)
		slices.Sort(flags)
		out = append(out, fmt.Sprintf("%x %q %s", sha256.Sum256(m.Raw), flags, m.InternalDate.UTC().Format(time.RFC3339)))
	}
	slices.Sort(out)
	return out
}

func TestRoundTripMem(t *testing.T) {
	src := mem.New()
	date := time.Date(2021, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))
	flagSets := [][]string{{`\Seen`}, {`\Answered`, `\Flagged`, "$Forwarded"}, {`\Draft`, "Custom_Keyword"}, {`\Deleted`, "$MDNSent"}, nil}
	boxes := []string{"INBOX", "Sent", "Archive/2023", "Entwürfe/日本", "v1.2 release"}
	for i, m := range tricky() {
		for j, box := range boxes {
			src.Put(box, m, flagSets[(i+j)%len(flagSets)], date.Add(time.Duration(i*97+j)*time.Hour))
		}
	}
	// The shared corpus's messages too, when it is here.
	var files []string
	if corpus := mbox.CorpusRoot(); corpus != "" {
		files, _ = filepath.Glob(filepath.Join(corpus, "messages", "hunnysoft", "*.eml"))
	}
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Put("Corpus", raw, flagSets[i%len(flagSets)], date.Add(time.Duration(i)*time.Minute))
	}
	src.SetRole("Sent", providers.RoleSent)

	dir, ledgers := t.TempDir(), t.TempDir()
	there := openStore(t, dir, mbox.Options{})
	if tot := migrateOnce(t, src, there, filepath.Join(ledgers, "there.db")); tot.New != tot.Seen {
		t.Fatalf("mem -> mbox copied %d of %d", tot.New, tot.Seen)
	}
	if tot := migrateOnce(t, src, openStore(t, dir, mbox.Options{}), filepath.Join(ledgers, "there.db")); tot.New != 0 {
		t.Errorf("re-run mem -> mbox copied %d, want 0", tot.New)
	}
	// Back, from another store on the directory (another process).
	back := mem.New()
	from := openStore(t, dir, mbox.Options{ReadOnly: true})
	if tot := migrateOnce(t, from, back, filepath.Join(ledgers, "back.db")); tot.New != tot.Seen || tot.Seen == 0 {
		t.Fatalf("mbox -> mem copied %d of %d", tot.New, tot.Seen)
	}
	if tot := migrateOnce(t, from, back, filepath.Join(ledgers, "back.db")); tot.New != 0 {
		t.Errorf("re-run mbox -> mem copied %d, want 0", tot.New)
	}
	if !slices.Equal(back.Names(), src.Names()) {
		t.Errorf("mailboxes %v, want %v", back.Names(), src.Names())
	}
	for _, name := range src.Names() {
		if got, want := memLines(back, name), memLines(src, name); !slices.Equal(got, want) {
			t.Errorf("%s differs after mem -> mbox -> mem:\n got %v\nwant %v", name, got, want)
		}
	}
	if p := from.Problems(); len(p) > 0 {
		t.Errorf("problems reading mailferry's own files: %v", p)
	}
}

func startMem(t *testing.T) (*memserver.Server, providers.Store) {
	t.Helper()
	srv, err := memserver.Start(map[string]string{"alice": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	st, err := imap.Open(context.Background(), imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: srv.Port()},
		User:     "alice", Password: "pw", Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return srv, st
}

func TestRoundTripIMAP(t *testing.T) {
	srcSrv, src := startMem(t)
	date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	seed := map[string][]memserver.Message{}
	for i := range 40 {
		// imapmemserver serves BODY[] re-serialised, so only well-formed CRLF
		// messages come back from it as they went in; these are.
		body := strings.Repeat(fmt.Sprintf("line %d\r\n", i), i*13)
		if i%5 == 0 {
			body += "From the start of a line\r\n>From quoted\r\n\r\nFrom MAILER-DAEMON Sat Jan  1 00:00:00 2000\r\n"
		}
		raw := fmt.Appendf(nil, "From: x%d@example.org\r\nSubject: m %d\r\nMessage-ID: <%d@rt.example.org>\r\n\r\n%s", i, i, i, body)
		box := []string{"INBOX", "Work/Clients", "Entwürfe/日本"}[i%3]
		seed[box] = append(seed[box], memserver.Message{Raw: raw, Flags: []string{`\Seen`, "$label1"}[:i%3], Date: date.Add(time.Duration(i) * time.Hour)})
	}
	seed["INBOX"] = append(seed["INBOX"], seed["INBOX"][2]) // an identical copy arrives too
	for box, msgs := range seed {
		if err := srcSrv.Seed("alice", box, msgs); err != nil {
			t.Fatal(err)
		}
	}

	dir, ledgers := t.TempDir(), t.TempDir()
	if tot := migrateOnce(t, src, openStore(t, dir, mbox.Options{}), filepath.Join(ledgers, "there.db")); tot.New != 41 {
		t.Fatalf("IMAP -> mbox copied %d, want 41", tot.New)
	}
	if tot := migrateOnce(t, src, openStore(t, dir, mbox.Options{}), filepath.Join(ledgers, "there.db")); tot.New != 0 {
		t.Errorf("re-run IMAP -> mbox copied %d, want 0", tot.New)
	}
	dstSrv, dst := startMem(t)
	from := openStore(t, dir, mbox.Options{ReadOnly: true})
	if tot := migrateOnce(t, from, dst, filepath.Join(ledgers, "back.db")); tot.New != 41 {
		t.Fatalf("mbox -> IMAP copied %d, want 41", tot.New)
	}
	if tot := migrateOnce(t, from, dst, filepath.Join(ledgers, "back.db")); tot.New != 0 {
		t.Errorf("re-run mbox -> IMAP copied %d, want 0", tot.New)
	}
	for box := range seed {
		want, err := srcSrv.Snapshot("alice", box)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dstSrv.Snapshot("alice", box)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s differs after IMAP -> mbox -> IMAP:\n got %v\nwant %v", box, got, want)
		}
	}
}

// TestReimportGrownForeignFile imports another program's mbox, lets that
// program append a message, and imports again through the same checkpoint:
// the file has no sidecar, so its UIDVALIDITY changed, and the copier must
// re-pair by content and copy only the new message.
func TestReimportGrownForeignFile(t *testing.T) {
	dir, ledger := t.TempDir(), filepath.Join(t.TempDir(), "import.db")
	path := filepath.Join(dir, "Inbox")
	write(t, path, from1+"Subject: 1\n\n1\n\n"+from2+"Subject: 2\n\n2\n\n"+from2+"Subject: 2\n\n2\n\n")
	dst := mem.New()
	if tot := migrateOnce(t, openStore(t, dir, mbox.Options{ReadOnly: true}), dst, ledger); tot.New != 3 {
		t.Fatalf("first import copied %d, want 3", tot.New)
	}
	if tot := migrateOnce(t, openStore(t, dir, mbox.Options{ReadOnly: true}), dst, ledger); tot.New != 0 {
		t.Errorf("unchanged re-import copied %d, want 0", tot.New)
	}
	appendFile(t, path, from1+"Subject: 3\n\n3\n\n")
	if tot := migrateOnce(t, openStore(t, dir, mbox.Options{ReadOnly: true}), dst, ledger); tot.New != 1 || tot.Copied != 4 {
		t.Errorf("re-import after growth: %d new, %d copied in all; want 1 and 4", tot.New, tot.Copied)
	}
	var got []string
	for _, m := range dst.Messages("INBOX") {
		got = append(got, string(m.Raw))
	}
	if want := []string{"Subject: 1\n\n1\n", "Subject: 2\n\n2\n", "Subject: 2\n\n2\n", "Subject: 3\n\n3\n"}; !slices.Equal(got, want) {
		t.Errorf("destination holds %q, want %q", got, want)
	}
}
