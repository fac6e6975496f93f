package providers

import (
	"context"
	"time"
)

// Filter narrows the messages of a mailbox by internal date and size, with
// the meaning of IMAP SEARCH (RFC 3501 §6.4.4), so that a server can apply
// it and any other store gets the same answer: dates are whole days, the
// internal date's time of day and zone are disregarded. The zero Filter
// selects every message.
type Filter struct {
	Since   time.Time // internal date on or after this day
	Before  time.Time // internal date before this day
	MaxSize int64     // at most this many bytes; 0: any size
}

// IsZero reports whether f selects every message.
func (f Filter) IsZero() bool { return f.Since.IsZero() && f.Before.IsZero() && f.MaxSize <= 0 }

// Match reports whether a message is selected.
func (f Filter) Match(m MessageInfo) bool {
	if f.MaxSize > 0 && m.Size > f.MaxSize {
		return false
	}
	if f.Since.IsZero() && f.Before.IsZero() {
		return true
	}
	day := civilDay(m.InternalDate)
	if !f.Since.IsZero() && day.Before(civilDay(f.Since)) {
		return false
	}
	return f.Before.IsZero() || day.Before(civilDay(f.Before))
}

// civilDay is the calendar day of t in t's own zone, as a UTC midnight, so
// that days compare whatever the zones.
func civilDay(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Searcher is implemented by mailboxes that can apply a Filter themselves,
// such as an IMAP server with UID SEARCH, instead of listing every message.
type Searcher interface {
	// Search returns the UIDs of the messages f selects, ascending.
	Search(ctx context.Context, f Filter) ([]UID, error)
}

// Select returns the UIDs of the messages of mb that f selects, ascending:
// all of them for the zero Filter, by the server where mb is a Searcher,
// else by listing.
func Select(ctx context.Context, mb Mailbox, f Filter) ([]UID, error) {
	if f.IsZero() {
		return mb.UIDs(ctx)
	}
	if s, ok := As[Searcher](mb); ok {
		return s.Search(ctx, f)
	}
	var out []UID
	err := mb.List(ctx, nil, func(m MessageInfo) error {
		if f.Match(m) {
			out = append(out, m.UID)
		}
		return nil
	})
	return out, err
}
