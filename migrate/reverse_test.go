package migrate

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/providers/mem"
)

// reverseFixture migrates, then plays a user working in the cloud.
type reverseFixture struct {
	src, dst              *mem.Store
	l                     *checkpoint.Store
	a                     BatchAccount
	srcInbox              []string // the source INBOX right after the migration
	arrived, created, old []byte
}

func newReverseFixture(t *testing.T) *reverseFixture {
	f := &reverseFixture{src: mem.New(), dst: mem.New(), l: openLedger(t)}
	f.a = BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	for i := range 6 {
		f.src.Put("INBOX", msg(i, ""), []string{`\Seen`}, testDate)
	}
	f.src.Put("Archive", msg(40, ""), []string{`\Seen`}, testDate)
	f.old = msg(90, "in the cloud before the migration")
	f.dst.Put("INBOX", f.old, nil, testDate)
	run(t, f.src, f.dst, f.l, Options{QuietWait: time.Millisecond})
	f.srcInbox = multiset(f.src, "INBOX")

	in := f.dst.Messages("INBOX") // [old, copies of 0..5]
	f.arrived = msg(100, "new mail in the cloud")
	f.dst.Put("INBOX", f.arrived, nil, testDate)
	f.dst.SetMessageFlags("INBOX", in[1].UID, []string{`\Flagged`})  // copy of 0: unread, flagged
	f.dst.Put("Archive", in[2].Raw, in[2].Flags, in[2].InternalDate) // copy of 1 moved to Archive
	f.dst.Delete("INBOX", in[2].UID)
	f.dst.Delete("INBOX", in[3].UID) // copy of 2 deleted
	f.created = msg(101, "filed in a new cloud folder")
	f.dst.Put("Cloud Folder", f.created, []string{`\Seen`}, testDate)
	return f
}

func flagsOfMsg(s *mem.Store, mailbox string, raw []byte) []string {
	for _, m := range s.Messages(mailbox) {
		if string(m.Raw) == string(raw) {
			f := slices.Clone(m.Flags)
			sort.Strings(f)
			return f
		}
	}
	return nil
}

func TestReverseCarriesBackWhatChanged(t *testing.T) {
	f := newReverseFixture(t)
	sum, err := Reverse(context.Background(), f.a, f.src, f.dst, f.l, ReverseOptions{})
	if err != nil || sum.Status != StatusOK {
		t.Fatalf("Reverse: %v %+v", err, sum)
	}
	// INBOX: every original still there, plus the new mail; not the mail
	// that was in the cloud before the migration.
	want := append(slices.Clone(f.srcInbox), hashLine(f.arrived))
	sort.Strings(want)
	got := multiset(f.src, "INBOX")
	// Message 0's flags changed in the cloud: compare contents without flags.
	if len(got) != len(want) {
		t.Fatalf("source INBOX has %d messages, want %d", len(got), len(want))
	}
	if fl := flagsOfMsg(f.src, "INBOX", msg(0, "")); !slices.Equal(fl, []string{`\Flagged`}) {
		t.Errorf("flags of message 0 on the source: %v, want [\\Flagged] as set in the cloud", fl)
	}
	if flagsOfMsg(f.src, "INBOX", f.old) != nil || slices.ContainsFunc(f.src.Messages("INBOX"), func(m mem.Message) bool { return string(m.Raw) == string(f.old) }) {
		t.Errorf("mail that was in the cloud before the migration was carried back")
	}
	if !slices.ContainsFunc(f.src.Messages("Archive"), func(m mem.Message) bool { return string(m.Raw) == string(msg(1, "")) }) {
		t.Errorf("the message moved to Archive in the cloud is not in the source Archive")
	}
	if got := multiset(f.src, "Cloud Folder"); !slices.Equal(got, []string{hashLine(f.created)[:64] + " [\\Seen] " + testDate.Format("2006-01-02T15:04:05Z07:00")}) {
		t.Errorf("Cloud Folder on the source: %v", got)
	}
	if len(sum.Moved) != 1 || len(sum.Deleted) != 1 || sum.FlagsCarried != 1 {
		t.Errorf("moved %v, deleted %v, flags %d; want one each", sum.Moved, sum.Deleted, sum.FlagsCarried)
	}
	if sum.RemovedFromSource != 0 || len(f.src.Messages("INBOX")) != 7 {
		t.Errorf("reverse deleted from the source without being asked")
	}

	// Twice: nothing changes.
	before := snapshotAll(f.src)
	again, err := Reverse(context.Background(), f.a, f.src, f.dst, f.l, ReverseOptions{})
	if err != nil || again.Copied.Totals().New != 0 || again.FlagsCarried != 0 {
		t.Fatalf("second reverse: %v, %+v", err, again)
	}
	after := snapshotAll(f.src)
	for n := range after {
		if !slices.Equal(before[n], after[n]) {
			t.Errorf("second reverse changed %s", n)
		}
	}
	// And a forward migrate afterwards adds nothing to the destination.
	n := f.dst.Appends()
	run(t, f.src, f.dst, f.l, Options{QuietWait: time.Millisecond})
	if f.dst.Appends() != n {
		t.Errorf("migrate after reverse appended %d messages to the destination", f.dst.Appends()-n)
	}
}

func TestReversePropagatesDeletesOnlyWhenAsked(t *testing.T) {
	f := newReverseFixture(t)
	sum, err := Reverse(context.Background(), f.a, f.src, f.dst, f.l, ReverseOptions{PropagateDeletes: true})
	if err != nil || sum.RemovedFromSource != 0 || len(f.src.Messages("INBOX")) != 7 {
		t.Fatalf("without Execute: removed %d, err %v", sum.RemovedFromSource, err)
	}
	sum, err = Reverse(context.Background(), f.a, f.src, f.dst, f.l, ReverseOptions{PropagateDeletes: true, Execute: true})
	if err != nil || sum.RemovedFromSource != 2 {
		t.Fatalf("with Execute: removed %d, err %v", sum.RemovedFromSource, err)
	}
	for _, gone := range [][]byte{msg(1, ""), msg(2, "")} {
		if slices.ContainsFunc(f.src.Messages("INBOX"), func(m mem.Message) bool { return string(m.Raw) == string(gone) }) {
			t.Errorf("original of a moved or deleted message still in the source INBOX")
		}
	}
	if !slices.ContainsFunc(f.src.Messages("Archive"), func(m mem.Message) bool { return string(m.Raw) == string(msg(1, "")) }) {
		t.Errorf("the moved message is not in the source Archive")
	}
}
