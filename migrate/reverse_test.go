package migrate

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// reverseFixture migrates, then plays a user working in the cloud.
type reverseFixture struct {
	src, dst              *mem.Store
	l                     *ledger.Memory
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
	// INBOX: every original still there but the one moved to Archive in
	// the cloud, plus the new mail; not the mail that was in the cloud
	// before the migration.
	got := multiset(f.src, "INBOX")
	// Message 0's flags changed in the cloud: compare counts, not flags.
	if want := len(f.srcInbox) - 1 + 1; len(got) != want {
		t.Fatalf("source INBOX has %d messages, want %d", len(got), want)
	}
	if slices.ContainsFunc(f.src.Messages("INBOX"), func(m mem.Message) bool { return string(m.Raw) == string(msg(1, "")) }) {
		t.Errorf("the original of the message moved in the cloud is still in the source INBOX: a second copy")
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
	if len(sum.Moved) != 1 || sum.MovesCarried != 1 || len(sum.Deleted) != 1 || sum.FlagsCarried != 1 {
		t.Errorf("moved %v (%d carried), deleted %v, flags %d; want one each", sum.Moved, sum.MovesCarried, sum.Deleted, sum.FlagsCarried)
	}
	if n := len(f.src.Messages("Archive")); n != 2 {
		t.Errorf("source Archive holds %d messages, want its own and the moved one", n)
	}
	if sum.RemovedFromSource != 0 || len(f.src.Messages("INBOX")) != 6 {
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
	if err != nil || sum.RemovedFromSource != 0 || len(f.src.Messages("INBOX")) != 6 {
		t.Fatalf("without Execute: removed %d, INBOX %d, err %v", sum.RemovedFromSource, len(f.src.Messages("INBOX")), err)
	}
	sum, err = Reverse(context.Background(), f.a, f.src, f.dst, f.l, ReverseOptions{PropagateDeletes: true, Execute: true})
	if err != nil || sum.RemovedFromSource != 1 {
		t.Fatalf("with Execute: removed %d (want the one deleted in the cloud), err %v", sum.RemovedFromSource, err)
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

// TestReverseLeavesWhatTheCloudHadBefore: a destination folder the
// migration never wrote to (a cloud-only folder) keeps, on the way back,
// the mail it held before the migration; only what arrived after comes.
func TestReverseLeavesWhatTheCloudHadBefore(t *testing.T) {
	src, dst, l := mem.New(), mem.New(), openLedger(t)
	a := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	src.Put("INBOX", msg(1, ""), nil, testDate)
	dst.Put("Conversation History", msg(70, "cloud before"), nil, testDate)
	dst.Put("Conversation History", msg(71, "cloud before"), nil, testDate)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	dst.Put("Conversation History", msg(72, "cloud after"), nil, testDate)
	if _, err := Reverse(context.Background(), a, src, dst, l, ReverseOptions{}); err != nil {
		t.Fatal(err)
	}
	got := src.Messages("Conversation History")
	if len(got) != 1 || string(got[0].Raw) != string(msg(72, "cloud after")) {
		t.Errorf("source Conversation History holds %d messages, want only the one that arrived after the migration", len(got))
	}
}

// TestReverseNeverDeletesWhatIsNotProven: with deletions propagated, an
// original is removed only when its copy is gone from the destination
// altogether and the original is still what its record says. A copy
// archived (only in an \All mailbox, as Gmail's archive) keeps its
// original; after the source was renumbered, no stale UID is removed.
func TestReverseNeverDeletesWhatIsNotProven(t *testing.T) {
	src, dst, l := mem.New(), mem.New(), openLedger(t)
	a := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	for i := range 4 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	in := dst.Messages("INBOX")
	dst.SetRole("All Mail", providers.RoleAll)
	for _, m := range in {
		dst.Put("All Mail", m.Raw, m.Flags, m.InternalDate) // Gmail shows every message there
	}
	dst.Delete("INBOX", in[0].UID) // archived: only in All Mail now
	opts := ReverseOptions{PropagateDeletes: true, Execute: true}
	sum, err := Reverse(context.Background(), a, src, dst, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Archived) != 1 || sum.RemovedFromSource != 0 || len(src.Messages("INBOX")) != 4 {
		t.Errorf("archived %v, removed %d, source INBOX %d; want the archived copy's original kept",
			sum.Archived, sum.RemovedFromSource, len(src.Messages("INBOX")))
	}
	// Deleted for real now, but the source was renumbered meanwhile: the
	// record's UID names nothing any more, so nothing is removed.
	dst.Delete("INBOX", in[1].UID)
	dst.Delete("All Mail", dst.Messages("All Mail")[1].UID)
	src.Recreate("INBOX")
	sum, err = Reverse(context.Background(), a, src, dst, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.RemovedFromSource != 0 || len(src.Messages("INBOX")) != 4 {
		t.Errorf("after renumbering: removed %d, source INBOX %d; want nothing removed by a stale UID", sum.RemovedFromSource, len(src.Messages("INBOX")))
	}
}

// TestReverseFlagsAreMerged: flags carried back never strip a keyword the
// destination did not keep, never set \Deleted on an original, and never
// touch a message that was on the destination before.
func TestReverseFlagsAreMerged(t *testing.T) {
	src, dst, l := mem.New(), mem.New(), openLedger(t)
	a := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	src.Put("INBOX", msg(1, ""), []string{`\Seen`, "ProjectX"}, testDate)
	src.Put("INBOX", msg(2, ""), []string{`\Seen`}, testDate)
	src.Put("INBOX", msg(3, ""), []string{"Mine"}, testDate)
	dst.Put("INBOX", msg(3, ""), []string{`\Flagged`}, testDate) // there before: a duplicate
	run(t, src, dst, l, Options{QuietWait: time.Millisecond, NoFlagSync: true})
	for _, m := range dst.Messages("INBOX") {
		switch string(m.Raw) {
		case string(msg(1, "")):
			dst.SetMessageFlags("INBOX", m.UID, []string{`\Answered`}) // unread, answered; keyword lost
		case string(msg(2, "")):
			dst.SetMessageFlags("INBOX", m.UID, []string{`\Seen`, `\Deleted`})
		}
	}
	if _, err := Reverse(context.Background(), a, src, dst, l, ReverseOptions{}); err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string][]string{
		string(msg(1, "")): {"ProjectX", `\Answered`},
		string(msg(2, "")): {`\Seen`},
		string(msg(3, "")): {"Mine"},
	} {
		if got := flagsOfMsg(src, "INBOX", []byte(raw)); !slices.Equal(got, want) {
			t.Errorf("%.30q: source flags %v, want %v", raw[strings.Index(raw, "Subject"):], got, want)
		}
	}
}
