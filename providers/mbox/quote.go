package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// bufSize is the read and write buffer of every stream over an mbox file.
// Lines longer than this are handled in pieces, never held whole.
const bufSize = 64 << 10

var fromSpace = []byte("From ")

// quoteMatcher recognises mboxrd-quoted lines, ^>*From (writing) or
// ^>+From (reading), when a line arrives in pieces: bufio.Reader.ReadSlice
// hands out at most one buffer of a long line at a time.
type quoteMatcher struct {
	bare  bool // "From " without any '>' matches too (the writer quotes those)
	inRun bool // the line so far is a non-empty run of '>'
}

// match looks at the next piece of a line, given whether it is the first.
// more says the line goes on after piece; peek returns the next n bytes
// without consuming them (it may invalidate piece, so it is called last).
// It returns whether the line is quoted, and whether that is still open
// because piece ended inside a run of '>'.
func (q *quoteMatcher) match(piece []byte, first, more bool, peek func(int) []byte) (quoted, open bool) {
	if !first && !q.inRun {
		return false, false
	}
	i := 0
	for i < len(piece) && piece[i] == '>' {
		i++
	}
	if i == 0 && !q.inRun && !q.bare {
		return false, false
	}
	if i == len(piece) && more {
		q.inRun = true
		return false, true
	}
	q.inRun = false
	rest := piece[i:]
	if len(rest) >= len(fromSpace) || !more {
		return bytes.HasPrefix(rest, fromSpace), false
	}
	// "From " straddles the buffer boundary.
	tail := append([]byte(nil), rest...)
	tail = append(tail, peek(len(fromSpace)-len(tail))...)
	return bytes.Equal(tail, fromSpace), false
}

// reset forgets a line that ended.
func (q *quoteMatcher) reset() { q.inRun = false }

// unquoter reads the stored bytes of one message and serves them unquoted:
// one '>' is dropped from every line matching ^>+From . It streams with a
// fixed buffer whatever the line lengths.
type unquoter struct {
	br      *bufio.Reader
	q       quoteMatcher
	first   bool   // the next piece starts a line
	held    bool   // a '>' of an undecided run is held back
	out     []byte // bytes ready to be served
	own     []byte // backs out when a held '>' is put back in front
	scratch []byte // copy of a piece that peek could overwrite
	err     error
}

func newUnquoter(br *bufio.Reader) *unquoter {
	return &unquoter{br: br, first: true}
}

func (u *unquoter) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.err != nil {
			if u.held {
				u.held = false
				u.own = append(u.own[:0], '>')
				u.out = u.own
				break
			}
			return 0, u.err
		}
		u.next()
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// next prepares the output of the next piece.
func (u *unquoter) next() {
	piece, err := u.br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		u.err = err
	}
	if len(piece) == 0 {
		return
	}
	more := errors.Is(err, bufio.ErrBufferFull)
	first := u.first
	u.first = piece[len(piece)-1] == '\n'
	quoted, open := u.q.match(piece, first, more, func(n int) []byte {
		// A peek can overwrite piece: keep a copy first.
		u.scratch = append(u.scratch[:0], piece...)
		piece = u.scratch
		b, _ := u.br.Peek(n)
		return b
	})
	switch {
	case open:
		// All '>' so far: serve all but one, which goes when the run is
		// decided.
		if u.held {
			u.out = u.withHeld(piece[:len(piece)-1])
		} else {
			u.out = piece[:len(piece)-1]
		}
		u.held = true
	case quoted && u.held:
		u.held = false
		u.out = piece
	case quoted:
		u.out = piece[1:]
	case u.held:
		u.held = false
		u.out = u.withHeld(piece)
	default:
		u.out = piece
	}
	if u.first {
		u.q.reset()
	}
}

// withHeld returns '>' followed by b, in a buffer of the unquoter's own:
// b may live in the bufio.Reader's buffer, which must not be written to.
func (u *unquoter) withHeld(b []byte) []byte {
	u.own = append(append(u.own[:0], '>'), b...)
	return u.own
}

// copied is what copyQuoted wrote.
type copied struct {
	stored int64 // bytes written
	last   byte  // the message's last byte
	bare   int64 // lines of the message ending in a bare LF
}

// copyQuoted copies exactly size bytes from r to w, quoting every line
// that matches ^>*From by one more '>'. It fails if r holds fewer bytes;
// errors of r are returned as they are. br is a buffer to use, or nil.
func copyQuoted(w io.Writer, br *bufio.Reader, r io.Reader, size int64) (copied, error) {
	if br == nil {
		br = bufio.NewReaderSize(nil, bufSize)
	}
	br.Reset(io.LimitReader(r, size))
	defer br.Reset(nil) // do not keep the caller's reader alive
	q := quoteMatcher{bare: true}
	first := true
	var n int64
	var c copied
	var scratch []byte
	for {
		piece, rerr := br.ReadSlice('\n')
		more := errors.Is(rerr, bufio.ErrBufferFull)
		if len(piece) > 0 {
			lineStart := first
			first = piece[len(piece)-1] == '\n'
			if first && (len(piece) >= 2 && piece[len(piece)-2] != '\r' || len(piece) == 1 && (lineStart || c.last != '\r')) {
				c.bare++
			}
			quoted, open := q.match(piece, lineStart, more, func(k int) []byte {
				// A peek can overwrite piece: keep a copy first.
				scratch = append(scratch[:0], piece...)
				piece = scratch
				b, _ := br.Peek(k)
				return b
			})
			// An undecided run of '>' is all '>': the extra one can go
			// anywhere in it, so it goes where the run turns out to end.
			if quoted && !open {
				if _, err := w.Write([]byte{'>'}); err != nil {
					return copied{}, err
				}
				c.stored++
			}
			if _, err := w.Write(piece); err != nil {
				return copied{}, err
			}
			c.stored += int64(len(piece))
			n += int64(len(piece))
			c.last = piece[len(piece)-1]
			if first {
				q.reset()
			}
		}
		if rerr != nil && !more {
			if rerr != io.EOF {
				return copied{}, rerr
			}
			break
		}
	}
	if n != size {
		return copied{}, fmt.Errorf("message has %d bytes, %d announced: %w", n, size, io.ErrUnexpectedEOF)
	}
	return c, nil
}
