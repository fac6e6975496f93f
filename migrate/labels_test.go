package migrate

import (
	"context"
	"testing"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// gmailSource builds a Gmail-like account: message 1 in INBOX and the
// label Work, message 2 in Work only, message 3 archived (All Mail only),
// message 4 starred in INBOX; All Mail holds 1-4, Starred holds 4.
func gmailSource() *mem.Store {
	src := mem.New()
	for _, name := range []string{"[Gmail]/All Mail", "[Gmail]/Starred", "[Gmail]/Sent Mail"} {
		src.Put(name, msg(900, "seed"), nil, testDate) // created with one filler, removed below
	}
	src.SetRole("[Gmail]/All Mail", providers.RoleAll)
	src.SetRole("[Gmail]/Starred", providers.RoleFlagged)
	src.SetRole("[Gmail]/Sent Mail", providers.RoleSent)
	for _, name := range []string{"[Gmail]/All Mail", "[Gmail]/Starred", "[Gmail]/Sent Mail"} {
		src.Delete(name, 1)
	}
	src.Put("INBOX", msg(1, ""), []string{`\Seen`}, testDate)
	src.Put("Work", msg(1, ""), []string{`\Seen`}, testDate)
	src.Put("Work", msg(2, ""), nil, testDate)
	src.Put("INBOX", msg(4, ""), []string{`\Flagged`}, testDate)
	src.Put("[Gmail]/Starred", msg(4, ""), []string{`\Flagged`}, testDate)
	src.Put("[Gmail]/Sent Mail", msg(5, ""), []string{`\Seen`}, testDate)
	for _, i := range []int{1, 2, 3, 4, 5} {
		src.Put("[Gmail]/All Mail", msg(i, ""), nil, testDate)
	}
	return src
}

func TestGmailLabelsCopiedOnceAndArchiveKept(t *testing.T) {
	src, dst := gmailSource(), mem.New()
	dst.Put("Sent", msg(800, ""), nil, testDate)
	dst.SetRole("Sent", providers.RoleSent)
	l := openLedger(t)
	pol := LabelPolicy{Once: true, AllMail: AllMailArchived, SkipViews: true}
	sum := run(t, src, dst, l, Options{Labels: pol})

	count := func(name string) int { return len(dst.Messages(name)) }
	if count("INBOX") != 2 || count("Work") != 1 || count("Archive") != 1 || count("Sent") != 2 {
		t.Fatalf("destination: INBOX %d (want 2), Work %d (want 1), Archive %d (want 1), Sent %d (want 2 with the filler); names %v",
			count("INBOX"), count("Work"), count("Archive"), count("Sent"), dst.Names())
	}
	if got := dst.Messages("Archive")[0].Raw; string(got) != string(msg(3, "")) {
		t.Errorf("Archive holds %q, want the archived message 3", got)
	}
	for _, name := range dst.Names() {
		if name == "[Gmail]/Starred" || name == "[Gmail]/All Mail" {
			t.Errorf("view %s was copied as a folder", name)
		}
	}
	tot := sum.Totals()
	// 7 appearances besides All Mail's 5: INBOX 2, Work 2, Sent 1, Starred
	// (skipped) 1; All Mail 5. Copied: 1, 4, 2, 5, 3 = 5 messages; in
	// other labels: Work's 1, and All Mail's 1, 2, 4, 5.
	if tot.Copied != 5 || tot.OtherLabel != 5 || tot.Seen != 5 {
		t.Errorf("totals: copied %d, other label %d, seen %d; want 5, 5, 5", tot.Copied, tot.OtherLabel, tot.Seen)
	}

	// A re-run copies nothing, even after a label is added on the source
	// to a message an earlier run already copied elsewhere.
	src.Put("Alpha", msg(2, ""), nil, testDate)
	again := run(t, src, dst, l, Options{Labels: pol})
	if n := again.Totals().New; n != 0 {
		t.Errorf("re-run copied %d, want 0 (message 2 was copied to Work by the first run)", n)
	}
	if count("Alpha") != 0 {
		t.Errorf("Alpha got %d copies, want 0", count("Alpha"))
	}

	v, err := Verify(context.Background(), BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}, src, dst, l, VerifyOptions{Labels: pol})
	if err != nil || !v.Pass {
		t.Fatalf("verify with the same policy: pass %v, err %v: %+v", v.Pass, err, v.Mailboxes)
	}
	v, _ = Verify(context.Background(), BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}, src, dst, l, VerifyOptions{})
	if v.Pass {
		t.Error("verify without the label policy passed, but Work lacks message 1 and Alpha message 2")
	}
}

func TestGmailLabelsEachCopiesEveryFolder(t *testing.T) {
	src, dst := gmailSource(), mem.New()
	sum := run(t, src, dst, openLedger(t), Options{Labels: LabelPolicy{AllMail: AllMailArchived}})
	if n := len(dst.Messages("Work")); n != 2 {
		t.Errorf("Work has %d, want 2: each label folder gets its copy", n)
	}
	if n := len(dst.Messages("Archive")); n != 1 {
		t.Errorf("Archive has %d, want 1: only the archived message", n)
	}
	// Without SkipViews, Starred is copied like a folder.
	if n := len(dst.Messages("[Gmail]/Starred")); n != 1 {
		t.Errorf("Starred has %d, want 1", n)
	}
	if tot := sum.Totals(); tot.OtherLabel != 4 {
		t.Errorf("other label %d, want 4 (All Mail's messages held elsewhere)", tot.OtherLabel)
	}
}

func TestAllMailSkippedByDefault(t *testing.T) {
	src, dst := gmailSource(), mem.New()
	sum := run(t, src, dst, openLedger(t), Options{})
	for _, name := range dst.Names() {
		if name == "Archive" || name == "[Gmail]/All Mail" {
			t.Errorf("%s created without a label policy", name)
		}
	}
	skipped := false
	for _, s := range sum.Skipped {
		skipped = skipped || s.Mailbox == "[Gmail]/All Mail"
	}
	if !skipped {
		t.Errorf("All Mail not reported skipped: %+v", sum.Skipped)
	}
}
