package migrate

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// undoFixture migrates a source into a destination that already had mail,
// then lets new mail arrive on the destination.
type undoFixture struct {
	src, dst             *mem.Store
	l                    *ledger.Memory
	acct                 BatchAccount
	preexisting, arrived []byte
}

func newUndoFixture(t *testing.T) *undoFixture {
	f := &undoFixture{src: mem.New(), dst: mem.New(), l: openLedger(t)}
	f.acct = BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	for i := range 10 {
		f.src.Put("INBOX", msg(i, ""), []string{`\Seen`}, testDate)
	}
	for i := range 3 {
		f.src.Put("Work/2024", msg(20+i, "work"), nil, testDate)
	}
	f.src.Put("Archive", msg(30, "archive"), nil, testDate)
	f.preexisting = msg(3, "") // also in the source: a duplicate, not a copy
	f.dst.Put("INBOX", f.preexisting, nil, testDate)
	f.dst.Put("INBOX", msg(99, "cloud only"), nil, testDate)
	run(t, f.src, f.dst, f.l, Options{QuietWait: time.Millisecond})
	f.arrived = msg(100, "arrived after the migration")
	f.dst.Put("INBOX", f.arrived, nil, testDate)
	f.dst.Put("Archive", msg(101, "filed by the user"), nil, testDate)
	return f
}

func snapshotAll(s *mem.Store) map[string][]string {
	out := map[string][]string{}
	for _, n := range s.Names() {
		out[n] = multiset(s, n)
	}
	return out
}

func TestUndoDryRunChangesNothing(t *testing.T) {
	f := newUndoFixture(t)
	before := snapshotAll(f.dst)
	sum, err := Undo(context.Background(), f.acct, f.dst, f.l, UndoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := snapshotAll(f.dst)
	for n := range before {
		if !slices.Equal(before[n], after[n]) {
			t.Errorf("dry run changed %s", n)
		}
	}
	got := map[string]UndoMailbox{}
	for _, m := range sum.Mailboxes {
		got[m.Dest] = m
	}
	if m := got["INBOX"]; m.Remove != 9 || m.Keep != 3 || m.Removed != 0 {
		t.Errorf("INBOX plan %+v, want 9 to remove (10 minus the one already there) and 3 to keep", m)
	}
	if m := got["Work/2024"]; m.Remove != 3 || m.Keep != 0 || !m.DeleteMailbox {
		t.Errorf("Work/2024 plan %+v, want 3 to remove and the mailbox deleted", m)
	}
	if m := got["Archive"]; m.Remove != 1 || m.Keep != 1 || m.DeleteMailbox {
		t.Errorf("Archive plan %+v: it holds the user's mail and must stay", m)
	}
	l := 0
	f.l.Records(f.acct.ID, "INBOX", func(r ledger.Record) error {
		if r.Status == ledger.StatusRemoved {
			l++
		}
		return nil
	})
	if l != 0 {
		t.Errorf("dry run recorded %d removals", l)
	}
}

func TestUndoRemovesExactlyWhatItCopied(t *testing.T) {
	f := newUndoFixture(t)
	sum, err := Undo(context.Background(), f.acct, f.dst, f.l, UndoOptions{Execute: true, Chunk: 2})
	if err != nil || sum.Status != StatusOK {
		t.Fatalf("Undo: %v %+v", err, sum)
	}
	want := []string{hashLine(f.preexisting), hashLine(msg(99, "cloud only")), hashLine(f.arrived)}
	sort.Strings(want)
	if got := multiset(f.dst, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("INBOX after undo:\n got %v\nwant %v", got, want)
	}
	if slices.Contains(f.dst.Names(), "Work/2024") {
		t.Errorf("Work/2024 (created by mailferry, now empty) still exists")
	}
	if got := multiset(f.dst, "Archive"); !slices.Equal(got, []string{hashLine(msg(101, "filed by the user"))}) {
		t.Errorf("Archive after undo: %v", got)
	}
	acc, _, _ := f.l.Account(f.acct.ID)
	if acc.State != ledger.AccountUndone {
		t.Errorf("account state %q, want undone", acc.State)
	}
	// Undo again: nothing left to remove, nothing else touched.
	again, err := Undo(context.Background(), f.acct, f.dst, f.l, UndoOptions{Execute: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range again.Mailboxes {
		if m.Remove != 0 {
			t.Errorf("second undo would remove %d from %s", m.Remove, m.Dest)
		}
	}
	if got := multiset(f.dst, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("second undo changed INBOX")
	}
	// And migrate again copies everything back.
	sum2 := run(t, f.src, f.dst, f.l, Options{QuietWait: time.Millisecond})
	if tot := sum2.Totals(); tot.New != 13 || tot.Duplicate != 1 {
		t.Errorf("migrate after undo: %+v, want 13 new and the 1 duplicate", tot)
	}
}

// failingRemover fails Remove after n successful calls, like a crash.
type failingRemover struct {
	*mem.Store
	n int
}

func (f *failingRemover) Remove(ctx context.Context, name string, v uint32, uids []providers.UID) error {
	if f.n == 0 {
		return providers.WithClass(providers.ClassAccount, errors.New("connection lost"))
	}
	f.n--
	return f.Store.Remove(ctx, name, v, uids)
}

func TestUndoResumesAfterAFailure(t *testing.T) {
	for n := range 5 {
		f := newUndoFixture(t)
		_, err := Undo(context.Background(), f.acct, &failingRemover{f.dst, n}, f.l, UndoOptions{Execute: true, Chunk: 2})
		if err == nil {
			t.Fatalf("n=%d: the failing Remove did not surface", n)
		}
		if _, err := Undo(context.Background(), f.acct, f.dst, f.l, UndoOptions{Execute: true, Chunk: 2}); err != nil {
			t.Fatal(err)
		}
		want := []string{hashLine(f.preexisting), hashLine(msg(99, "cloud only")), hashLine(f.arrived)}
		sort.Strings(want)
		if got := multiset(f.dst, "INBOX"); !slices.Equal(got, want) {
			t.Errorf("n=%d: INBOX after resumed undo:\n got %v\nwant %v", n, got, want)
		}
		if slices.Contains(f.dst.Names(), "Work/2024") {
			t.Errorf("n=%d: Work/2024 left behind", n)
		}
	}
}

// A crash between APPEND and its record leaves a pending record; undo finds
// that copy by fingerprint above the recorded UIDNEXT and removes it.
func TestUndoFindsCopiesOfPendingRecords(t *testing.T) {
	src, dst := mem.New(), mem.New()
	for i := range 6 {
		src.Put("INBOX", msg(i, ""), nil, testDate)
	}
	dst.Put("INBOX", msg(50, "older"), nil, testDate)
	l := openLedger(t)
	dst.StoredHook = func(string, providers.UID) error {
		return providers.WithClass(providers.ClassRun, errors.New("reply lost"))
	}
	Migrate(context.Background(), Account{ID: "a", Source: src, Dest: dst}, l, Options{QuietWait: time.Millisecond, Retries: -1})
	dst.StoredHook = nil
	if n := len(dst.Messages("INBOX")); n != 2 {
		t.Fatalf("setup: %d messages on the destination, want the older one and one unrecorded copy", n)
	}
	if _, err := Undo(context.Background(), BatchAccount{ID: "a"}, dst, l, UndoOptions{Execute: true}); err != nil {
		t.Fatal(err)
	}
	if got := multiset(dst, "INBOX"); !slices.Equal(got, []string{hashLine(msg(50, "older"))}) {
		t.Errorf("after undo: %v, want only the older message", got)
	}
}
