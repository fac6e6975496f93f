package providers

import "context"

// The abilities a pre-flight check uses where a store has them, found by
// type assertion like the others.

// MailboxSizer is implemented by stores that tell a mailbox's message
// count and size without listing its messages (IMAP STATUS=SIZE).
type MailboxSizer interface {
	// MailboxSize reports the messages and bytes of mailbox; ok is false
	// when the store cannot tell without listing them.
	MailboxSize(ctx context.Context, mailbox string) (messages int, bytes int64, ok bool, err error)
}

// QuotaReporter is implemented by stores that report the account's
// storage quota (IMAP QUOTA).
type QuotaReporter interface {
	// Quota reports the bytes used and allowed; ok is false when the
	// store has no storage quota or does not say.
	Quota(ctx context.Context) (used, limit int64, ok bool, err error)
}

// NameMapper is implemented by stores whose mailbox names on the server
// differ from the canonical ones (a hierarchy separator other than '/',
// a namespace prefix).
type NameMapper interface {
	// NativeName is the server's name for a canonical name.
	NativeName(name string) string
	// Separator is the server's hierarchy separator, 0 for a flat one.
	Separator() rune
}
