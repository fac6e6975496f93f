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
}

var _ Ledger = (*checkpoint.Store)(nil)
