package migrate

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers/mem"
)

func verifyFixture(t *testing.T) (src, dst *mem.Store, l *ledger.Memory, a BatchAccount) {
	src, dst, l = mem.New(), mem.New(), openLedger(t)
	for i := range 8 {
		src.Put("INBOX", msg(i, strings.Repeat("long body line\r\n", 200)), []string{`\Seen`, "Work"}, testDate)
	}
	src.Put("Lists", msg(50, ""), nil, testDate)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	return src, dst, l, BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
}

func problems(s VerifySummary) string {
	var b strings.Builder
	for _, m := range s.Mailboxes {
		for _, p := range m.Details {
			b.WriteString(m.Source + ": " + p.What + "\n")
		}
	}
	return b.String()
}

func TestVerifyPassesAfterMigrate(t *testing.T) {
	src, dst, l, a := verifyFixture(t)
	sum, err := Verify(context.Background(), a, src, dst, l, VerifyOptions{Deep: true, Record: true})
	if err != nil || !sum.Pass {
		t.Fatalf("Verify: %v, pass=%v\n%s", err, sum.Pass, problems(sum))
	}
	for _, m := range sum.Mailboxes {
		if m.Verified != m.Seen || m.Unmatched != 0 {
			t.Errorf("%s: verified %d of %d, unmatched %d", m.Source, m.Verified, m.Seen, m.Unmatched)
		}
	}
	if acc, _, _ := l.Account(a.ID); acc.State != ledger.AccountVerified {
		t.Errorf("account state %q, want verified", acc.State)
	}
}

func TestVerifyFindsEachKindOfProblem(t *testing.T) {
	src, dst, l, a := verifyFixture(t)
	inbox := dst.Messages("INBOX")
	dst.Delete("INBOX", inbox[0].UID)                                       // lost on the destination
	dst.SetMessageFlags("INBOX", inbox[1].UID, []string{"Work"})            // \Seen lost
	src.Put("INBOX", msg(99, "arrived after the migration"), nil, testDate) // not copied yet
	// Same size, same headers and first KiB, different end: only the deep
	// check can see it.
	raw := bytes.Clone(inbox[2].Raw)
	raw[len(raw)-3] ^= 1
	dst.Replace("INBOX", inbox[2].UID, raw)

	sum, err := Verify(context.Background(), a, src, dst, l, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := problems(sum)
	for _, want := range []string{"missing on the destination", "flags differ", "not copied yet"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if sum.Pass || strings.Contains(got, "bytes differ") {
		t.Errorf("pass=%v; a shallow check must not claim a byte comparison:\n%s", sum.Pass, got)
	}
	if sum.Mailboxes[0].Unmatched != 2 {
		t.Errorf("content check: %d unmatched, want 2 (the lost and the new message)", sum.Mailboxes[0].Unmatched)
	}
	deep, _ := Verify(context.Background(), a, src, dst, l, VerifyOptions{Deep: true})
	if !strings.Contains(problems(deep), "bytes differ") {
		t.Errorf("deep check missed the changed bytes:\n%s", problems(deep))
	}
}

func TestVerifyReportsUnmigratedMailbox(t *testing.T) {
	src, dst, l, a := verifyFixture(t)
	src.Put("New Folder", msg(70, ""), nil, testDate)
	sum, _ := Verify(context.Background(), a, src, dst, l, VerifyOptions{})
	if sum.Pass || !strings.Contains(problems(sum), "mailbox with 1 message(s) not migrated") {
		t.Errorf("pass=%v\n%s", sum.Pass, problems(sum))
	}
}
