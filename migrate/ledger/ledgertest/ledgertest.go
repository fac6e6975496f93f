// Package ledgertest is the conformance suite of a ledger.Ledger: what
// the engine relies on of any implementation (the bbolt checkpoint, the
// in-memory ledger). Run it from the implementation's tests:
//
//	func TestStoreIsALedger(t *testing.T) {
//		ledgertest.Run(t, func(t *testing.T) ledger.Ledger { return openStore(t) })
//	}
package ledgertest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// Run runs every check on fresh ledgers made by open (one per subtest;
// open registers any clean-up with t).
func Run(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, ledger.Ledger)
	}{
		{"Empty", empty},
		{"Account", account},
		{"MailboxRoundTrip", mailboxRoundTrip},
		{"MailboxesInNameOrder", mailboxesInOrder},
		{"PutMailboxes", putMailboxes},
		{"ForgetMailbox", forgetMailbox},
		{"RecordsRoundTrip", recordsRoundTrip},
		{"RecordsInKeyOrder", recordsInOrder},
		{"RecordsOverwriteAndDelete", recordsOverwriteDelete},
		{"RecordsApart", recordsApart},
		{"UnknownStatusRefused", unknownStatus},
		{"DestMailboxes", destMailboxes},
		{"IterationStops", iterationStops},
		{"NoAliasing", noAliasing},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

const acct = "alice\x00alice@example.com"

var when = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func empty(t *testing.T, l ledger.Ledger) {
	if _, ok, err := l.Account(acct); ok || err != nil {
		t.Errorf("Account of an empty ledger = %v, %v; want not found, no error", ok, err)
	}
	if _, ok, err := l.Mailbox(acct, "INBOX"); ok || err != nil {
		t.Errorf("Mailbox of an empty ledger = %v, %v; want not found, no error", ok, err)
	}
	n := 0
	must(t, l.Mailboxes(acct, func(string, ledger.MailboxRecord) error { n++; return nil }))
	must(t, l.Records(acct, "INBOX", func(ledger.Record) error { n++; return nil }))
	must(t, l.DestMailboxes(acct, func(string, ledger.DestMailbox) error { n++; return nil }))
	if n > 0 {
		t.Errorf("an empty ledger iterates %d entries", n)
	}
	// Writes of nothing are no error, and write nothing.
	must(t, l.PutRecords(acct, "INBOX", nil))
	must(t, l.DeleteRecords(acct, "INBOX", nil))
	must(t, l.DeleteRecords(acct, "INBOX", []ledger.RecordKey{{SrcValidity: 1, SrcUID: 1}}))
	must(t, l.PutDestMailboxes(acct, nil))
	must(t, l.Records(acct, "INBOX", func(ledger.Record) error { n++; return nil }))
	if n > 0 {
		t.Errorf("writes of nothing left %d records", n)
	}
}

func account(t *testing.T, l ledger.Ledger) {
	want := ledger.Account{Source: "alice", Dest: "alice@example.com", State: ledger.AccountCutover, Reason: "a reason",
		Run: 7, Cutover: when}
	before := time.Now().Add(-time.Second)
	must(t, l.PutAccount(acct, want))
	got, ok, err := l.Account(acct)
	if !ok || err != nil {
		t.Fatalf("Account after PutAccount = %v, %v", ok, err)
	}
	if got.Updated.Before(before) {
		t.Errorf("Updated = %v, want the time of the write", got.Updated)
	}
	got.Updated = time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Account = %+v, want %+v", got, want)
	}
	if !got.Cutover.Equal(when) {
		t.Errorf("Cutover = %v, want %v", got.Cutover, when)
	}
	want.State = ledger.AccountUndone
	must(t, l.PutAccount(acct, want))
	if got, _, _ := l.Account(acct); got.State != ledger.AccountUndone {
		t.Errorf("a second PutAccount kept state %q", got.State)
	}
	if _, ok, _ := l.Account(ledger.ReverseAccountID(acct)); ok {
		t.Error("the way back's account exists without being written")
	}
}

// fullMailbox sets every field of a MailboxRecord.
func fullMailbox() ledger.MailboxRecord {
	return ledger.MailboxRecord{Source: "Sent", Dest: "Sent Items", Role: `\Sent`, SrcValidity: 8, DstValidity: 10,
		DstBaseline: 3, DstFresh: true, CutoverUIDNext: 400, CutoverModSeq: 1 << 40,
		Unsettled: []ledger.Unsettled{{UIDValidity: 10, UIDNext: 2, Since: when}, {UIDValidity: 10, UIDNext: 5, Since: when.Add(time.Minute)}},
		Quiet: &ledger.Quiet{Src: ledger.MailboxState{UIDValidity: 8, UIDNext: 9, Messages: 8, ModSeq: 3},
			Dst: ledger.MailboxState{UIDValidity: 10, UIDNext: 11, Messages: 10, ModSeq: 4}, Seen: 8, Copied: 6, Duplicate: 2},
		Created: true, Deleted: true, Creating: []string{"Sent Items", "Sent"}}
}

