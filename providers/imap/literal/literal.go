// Package literal reads the literals a server announces at the end of an
// IMAP response line: "{n}" (RFC 3501) and literal8 "~{n}" (RFC 3516),
// which go-imap cannot parse.
package literal

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Trailing reports a line ending in {n} (or literal8 ~{n}) and its n.
func Trailing(line string) (int64, bool) {
	l := strings.TrimRight(line, "\r\n")
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(l[i+1:len(l)-1], "+"), 10, 64)
	return n, err == nil && n >= 0
}

// Literal8Reader returns a reader of the server's responses in br with each
// literal8 announcement ("~{n}") turned into a literal's ("{n}"). Cyrus
// serves a message holding NUL bytes as BODY[] ~{n}, which go-imap cannot
// parse ("expected nstring"). The literal's bytes pass untouched.
func Literal8Reader(br *bufio.Reader) io.Reader {
	return &literal8Reader{br: br}
}

type literal8Reader struct {
	br      *bufio.Reader
	pending []byte // the rest of a line read
	literal int64  // bytes of a literal still to pass
}

func (l *literal8Reader) Read(p []byte) (int, error) {
	if len(l.pending) > 0 {
		n := copy(p, l.pending)
		l.pending = l.pending[n:]
		return n, nil
	}
	if l.literal > 0 {
		n, err := l.br.Read(p[:min(int64(len(p)), l.literal)])
		l.literal -= int64(n)
		return n, err
	}
	line, err := l.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// A line longer than the buffer is no literal announcement's end.
		n := copy(p, line)
		l.pending = append(l.pending[:0], line[n:]...)
		return n, nil
	}
	if n, ok := Trailing(string(line)); ok {
		l.literal = n
		if i := bytes.LastIndexByte(line, '{'); i > 0 && line[i-1] == '~' {
			line = append(line[:i-1:i-1], line[i:]...)
		}
	}
	n := copy(p, line)
	l.pending = append(l.pending[:0], line[n:]...)
	return n, err
}
