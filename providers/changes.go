package providers

import "context"

// ChangeTracker is implemented by stores that number every change of a
// mailbox (IMAP CONDSTORE, RFC 7162). Cutover notes the number; reverse
// then carries back the flags of exactly the messages users changed after
// it, and leaves the others alone.
type ChangeTracker interface {
	// HighestModSeq reports a mailbox's UIDVALIDITY and the number of its
	// latest change.
	HighestModSeq(ctx context.Context, mailbox string) (uidValidity uint32, modseq uint64, err error)
	// ChangedSince calls fn with the flags of each message whose flags
	// changed after modseq, if the mailbox's UIDVALIDITY is still
	// uidValidity.
	ChangedSince(ctx context.Context, mailbox string, uidValidity uint32, modseq uint64, fn func(UID, []string) error) error
}
