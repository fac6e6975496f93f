// Package migrate copies mailboxes from one providers.Store to another with
// a ledger that makes every run resumable, deduplicated and undoable.
package migrate

import "github.com/mailferry/mailferry/checkpoint"

// Ledger is the durable record the copier needs. checkpoint.Store implements
// it; every method that writes must have committed when it returns.
type Ledger interface {
	Account(id string) (checkpoint.Account, bool, error)
	PutAccount(id string, a checkpoint.Account) error
	Mailbox(account, name string) (checkpoint.MailboxRecord, bool, error)
	PutMailbox(account, name string, rec checkpoint.MailboxRecord) error
	Mailboxes(account string, fn func(name string, rec checkpoint.MailboxRecord) error) error
	Records(account, mailbox string, fn func(checkpoint.Record) error) error
	PutRecords(account, mailbox string, recs []checkpoint.Record) error
	DeleteRecords(account, mailbox string, keys []checkpoint.RecordKey) error
	DestMailboxes(account string, fn func(name string, d checkpoint.DestMailbox) error) error
	PutDestMailboxes(account string, seen map[string]checkpoint.DestMailbox) error
}

var _ Ledger = (*checkpoint.Store)(nil)

// DryRun wraps a ledger so that nothing is ever written: reads see what
// l holds (nothing if l is nil), writes are dropped. A dry run plans and
// counts against it and so, by construction, records nothing.
func DryRun(l Ledger) Ledger { return dryLedger{l} }

type dryLedger struct{ l Ledger }

func (d dryLedger) Account(id string) (checkpoint.Account, bool, error) {
	if d.l == nil {
		return checkpoint.Account{}, false, nil
	}
	return d.l.Account(id)
}

func (d dryLedger) Mailbox(account, name string) (checkpoint.MailboxRecord, bool, error) {
	if d.l == nil {
		return checkpoint.MailboxRecord{}, false, nil
	}
	return d.l.Mailbox(account, name)
}

func (d dryLedger) Mailboxes(account string, fn func(string, checkpoint.MailboxRecord) error) error {
	if d.l == nil {
		return nil
	}
	return d.l.Mailboxes(account, fn)
}

func (d dryLedger) Records(account, mailbox string, fn func(checkpoint.Record) error) error {
	if d.l == nil {
		return nil
	}
	return d.l.Records(account, mailbox, fn)
}

func (dryLedger) PutAccount(string, checkpoint.Account) error                { return nil }
func (dryLedger) PutMailbox(string, string, checkpoint.MailboxRecord) error  { return nil }
func (dryLedger) PutRecords(string, string, []checkpoint.Record) error       { return nil }
func (dryLedger) DeleteRecords(string, string, []checkpoint.RecordKey) error { return nil }
func (dryLedger) PutDestMailboxes(string, map[string]checkpoint.DestMailbox) error {
	return nil
}

func (d dryLedger) DestMailboxes(account string, fn func(string, checkpoint.DestMailbox) error) error {
	if d.l == nil {
		return nil
	}
	return d.l.DestMailboxes(account, fn)
}
