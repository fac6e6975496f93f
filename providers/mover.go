package providers

import "context"

// Mover is implemented by stores that can move messages between their
// mailboxes; reverse carries back with it a move a user made on the
// destination. Move moves exactly uids from mailbox from, and only if its
// UIDValidity is still uidValidity, into mailbox to, keeping their bytes,
// flags and internal dates, and returns their new UIDs where the store
// reports them. Nothing is removed from from unless it is in to.
type Mover interface {
	Move(ctx context.Context, from string, uidValidity uint32, uids []UID, to string) (map[UID]UID, error)
}