func mailboxRoundTrip(t *testing.T, l ledger.Ledger) {
	want := fullMailbox()
	must(t, l.PutMailbox(acct, "Sent", want))
	got, ok, err := l.Mailbox(acct, "Sent")
	if !ok || err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Mailbox = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	var seen []ledger.MailboxRecord
	must(t, l.Mailboxes(acct, func(_ string, r ledger.MailboxRecord) error { seen = append(seen, r); return nil }))
	if len(seen) != 1 || !reflect.DeepEqual(seen[0], want) {
		t.Errorf("Mailboxes = %+v, want [%+v]", seen, want)
	}
	// A later write replaces the whole record: cleared fields stay clear.
	want = ledger.MailboxRecord{Source: "Sent", Dest: "Sent Items", SrcValidity: 8, DstValidity: 10}
	must(t, l.PutMailbox(acct, "Sent", want))
	if got, _, _ := l.Mailbox(acct, "Sent"); !reflect.DeepEqual(got, want) {
		t.Errorf("after a rewrite Mailbox = %+v, want %+v", got, want)
	}
	if _, ok, _ := l.Mailbox("bob\x00bob", "Sent"); ok {
		t.Error("another account sees alice's mailbox")
	}
}

// putMailboxes: several records in one write, each as PutMailbox would
// have written it, beside the records already there; none is a no-op.
func putMailboxes(t *testing.T, l ledger.Ledger) {
	must(t, l.PutMailbox(acct, "INBOX", ledger.MailboxRecord{Source: "INBOX", Dest: "INBOX"}))
	must(t, l.PutMailboxes(acct, nil))
	full := fullMailbox()
	want := map[string]ledger.MailboxRecord{"Sent": full, "Archive": {Source: "Archive", Dest: "Old", SrcValidity: 3}}
	must(t, l.PutMailboxes(acct, want))
	want["INBOX"] = ledger.MailboxRecord{Source: "INBOX", Dest: "INBOX"}
	got := map[string]ledger.MailboxRecord{}
	must(t, l.Mailboxes(acct, func(name string, r ledger.MailboxRecord) error { got[name] = r; return nil }))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after PutMailboxes: %+v, want %+v", got, want)
	}
	if _, ok, _ := l.Mailbox("bob\x00bob", "Sent"); ok {
		t.Error("another account sees alice's mailboxes")
	}
}

func mailboxesInOrder(t *testing.T, l ledger.Ledger) {
	names := []string{"INBOX", "Archive/2024", "Archive", "Ärger", "Sent", "archive", "Z"}
	for _, n := range names {
		must(t, l.PutMailbox(acct, n, ledger.MailboxRecord{Source: n, Dest: n}))
	}
	var got []string
	must(t, l.Mailboxes(acct, func(name string, r ledger.MailboxRecord) error {
		if r.Source != name {
			t.Errorf("mailbox %q holds the record of %q", name, r.Source)
		}
		got = append(got, name)
		return nil
	}))
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(got, want) {
		t.Errorf("Mailboxes in order %q, want %q (byte order)", got, want)
	}
}

// fullRecord sets every field of a Record.
func fullRecord(validity, uid uint32, s ledger.Status) ledger.Record {
	r := ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: validity, SrcUID: uid}, Status: s, DstValidity: 90,
		DstUID: uid + 100, DstUIDNext: 50, Size: int64(uid) * 1000, MessageID: fmt.Sprintf("<%d.%d@example.org>", validity, uid),
		Run: 3, Reason: "NO [TOOBIG] no"}
	r.Fingerprint[0], r.Fingerprint[15] = byte(uid), 0xff
	return r
}

func recordsRoundTrip(t *testing.T, l ledger.Ledger) {
	var want []ledger.Record
	for i, s := range []ledger.Status{ledger.StatusPending, ledger.StatusCopied, ledger.StatusDuplicate, ledger.StatusFailed, ledger.StatusRemoved} {
		want = append(want, fullRecord(7, uint32(i+1), s))
	}
	want[1].MessageID, want[1].Reason = "", "" // no Message-ID, no reason
	want[2].Size = 0
	must(t, l.PutRecords(acct, "INBOX", want))
	var got []ledger.Record
	must(t, l.Records(acct, "INBOX", func(r ledger.Record) error { got = append(got, r); return nil }))
	if !slices.Equal(got, want) {
		t.Errorf("Records =\n%+v\nwant\n%+v", got, want)
	}
}

