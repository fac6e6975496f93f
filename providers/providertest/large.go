package providertest

import (
	"fmt"
	"io"
	"strconv"
)

// bigMessage generates a message of exactly size bytes without holding it:
// a header, then numbered CRLF lines, every 97th of which starts with
// "From " and every 89th with ">From " (work for mbox quoting).
type bigMessage struct {
	size, off int64
	buf       []byte // the current line
	line      []byte // what is left of it
	n         int
}

func newBigMessage(size int64) *bigMessage {
	hdr := fmt.Sprintf("From: big@example.org\r\nSubject: %d bytes\r\nMessage-ID: <big.%d@example.org>\r\n\r\n", size, size)
	return &bigMessage{size: size, line: []byte(hdr)}
}

func (g *bigMessage) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.off < g.size {
		if len(g.line) == 0 {
			g.n++
			// Appending to buf keeps the generator allocation-free, so the
			// suite measures the store's allocations, not its own.
			switch {
			case g.n%97 == 0:
				g.buf = append(g.buf[:0], "From line "...)
			case g.n%89 == 0:
				g.buf = append(g.buf[:0], ">From line "...)
			default:
				g.buf = append(g.buf[:0], "Line "...)
			}
			g.buf = strconv.AppendInt(g.buf, int64(g.n), 10)
			g.buf = append(g.buf, ": the quick brown fox jumps over the lazy dog.\r\n"...)
			g.line = g.buf
		}
		c := copy(p[n:], g.line)
		if rest := g.size - g.off; int64(c) > rest {
			c = int(rest)
		}
		g.line = g.line[c:]
		n += c
		g.off += int64(c)
	}
	return n, nil
}
