package providers

import (
	"bytes"
	"io"
)

// A source that holds a message whole in memory (to look at it before
// handing it on) can lend those bytes to a destination that must also see
// all of it before sending (an IMAP APPEND choosing between a literal and
// a literal8 by whether it holds a NUL): one copy of each message in
// memory instead of two. Many accounts at once each copying a message of
// megabytes made the second copy most of a run's peak memory.

// Holder is implemented by message readers whose whole message is in
// memory.
type Holder interface {
	// Held returns the unread message, valid while the Fetch callback
	// runs and not to be changed; nil once reading has begun.
	Held() []byte
}

// HeldReader reads b, and lends it through Holder until read from.
func HeldReader(b []byte) io.Reader { return &heldReader{Reader: bytes.NewReader(b), b: b} }

type heldReader struct {
	*bytes.Reader
	b []byte
}

func (h *heldReader) Held() []byte {
	if h.Len() != len(h.b) {
		return nil
	}
	return h.b
}

// HeldBytes returns the unread message r holds whole, looking through a
// Body, or nil if it holds none.
func HeldBytes(r io.Reader) []byte {
	if b, ok := r.(*Body); ok {
		r = b.Reader
	}
	if h, ok := r.(Holder); ok {
		return h.Held()
	}
	return nil
}