func recordsInOrder(t *testing.T, l ledger.Ledger) {
	keys := []ledger.RecordKey{{SrcValidity: 9, SrcUID: 1}, {SrcValidity: 7, SrcUID: 300}, {SrcValidity: 7, SrcUID: 2},
		{SrcValidity: 1 << 31, SrcUID: 1}, {SrcValidity: 7, SrcUID: 1 << 31}, {SrcValidity: 7, SrcUID: 256}}
	// In two batches, so that order is the ledger's, not the writer's.
	var recs []ledger.Record
	for _, k := range keys {
		recs = append(recs, fullRecord(k.SrcValidity, k.SrcUID, ledger.StatusCopied))
	}
	must(t, l.PutRecords(acct, "INBOX", recs[3:]))
	must(t, l.PutRecords(acct, "INBOX", recs[:3]))
	var got []ledger.RecordKey
	must(t, l.Records(acct, "INBOX", func(r ledger.Record) error { got = append(got, r.RecordKey); return nil }))
	want := slices.SortedFunc(slices.Values(keys), ledger.RecordKey.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("Records in order %v, want %v (UIDVALIDITY, then UID, as numbers)", got, want)
	}
}

func recordsOverwriteDelete(t *testing.T, l ledger.Ledger) {
	a, b, c := fullRecord(7, 1, ledger.StatusPending), fullRecord(7, 2, ledger.StatusPending), fullRecord(7, 3, ledger.StatusCopied)
	must(t, l.PutRecords(acct, "INBOX", []ledger.Record{a, b, c}))
	a.Status, a.DstUID = ledger.StatusCopied, 555
	b.Status, b.Reason = ledger.StatusFailed, "refused"
	must(t, l.PutRecords(acct, "INBOX", []ledger.Record{a, b}))
	must(t, l.DeleteRecords(acct, "INBOX", []ledger.RecordKey{c.RecordKey, {SrcValidity: 7, SrcUID: 99}}))
	var got []ledger.Record
	must(t, l.Records(acct, "INBOX", func(r ledger.Record) error { got = append(got, r); return nil }))
	if want := []ledger.Record{a, b}; !slices.Equal(got, want) {
		t.Errorf("after overwrite and delete, Records =\n%+v\nwant\n%+v", got, want)
	}
}

func recordsApart(t *testing.T, l ledger.Ledger) {
	must(t, l.PutRecords(acct, "INBOX", []ledger.Record{fullRecord(7, 1, ledger.StatusCopied)}))
	must(t, l.PutRecords(acct, "Sent", []ledger.Record{fullRecord(7, 1, ledger.StatusFailed), fullRecord(7, 2, ledger.StatusFailed)}))
	must(t, l.PutRecords("bob\x00bob", "INBOX", []ledger.Record{fullRecord(7, 1, ledger.StatusPending)}))
	count := func(account, mailbox string, s ledger.Status) int {
		n := 0
		must(t, l.Records(account, mailbox, func(r ledger.Record) error {
			if r.Status != s {
				t.Errorf("%q %s holds a record of status %v, want %v", account, mailbox, r.Status, s)
			}
			n++
			return nil
		}))
		return n
	}
	if a, s, b := count(acct, "INBOX", ledger.StatusCopied), count(acct, "Sent", ledger.StatusFailed), count("bob\x00bob", "INBOX", ledger.StatusPending); a != 1 || s != 2 || b != 1 {
		t.Errorf("records per mailbox %d, %d, %d; want 1, 2, 1", a, s, b)
	}
	must(t, l.DeleteRecords(acct, "Sent", []ledger.RecordKey{{SrcValidity: 7, SrcUID: 1}}))
	if a, b := count(acct, "INBOX", ledger.StatusCopied), count("bob\x00bob", "INBOX", ledger.StatusPending); a != 1 || b != 1 {
		t.Errorf("a delete in Sent removed records elsewhere: %d, %d", a, b)
	}
}

func unknownStatus(t *testing.T, l ledger.Ledger) {
	ok := fullRecord(7, 1, ledger.StatusCopied)
	bad := fullRecord(7, 2, ledger.Status(0))
	if err := l.PutRecords(acct, "INBOX", []ledger.Record{ok, bad}); err == nil {
		t.Error("PutRecords took a record without a status")
	}
	n := 0
	must(t, l.Records(acct, "INBOX", func(ledger.Record) error { n++; return nil }))
	if n != 0 {
		t.Errorf("a refused batch left %d records: a batch is written whole or not at all", n)
	}
}

