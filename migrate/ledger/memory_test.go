package ledger_test

import (
	"errors"
	"testing"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/migrate/ledger/ledgertest"
)

func TestMemoryIsALedger(t *testing.T) {
	ledgertest.Run(t, func(*testing.T) ledger.Ledger { return ledger.NewMemory() })
}

// TestMemoryFaults: FailAfter fails every write after n, FailOnce only
// the nth; a failed write keeps nothing and is not counted; Heal ends it.
func TestMemoryFaults(t *testing.T) {
	full := errors.New("no space left on device")
	m := ledger.NewMemory()
	rec := func(uid uint32) []ledger.Record {
		return []ledger.Record{{RecordKey: ledger.RecordKey{SrcValidity: 1, SrcUID: uid}, Status: ledger.StatusCopied}}
	}
	count := func() int {
		n := 0
		m.Records("a", "INBOX", func(ledger.Record) error { n++; return nil })
		return n
	}
	m.FailAfter(2, full)
	for uid := range uint32(5) {
		err := m.PutRecords("a", "INBOX", rec(uid+1))
		if want := uid >= 2; (err != nil) != want || (err != nil && !errors.Is(err, full)) {
			t.Errorf("write %d: %v, want failing %v", uid+1, err, want)
		}
	}
	if err := m.PutAccount("a", ledger.Account{}); !errors.Is(err, full) {
		t.Errorf("PutAccount during the fault = %v", err)
	}
	if n, w := count(), m.Writes(); n != 2 || w != 2 {
		t.Errorf("%d records, %d writes after the fault; want 2 and 2", n, w)
	}
	m.Heal()
	if err := m.PutRecords("a", "INBOX", rec(9)); err != nil || count() != 3 {
		t.Errorf("after Heal: %v, %d records", err, count())
	}

	m.FailOnce(2, full)
	errs := []error{m.PutRecords("a", "INBOX", rec(10)), m.PutRecords("a", "INBOX", rec(11)), m.PutRecords("a", "INBOX", rec(12))}
	if errs[0] != nil || !errors.Is(errs[1], full) || errs[2] != nil {
		t.Errorf("FailOnce(2): %v, want only the second to fail", errs)
	}
	if count() != 5 {
		t.Errorf("%d records, want 5", count())
	}
}
