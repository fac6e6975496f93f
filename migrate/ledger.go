// Package migrate copies mailboxes from one providers.Store to another with
// a ledger that makes every run resumable, deduplicated and undoable.
package migrate

import "github.com/mailferry/mailferry/migrate/ledger"

// The engine's record types and the Ledger interface it writes them to
// live in migrate/ledger; checkpoint.Store implements it in a bbolt file,
// ledger.Memory in memory (tests).

// DryRun wraps a ledger so that nothing is ever written: reads see what
// l holds (nothing if l is nil), writes are dropped. A dry run plans and
// counts against it and so, by construction, records nothing.
func DryRun(l ledger.Ledger) ledger.Ledger { return dryLedger{l} }

type dryLedger struct{ l ledger.Ledger }

func (d dryLedger) Account(id string) (ledger.Account, bool, error) {
	if d.l == nil {
		return ledger.Account{}, false, nil
	}
	return d.l.Account(id)
}

func (d dryLedger) Mailbox(account, name string) (ledger.MailboxRecord, bool, error) {
	if d.l == nil {
		return ledger.MailboxRecord{}, false, nil
	}
	return d.l.Mailbox(account, name)
}

func (d dryLedger) Mailboxes(account string, fn func(string, ledger.MailboxRecord) error) error {
	if d.l == nil {
		return nil
	}
	return d.l.Mailboxes(account, fn)
}

func (d dryLedger) Records(account, mailbox string, fn func(ledger.Record) error) error {
	if d.l == nil {
		return nil
	}
	return d.l.Records(account, mailbox, fn)
}

func (dryLedger) PutAccount(string, ledger.Account) error                    { return nil }
func (dryLedger) PutMailbox(string, string, ledger.MailboxRecord) error      { return nil }
func (dryLedger) PutMailboxes(string, map[string]ledger.MailboxRecord) error { return nil }
func (dryLedger) ForgetMailbox(string, string) error                         { return nil }
func (dryLedger) PutRecords(string, string, []ledger.Record) error           { return nil }
func (dryLedger) DeleteRecords(string, string, []ledger.RecordKey) error     { return nil }
func (dryLedger) PutDestMailboxes(string, map[string]ledger.DestMailbox) error {
	return nil
}

func (d dryLedger) DestMailboxes(account string, fn func(string, ledger.DestMailbox) error) error {
	if d.l == nil {
		return nil
	}
	return d.l.DestMailboxes(account, fn)
}