func destMailboxes(t *testing.T, l ledger.Ledger) {
	first := map[string]ledger.DestMailbox{
		"INBOX": {UIDValidity: 9, UIDNext: 3, Seen: when}, "Sent Items": {UIDValidity: 10, UIDNext: 1, Seen: when},
	}
	must(t, l.PutDestMailboxes(acct, first))
	must(t, l.PutDestMailboxes(acct, map[string]ledger.DestMailbox{"Archive": {UIDValidity: 11, UIDNext: 42, Seen: when.Add(time.Hour)}}))
	got := map[string]ledger.DestMailbox{}
	var order []string
	must(t, l.DestMailboxes(acct, func(name string, d ledger.DestMailbox) error {
		got[name] = d
		order = append(order, name)
		return nil
	}))
	want := map[string]ledger.DestMailbox{"Archive": {UIDValidity: 11, UIDNext: 42, Seen: when.Add(time.Hour)}}
	for k, v := range first {
		want[k] = v
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DestMailboxes = %+v, want %+v", got, want)
	}
	if !slices.IsSorted(order) {
		t.Errorf("DestMailboxes in order %q, want name order", order)
	}
}

func iterationStops(t *testing.T, l ledger.Ledger) {
	stop := errors.New("stop")
	for _, n := range []string{"A", "B"} {
		must(t, l.PutMailbox(acct, n, ledger.MailboxRecord{Source: n}))
	}
	must(t, l.PutRecords(acct, "A", []ledger.Record{fullRecord(1, 1, ledger.StatusCopied), fullRecord(1, 2, ledger.StatusCopied)}))
	must(t, l.PutDestMailboxes(acct, map[string]ledger.DestMailbox{"A": {}, "B": {}}))
	calls := 0
	if err := l.Mailboxes(acct, func(string, ledger.MailboxRecord) error { calls++; return stop }); !errors.Is(err, stop) {
		t.Errorf("Mailboxes returned %v, want fn's error", err)
	}
	if err := l.Records(acct, "A", func(ledger.Record) error { calls++; return stop }); !errors.Is(err, stop) {
		t.Errorf("Records returned %v, want fn's error", err)
	}
	if err := l.DestMailboxes(acct, func(string, ledger.DestMailbox) error { calls++; return stop }); !errors.Is(err, stop) {
		t.Errorf("DestMailboxes returned %v, want fn's error", err)
	}
	if calls != 3 {
		t.Errorf("fn called %d times, want once per iteration (it stops at the first error)", calls)
	}
}

// noAliasing: what a caller does to a value after writing or reading it
// changes nothing in the ledger.
func noAliasing(t *testing.T, l ledger.Ledger) {
	rec := fullMailbox()
	must(t, l.PutMailbox(acct, "Sent", rec))
	rec.Unsettled[0].UIDNext, rec.Quiet.Seen, rec.Creating[0] = 999, 999, "changed"
	got, _, _ := l.Mailbox(acct, "Sent")
	if got.Unsettled[0].UIDNext == 999 || got.Quiet.Seen == 999 || got.Creating[0] == "changed" {
		t.Error("changing a written record changed the ledger's")
	}
	got.Unsettled[0].UIDNext, got.Quiet.Seen = 998, 998
	again, _, _ := l.Mailbox(acct, "Sent")
	if again.Unsettled[0].UIDNext == 998 || again.Quiet.Seen == 998 {
		t.Error("changing a read record changed the ledger's")
	}
	recs := []ledger.Record{fullRecord(7, 1, ledger.StatusCopied)}
	must(t, l.PutRecords(acct, "INBOX", recs))
	recs[0].Status = ledger.StatusRemoved
	must(t, l.Records(acct, "INBOX", func(r ledger.Record) error {
		if r.Status != ledger.StatusCopied {
			t.Error("changing a written slice of records changed the ledger's")
		}
		return nil
	}))
}

func forgetMailbox(t *testing.T, l ledger.Ledger) {
	must(t, l.ForgetMailbox(acct, "Never"))
	for _, n := range []string{"A", "B"} {
		must(t, l.PutMailbox(acct, n, ledger.MailboxRecord{Source: n, Dest: n}))
	}
	must(t, l.PutRecords(acct, "A", []ledger.Record{fullRecord(1, 1, ledger.StatusCopied)}))
	must(t, l.ForgetMailbox(acct, "A"))
	if _, ok, _ := l.Mailbox(acct, "A"); ok {
		t.Error("a forgotten mailbox is still there")
	}
	var names []string
	must(t, l.Mailboxes(acct, func(name string, _ ledger.MailboxRecord) error { names = append(names, name); return nil }))
	if !slices.Equal(names, []string{"B"}) {
		t.Errorf("after forgetting A, Mailboxes = %q, want [B]", names)
	}
	n := 0
	must(t, l.Records(acct, "A", func(ledger.Record) error { n++; return nil }))
	if n != 1 {
		t.Errorf("forgetting a mailbox took its %d message records too; they stay", 1-n)
	}
	must(t, l.ForgetMailbox(acct, "A"))
}
