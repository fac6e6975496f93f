package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gombox "github.com/emersion/go-mbox"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// corpusDir is the shared corpus of real, often malformed mail: from
// $MAILFERRY_CORPUS, else ../shared/corpus beside the repository. It is not
// part of the repository; tests that need it skip without it.
func corpusDir(t *testing.T) string {
	t.Helper()
	for _, d := range []string{os.Getenv("MAILFERRY_CORPUS"), filepath.Join("..", "..", "..", "shared", "corpus"), "/work/shared/corpus"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "manifest.tsv")); err == nil {
			return d
		}
	}
	t.Skip("the shared corpus is not here (set MAILFERRY_CORPUS to its directory)")
	return ""
}

// corpusMailboxes reads the corpus into one mailbox per source: every
// .eml file as it is, and every message of the mbox files as
// github.com/emersion/go-mbox splits them (a reader independent of
// mailferry's own). Flags and dates vary deterministically.
func corpusMailboxes(t *testing.T, dir string) map[string][]imaptest.SeedMessage {
	t.Helper()
	out := map[string][]imaptest.SeedMessage{}
	base := time.Date(2009, 2, 13, 23, 31, 30, 0, time.UTC)
	add := func(box string, raw []byte) {
		i := len(out[box])
		var flags []string
		switch i % 4 {
		case 0:
			flags = []string{`\Seen`}
		case 1:
			flags = []string{`\Seen`, `\Answered`, "$Forwarded"}
		case 2:
			flags = []string{`\Flagged`, "Corpus"}
		}
		out[box] = append(out[box], imaptest.SeedMessage{Raw: raw, Flags: flags, InternalDate: base.Add(time.Duration(len(out[box])) * 97 * time.Minute)})
	}
	emls, err := filepath.Glob(filepath.Join(dir, "messages", "*", "*.eml"))
	if err != nil || len(emls) == 0 {
		t.Fatalf("corpus messages: %v, %v", emls, err)
	}
	for _, f := range emls {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		add("Corpus/"+filepath.Base(filepath.Dir(f)), raw)
	}
	mboxes, err := filepath.Glob(filepath.Join(dir, "mbox", "*", "*.mbox"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mboxes {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r := gombox.NewReader(fh)
		for n := 0; ; n++ {
			m, err := r.NextMessage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil && n == 0 {
				// Not an mbox to go-mbox (a BOM before the first From_
				// line): the whole file is one more hostile message.
				raw, rerr := os.ReadFile(f)
				if rerr != nil {
					t.Fatal(rerr)
				}
				add("Corpus/mbox-"+filepath.Base(filepath.Dir(f)), raw)
				break
			}
			if err != nil {
				t.Logf("go-mbox stops reading %s: %v", filepath.Base(f), err)
				break
			}
			raw, err := io.ReadAll(m)
			if err != nil {
				t.Logf("go-mbox stops reading %s: %v", filepath.Base(f), err)
				break
			}
			add("Corpus/mbox-"+filepath.Base(filepath.Dir(f)), raw)
		}
		fh.Close()
	}
	return out
}

// TestCorpusDovecotToDovecot: every message of the shared corpus (broken
// MIME, bare LF, NUL bytes, 8-bit and huge headers, missing and repeated
// Message-IDs, deep nesting) goes from one real Dovecot to another through
// the mailferry binary. Checked with doveadm: each arrives with the bytes
// the source serves, its flags and its date, or it is reported failed with
// the server's reason; nothing else is on the destination, and a re-run
// copies nothing.
func TestCorpusDovecotToDovecot(t *testing.T) {
	dir := corpusDir(t)
	boxes := corpusMailboxes(t, dir)
	users := map[string]string{"alice": "pw-alice"}
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users, Separator: "."})
	total := 0
	for box, msgs := range boxes {
		src.Seed(t, "alice", box, msgs)
		total += len(msgs)
	}
	work := t.TempDir()
	env := []string{"MAILFERRY_FROM_PASSWORD=pw-alice", "MAILFERRY_TO_PASSWORD=pw-alice"}
	args := []string{"migrate", "--from", "imap+plain://alice@" + src.Addr(), "--to", "imap+plain://alice@" + dst.Addr(),
		"--checkpoint", filepath.Join(work, "run.db"), "--output", "json", "--report", filepath.Join(work, "report.json")}
	r := runBinary(t, env, args...)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("migrate exit %d (0 or 1 expected)\n%s", r.code, r.stderr)
	}
	rep := readReport(t, filepath.Join(work, "report.json"))
	if len(rep.Accounts) != 1 {
		t.Fatalf("report has %d accounts", len(rep.Accounts))
	}
	acct := rep.Accounts[0]
	tot := acct.Totals()
	if tot.Copied+tot.Duplicate+tot.Failed != tot.Seen || tot.Pending != 0 {
		t.Errorf("totals do not add up: %+v", tot)
	}
	failedIn := map[string]int{}
	for _, m := range acct.Mailboxes {
		failedIn[m.Source] = m.Failed
		if m.Error != "" {
			t.Errorf("mailbox %s failed as a whole: %s", m.Source, m.Error)
		}
		for _, f := range m.Failures {
			if strings.TrimSpace(f.Reason) == "" {
				t.Errorf("%s uid %d failed without the server's reason", m.Source, f.UID)
			}
		}
	}
	seen, refused, withNUL := 0, 0, 0
	for box := range boxes {
		want := src.Messages(t, "alice", box)
		for _, m := range want {
			// Stored bytes that BODY[] cannot show (NUL): lineSet holds
			// them to the exact stored bytes too.
			if m.ExactSHA256 != m.SHA256 {
				withNUL++
			}
		}
		got := dst.Messages(t, "alice", strings.ReplaceAll(box, "/", "."))
		seen += len(want)
		missing, extra := diff(lineSet(want), lineSet(got))
		if len(extra) > 0 {
			t.Errorf("%s: %d destination message(s) are not byte for byte, flag for flag a source message: %v", box, len(extra), extra)
		}
		if len(missing) != failedIn[box] {
			t.Errorf("%s: %d source message(s) missing on the destination, %d reported failed: %v", box, len(missing), failedIn[box], missing)
		}
		refused += len(missing)
	}
	if seen != total || tot.Seen != total {
		t.Errorf("seeded %d messages, the source holds %d, mailferry saw %d", total, seen, tot.Seen)
	}
	t.Logf("%d corpus messages in %d mailboxes: %d copied, %d duplicate, %d refused by the destination; %d hold NUL bytes", total, len(boxes), tot.Copied, tot.Duplicate, refused, withNUL)
	if _, err := os.Stat(filepath.Join(dir, "messages", "spamscope-mail-parser", "mail_outlook_1.eml")); err == nil && withNUL == 0 {
		t.Errorf("the corpus's message with NUL bytes is not among the source's: the test no longer checks them")
	}

	before := dst.Doveadm(t, "mailbox", "status", "-u", "alice", "messages", "*")
	args[len(args)-1] = filepath.Join(work, "again.json")
	again := runBinary(t, env, args...)
	if again.code != r.code {
		t.Errorf("re-run exit %d, first run %d\n%s", again.code, r.code, again.stderr)
	}
	if n := readReport(t, filepath.Join(work, "again.json")).Accounts[0].Totals().New; n != 0 {
		t.Errorf("the re-run copied %d message(s)", n)
	}
	if after := dst.Doveadm(t, "mailbox", "status", "-u", "alice", "messages", "*"); after != before {
		t.Errorf("the re-run changed the destination:\n%s\n%s", before, after)
	}
}
