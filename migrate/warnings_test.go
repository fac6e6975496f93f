package migrate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
	"github.com/mailferry/mailferry/providers/mem"
)

// malformedMbox is an mbox file with 11 bytes of junk before its first
// From_ line and a last message cut inside a line; the two messages before
// the cut are whole.
const malformedMbox = "junk\x00 here\n" +
	"From a@example.org Mon Jan  1 00:00:00 2001\n" + // line 2, byte 11
	"Subject: one\n\nsecret body one\n\n" +
	"From b@example.org Tue Jan  2 00:00:00 2001\n" + // line 7
	"Subject: two\n\nsecret body two\n\n" +
	"From c@example.org Wed Jan  3 00:00:00 2001\n" + // line 12, byte 161
	"Subject: three\n\nsecret bo"

func writeMbox(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mboxAccount(t *testing.T, dir string, dst *mem.Store) BatchAccount {
	t.Helper()
	return BatchAccount{ID: ledger.AccountID("alice", "alice"), SourceUser: "alice", DestUser: "alice",
		OpenSource: func(context.Context) (providers.Store, error) {
			return mbox.Open(dir, mbox.Options{ReadOnly: true})
		},
		OpenDest: func(context.Context) (providers.Store, error) { return dst, nil },
	}
}

// TestRunBatchReportsMboxProblems imports a directory of mbox files, one
// of them malformed: the summary (and the account_done event) lists each
// problem with its side, file, line and byte offset, and no message text,
// and every well-formed message is copied all the same.
func TestRunBatchReportsMboxProblems(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "Archive.mbox")
	writeMbox(t, bad, malformedMbox)
	writeMbox(t, filepath.Join(dir, "INBOX"), "From x@example.org Mon Jan  1 00:00:00 2001\nSubject: fine\n\nfine\n\n")
	// A file name that is not UTF-8 and holds a newline: reported, and
	// escaped so that the warning stays one printable line.
	writeMbox(t, filepath.Join(dir, "caf\xe9\nx.mbox"), "From x@example.org Mon Jan  1 00:00:00 2001\nSubject: cafe\n\ncafe\n\n")
	dst := mem.New()
	var mu sync.Mutex
	var done *AccountSummary
	opts := BatchOptions{Options: Options{QuietWait: time.Millisecond, Backoff: time.Millisecond, Events: func(e Event) {
		if e.Kind == EventAccountDone {
			mu.Lock()
			done = e.Account
			mu.Unlock()
		}
	}}}
	sums := RunBatch(context.Background(), []BatchAccount{mboxAccount(t, dir, dst)}, openLedger(t), opts)
	s := sums[0]
	if s.Status != StatusOK || s.Error != "" {
		t.Fatalf("status %s, error %q: problems in the files must not fail the account", s.Status, s.Error)
	}
	checkAddsUp(t, s)
	if n := len(dst.Messages("Archive")); n != 3 {
		t.Errorf("Archive: %d messages copied, want the 3 the file holds (the last as it is)", n)
	}
	if n := len(dst.Messages("INBOX")); n != 1 {
		t.Errorf("INBOX: %d messages copied, want 1", n)
	}
	want := []string{
		fmt.Sprintf("source: %s:1 (byte 0): 11 bytes before the first From_ line skipped", bad),
		fmt.Sprintf("source: %s:12 (byte 161): the file ends inside a line: the last message may be truncated", bad),
		`caf\xe9\x0ax.mbox: file name is not UTF-8`,
	}
	for _, w := range want {
		if !slices.ContainsFunc(s.Warnings, func(got string) bool { return strings.Contains(got, w) }) {
			t.Errorf("no warning %q in %q", w, s.Warnings)
		}
	}
	if s.WarningCount != len(s.Warnings) || len(s.Warnings) != len(want) {
		t.Errorf("WarningCount %d, %d listed, want %d: %q", s.WarningCount, len(s.Warnings), len(want), s.Warnings)
	}
	for _, w := range s.Warnings {
		if strings.Contains(w, "secret") || strings.Contains(w, "Subject") || !utf8.ValidString(w) || strings.ContainsAny(w, "\n\x00") {
			t.Errorf("warning %q holds message text or unprintable bytes", w)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if done == nil || !slices.Equal(done.Warnings, s.Warnings) {
		t.Errorf("account_done event carries warnings %v, want %q", done, s.Warnings)
	}
}

// TestRunBatchCapsWarnings: a file with a problem per message lists the
// first maxWarnings and counts them all.
func TestRunBatchCapsWarnings(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range maxWarnings + 50 {
		// No blank line before the next From_ line: one problem each.
		fmt.Fprintf(&b, "From x@example.org Mon Jan  1 00:00:00 2001\nSubject: %d\n\nbody %d\n", i, i)
	}
	b.WriteString("\n")
	writeMbox(t, filepath.Join(dir, "INBOX"), b.String())
	dst := mem.New()
	opts := BatchOptions{Options: Options{QuietWait: time.Millisecond, Backoff: time.Millisecond}}
	s := RunBatch(context.Background(), []BatchAccount{mboxAccount(t, dir, dst)}, openLedger(t), opts)[0]
	if s.Status != StatusOK || len(dst.Messages("INBOX")) != maxWarnings+50 {
		t.Fatalf("status %s, %d of %d messages copied", s.Status, len(dst.Messages("INBOX")), maxWarnings+50)
	}
	if len(s.Warnings) != maxWarnings || s.WarningCount != maxWarnings+49 {
		t.Errorf("%d warnings listed, count %d; want %d listed of %d", len(s.Warnings), s.WarningCount, maxWarnings, maxWarnings+49)
	}
}
