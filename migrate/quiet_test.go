package migrate

import (
	"slices"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// TestQuietMailboxesAreNotOpened: a re-run with nothing new opens no
// mailbox (both sides are as the last pass left them), and reports the
// same counts; any change on either side (a new message, a flag, an
// expunge) makes the mailbox be looked at again, and the change is dealt
// with as before.
func TestQuietMailboxesAreNotOpened(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 6 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	src.Put("Work", msg(10, ""), []string{`\Seen`}, testDate)
	dst.Put("INBOX", msg(2, ""), nil, testDate) // a duplicate
	l := openLedger(t)
	first := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	opened := 0
	src.OpenHook = func(string) { opened++ }
	again := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if opened != 0 {
		t.Errorf("the re-run opened %d source mailbox(es); both sides were unchanged", opened)
	}
	for i, m := range again.Mailboxes {
		f := first.Mailboxes[i]
		if !m.Unchanged || m.Seen != f.Seen || m.Copied != f.Copied || m.Duplicate != f.Duplicate || m.New != 0 {
			t.Errorf("re-run %+v, first run %+v: want the same counts, unchanged", m, f)
		}
	}

	// A flag changed on the source: that mailbox is looked at, the copy
	// follows; the other is still not opened.
	uid := src.Messages("INBOX")[3].UID
	src.SetMessageFlags("INBOX", uid, []string{`\Flagged`})
	opened = 0
	sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	if opened != 1 {
		t.Errorf("after a flag change %d mailboxes were opened, want 1", opened)
	}
	for _, m := range sum.Mailboxes {
		if m.Unchanged != (m.Source == "Work") {
			t.Errorf("%s unchanged=%v after a flag change in INBOX", m.Source, m.Unchanged)
		}
	}
	if !slices.ContainsFunc(dst.Messages("INBOX"), func(m mem.Message) bool { return slices.Contains(m.Flags, `\Flagged`) }) {
		t.Errorf("the flag change did not follow")
	}
	// A new message arrives: copied.
	src.Put("Work", msg(11, ""), nil, testDate)
	if sum := run(t, src, dst, l, Options{QuietWait: time.Millisecond}); sum.Totals().New != 1 {
		t.Errorf("after a new message: %+v, want it copied", sum.Totals())
	}
	// A filter sees what a listing cannot: never judged by it.
	opened = 0
	run(t, src, dst, l, Options{QuietWait: time.Millisecond, Select: Selection{Filter: providers.Filter{Since: testDate.Add(-time.Hour)}}})
	if opened != 2 {
		t.Errorf("with a filter %d mailboxes were opened, want both", opened)
	}
}
