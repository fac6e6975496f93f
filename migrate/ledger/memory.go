package ledger

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is a Ledger held in memory, for tests: the same contract as the
// checkpoint (ledgertest.Run checks both), nothing durable, and faults to
// order: a Memory can be told to fail its writes, so that a test shows
// what the engine does when its checkpoint stops taking them. A failed
// write keeps nothing of what it was given. The zero Memory is not ready;
// use NewMemory.
type Memory struct {
	mu        sync.Mutex
	accounts  map[string]Account
	mailboxes map[string]map[string]MailboxRecord
	dests     map[string]map[string]DestMailbox
	records   map[string]map[string]map[RecordKey]Record // account, mailbox, key

	writes int   // writes committed so far
	failAt int   // the write number from which writes fail; 0: none
	once   bool  // only write number failAt fails
	err    error // what a failed write returns
}

// NewMemory returns an empty in-memory ledger.
func NewMemory() *Memory {
	return &Memory{
		accounts:  map[string]Account{},
		mailboxes: map[string]map[string]MailboxRecord{},
		dests:     map[string]map[string]DestMailbox{},
		records:   map[string]map[string]map[RecordKey]Record{},
	}
}

// FailAfter makes every write after the next n fail with err (n = 0: the
// very next one), until Heal: a checkpoint whose disk filled up, or whose
// file became unwritable, part way through a run.
func (m *Memory) FailAfter(n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failAt, m.once, m.err = m.writes+n+1, false, err
}

// FailOnce makes write number n from now (1: the next) fail with err, and
// only that one.
func (m *Memory) FailOnce(n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failAt, m.once, m.err = m.writes+n, true, err
}

// Heal ends any fault: writes succeed again.
func (m *Memory) Heal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failAt, m.err = 0, nil
}

// Writes is how many writes have been committed (a failed one does not
// count; nor does a write of nothing).
func (m *Memory) Writes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes
}

// write is called, locked, at the start of every write: it says whether
// the write may go ahead and counts it if so.
func (m *Memory) write() error {
	n := m.writes + 1
	if m.failAt > 0 && (n == m.failAt || (!m.once && n > m.failAt)) {
		if m.once {
			m.failAt = 0
			m.writes++ // the failed write takes its turn: the next succeeds
		}
		return m.err
	}
	m.writes = n
	return nil
}

// Account implements Ledger.
func (m *Memory) Account(id string) (Account, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[id]
	return a, ok, nil
}

// PutAccount implements Ledger; like the checkpoint it sets Updated.
func (m *Memory) PutAccount(id string, a Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	a.Updated = time.Now().UTC()
	m.accounts[id] = a
	return nil
}

// Accounts calls fn for every account in key order, as
// checkpoint.Store.Accounts does.
func (m *Memory) Accounts(fn func(id string, a Account) error) error {
	m.mu.Lock()
	accts := maps.Clone(m.accounts)
	m.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(accts)) {
		if err := fn(id, accts[id]); err != nil {
			return err
		}
	}
	return nil
}

// Mailbox implements Ledger.
func (m *Memory) Mailbox(account, name string) (MailboxRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.mailboxes[account][name]
	return rec.clone(), ok, nil
}

// PutMailbox implements Ledger.
func (m *Memory) PutMailbox(account, name string, rec MailboxRecord) error {
	return m.PutMailboxes(account, map[string]MailboxRecord{name: rec})
}

// PutMailboxes implements Ledger: one write, however many records.
func (m *Memory) PutMailboxes(account string, recs map[string]MailboxRecord) error {
	return putAll(m, m.mailboxes, account, recs, MailboxRecord.clone)
}

// putAll stores vals, cloned, under account in table, as one write.
func putAll[V any](m *Memory, table map[string]map[string]V, account string, vals map[string]V, clone func(V) V) error {
	if len(vals) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	if table[account] == nil {
		table[account] = map[string]V{}
	}
	for name, v := range vals {
		table[account][name] = clone(v)
	}
	return nil
}

// ForgetMailbox implements Ledger.
func (m *Memory) ForgetMailbox(account, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	delete(m.mailboxes[account], name)
	return nil
}

// Mailboxes implements Ledger.
func (m *Memory) Mailboxes(account string, fn func(name string, rec MailboxRecord) error) error {
	m.mu.Lock()
	recs := map[string]MailboxRecord{}
	for name, rec := range m.mailboxes[account] {
		recs[name] = rec.clone()
	}
	m.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		if err := fn(name, recs[name]); err != nil {
			return err
		}
	}
	return nil
}

// Records implements Ledger.
func (m *Memory) Records(account, mailbox string, fn func(Record) error) error {
	m.mu.Lock()
	recs := slices.Collect(maps.Values(m.records[account][mailbox]))
	m.mu.Unlock()
	slices.SortFunc(recs, func(a, b Record) int { return a.RecordKey.Compare(b.RecordKey) })
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// PutRecords implements Ledger: all of recs, or (on an error) none.
func (m *Memory) PutRecords(account, mailbox string, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	for i := range recs {
		if err := recs[i].Status.check(); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	if m.records[account] == nil {
		m.records[account] = map[string]map[RecordKey]Record{}
	}
	box := m.records[account][mailbox]
	if box == nil {
		box = map[RecordKey]Record{}
		m.records[account][mailbox] = box
	}
	for _, r := range recs {
		box[r.RecordKey] = r
	}
	return nil
}

// DeleteRecords implements Ledger.
func (m *Memory) DeleteRecords(account, mailbox string, keys []RecordKey) error {
	if len(keys) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	for _, k := range keys {
		delete(m.records[account][mailbox], k)
	}
	return nil
}

// DestMailboxes implements Ledger.
func (m *Memory) DestMailboxes(account string, fn func(name string, d DestMailbox) error) error {
	m.mu.Lock()
	ds := maps.Clone(m.dests[account])
	m.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(ds)) {
		if err := fn(name, ds[name]); err != nil {
			return err
		}
	}
	return nil
}

// PutDestMailboxes implements Ledger.
func (m *Memory) PutDestMailboxes(account string, seen map[string]DestMailbox) error {
	return putAll(m, m.dests, account, seen, func(d DestMailbox) DestMailbox { return d })
}

// clone copies what a MailboxRecord shares (its Unsettled and Quiet), so
// that a caller changing what it read or wrote changes nothing kept.
func (r MailboxRecord) clone() MailboxRecord {
	r.Unsettled = slices.Clone(r.Unsettled)
	r.Creating = slices.Clone(r.Creating)
	if r.Quiet != nil {
		q := *r.Quiet
		r.Quiet = &q
	}
	return r
}
