package providers

import (
	"io"
	"strings"
	"sync"
)

// A store that cannot keep a message's bytes exactly says so rather than
// alter them silently: a destination that cannot take NUL bytes, or a
// source that serves a message other than it stores it. The copier hands
// Append a *Body around the source's bytes; the destination notes on it
// what it had to change, and the source's own reader may know what it
// changed (Alterer). The copy is then recorded and reported as altered.

// AlterNoter is implemented by the body readers a copier hands to Append.
type AlterNoter interface {
	NoteAltered(reason string)
}

// Alterer is implemented by body readers that know their bytes differ
// from the stored message's.
type Alterer interface {
	// Altered says how, "" when the bytes are exact.
	Altered() string
}

// NoteAltered tells r's copier, if it listens, that the bytes read from r
// are not stored exactly, and why.
func NoteAltered(r io.Reader, reason string) {
	if n, ok := r.(AlterNoter); ok {
		n.NoteAltered(reason)
	}
}

// Body passes a source message's bytes to Append and collects what the
// stores say they changed.
type Body struct {
	io.Reader
	mu      sync.Mutex
	reasons []string
}

// NewBody wraps a source message's reader.
func NewBody(r io.Reader) *Body { return &Body{Reader: r} }

// NoteAltered implements AlterNoter.
func (b *Body) NoteAltered(reason string) {
	b.mu.Lock()
	b.reasons = append(b.reasons, reason)
	b.mu.Unlock()
}

// Altered implements Alterer: what the source and the destination said,
// "" if neither changed anything.
func (b *Body) Altered() string {
	b.mu.Lock()
	reasons := append([]string(nil), b.reasons...)
	b.mu.Unlock()
	if a, ok := b.Reader.(Alterer); ok {
		if r := a.Altered(); r != "" {
			reasons = append([]string{r}, reasons...)
		}
	}
	return strings.Join(reasons, "; ")
}

// WithAlterNote is r, reading from in place of orig (the same bytes, held),
// passing notes on to orig's copier.
func WithAlterNote(r io.Reader, orig io.Reader) io.Reader {
	if n, ok := orig.(AlterNoter); ok {
		return noted{r, n}
	}
	return r
}

type noted struct {
	io.Reader
	AlterNoter
}
