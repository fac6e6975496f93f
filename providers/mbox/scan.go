package mbox

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/mail"
	"slices"
	"strconv"
	"strings"
)

// span is where one message lies in an mbox file. The index of a mailbox is
// a slice of these: offsets and sizes, never message bytes.
type span struct {
	off     int64 // start of the From_ line
	data    int64 // first byte of the stored message
	end     int64 // end of the stored message; the blank separator line is not part of it
	size    int64 // bytes served: end-data less one per quoted line
	line    int64 // line number of the From_ line
	date    int64 // INTERNALDATE (Unix seconds) the file gives, if hasDate
	hasDate bool
	// bare counts the lines of the served message that end in a bare LF;
	// lastBare says whether its last line is one of them.
	bare     int64
	lastBare bool
}

// scanResult is what one pass over an mbox file learnt.
type scanResult struct {
	spans    []span
	problems []Problem
	size     int64            // bytes read
	hash     hash.Hash        // sha256 of those bytes, open for more
	sums     map[int64][]byte // sha256 of the first n bytes, for each n asked for
	// tail is what a writer must add before a new From_ line so that a
	// blank line separates it from the last message: "", "\n" or "\n\n".
	tail string
}

var bom = []byte("\xef\xbb\xbf")

// scanner reads an mbox file once, line by line in bounded pieces.
type scanner struct {
	path string
	br   *bufio.Reader
	res  *scanResult
	want []int64 // offsets to take a sha256 at, ascending

	off       int64 // offset of the next piece
	line      int64 // number of the line the next piece belongs to
	first     bool  // the next piece starts a line
	prevBlank int   // length of the last line if it was blank ("\n" or "\r\n"), else 0
	lastByte  byte  // last byte of the last piece
	// Whether the last two complete lines ended in a bare LF.
	lastBare, prevBare bool
	inFrom             bool  // inside a From_ line longer than the buffer
	cur                *span // message being read
	head               head  // what is kept of its header
	junk               int64 // bytes before the first From_ line
	quote              quoteMatcher

	// froms are the lines starting "From ", taken or not, and checks the
	// Content-Length fields that disagree with the split, to be matched
	// against them once the file is read.
	froms   []fromMark
	checks  []lengthCheck
	undated undated
}

// head is what the scanner keeps of the header of the message being read:
// the first Date, Received and Content-Length fields, a bounded part each.
type head struct {
	done      bool  // the blank line after the header was read
	bodyStart int64 // offset just after that blank line
	field     *[]byte
	date      []byte
	received  []byte
	length    []byte
	has       struct{ date, received, length bool }
}

// maxHeadField bounds what is kept of a field the scanner reads.
const maxHeadField = 2 << 10

// fromMark is a line starting "From " and the length of the blank line
// before it (0 if none).
type fromMark struct {
	off   int64
	blank int
}

// maxFromMarks bounds the marks kept; a file with more is not checked
// against its Content-Length fields.
const maxFromMarks = 1 << 20

// lengthCheck is a message whose Content-Length ends it elsewhere than
// the From_ lines do.
type lengthCheck struct {
	off, line int64 // of its From_ line
	length    int64
	at        int64 // where the Content-Length ends it
	end       int64 // where the From_ lines end it
}

// undated counts the From_ lines taken without a date and where the
// INTERNALDATE of their messages came from.
type undated struct {
	n, line                 int64 // how many; line of the first
	byDate, byReceived, non int64
}

// scan indexes an mbox file. sumsAt names offsets (message boundaries) at
// which the sha256 of the file so far is wanted, to check a sidecar against.
func scan(r io.Reader, path string, sumsAt []int64) (*scanResult, error) {
	s := &scanner{
		path: path,
		br:   bufio.NewReaderSize(r, bufSize),
		res:  &scanResult{hash: sha256.New(), sums: map[int64][]byte{}},
		want: slices.Sorted(slices.Values(sumsAt)),
		line: 1, first: true,
	}
	for {
		piece, err := s.br.ReadSlice('\n')
		more := errors.Is(err, bufio.ErrBufferFull)
		if len(piece) > 0 {
			s.piece(piece, more)
		}
		if err != nil && !more {
			if err != io.EOF {
				return nil, fmt.Errorf("read %s at offset %d: %w", path, s.off, err)
			}
			break
		}
	}
	s.finish(s.off, s.first && s.prevBlank > 0)
	s.hash(nil)
	s.res.size = s.off
	switch {
	case s.off == 0, s.first && s.prevBlank > 0:
		s.res.tail = ""
	case s.first:
		s.res.tail = "\n"
	default:
		s.res.tail = "\n\n"
	}
	if len(s.res.spans) == 0 && s.junk > 0 {
		s.problem(0, 1, "no From_ line found: not an mbox file, nothing imported")
	}
	s.checkLengths()
	if u := s.undated; u.n > 0 {
		s.problem(-1, u.line, "%d From_ line(s) without a date that could be read, the first on this line, taken as the start "+
			"of a message (each starts the file, or follows a blank line and is followed by a header): INTERNALDATE from "+
			"the Date: field for %d, from the first Received: field for %d, the file's time for %d", u.n, u.byDate, u.byReceived, u.non)
	}
	return s.res, nil
}

func (s *scanner) problem(off, line int64, format string, args ...any) {
	s.res.problems = append(s.res.problems, Problem{Path: s.path, Offset: off, Line: line, What: fmt.Sprintf(format, args...)})
}

// doubt reports a problem that leaves the file's message count in doubt.
func (s *scanner) doubt(off, line int64, format string, args ...any) {
	s.problem(off, line, format, args...)
	s.res.problems[len(s.res.problems)-1].Doubt = true
}

// hash adds piece to the running sha256, taking the sums wanted at offsets
// up to its end (anywhere: a file cut inside a line got a checkpoint there),
// and advances the offset.
func (s *scanner) hash(piece []byte) {
	for len(s.want) > 0 && s.want[0] <= s.off+int64(len(piece)) {
		if at := s.want[0]; at >= s.off {
			n := at - s.off
			s.res.hash.Write(piece[:n])
			piece, s.off = piece[n:], at
			s.res.sums[at] = s.res.hash.Sum(nil)
		}
		s.want = s.want[1:]
	}
	s.res.hash.Write(piece)
	s.off += int64(len(piece))
}

// piece handles the next piece of a line: all of it, or one buffer of it.
func (s *scanner) piece(piece []byte, more bool) {
	start, first := s.off, s.first
	s.hash(piece)
	// Read everything needed from piece now: separator may peek, which can
	// overwrite it.
	complete := piece[len(piece)-1] == '\n'
	blank := 0
	if first && complete && (len(piece) == 1 || len(piece) == 2 && piece[0] == '\r') {
		blank = len(piece)
	}
	bare := false
	if complete {
		before := s.lastByte
		if len(piece) >= 2 {
			before = piece[len(piece)-2]
		} else if first {
			before = 0
		}
		bare = before != '\r'
	}
	gt := piece[0] == '>'
	s.lastByte = piece[len(piece)-1]
	s.first = complete
	if complete {
		defer func() { s.line++ }()
	}

	if s.inFrom {
		if complete {
			s.inFrom = false
			s.cur.data = s.off
		}
		return
	}
	if first && !gt && s.separator(piece, start, complete) {
		return
	}
	if s.cur == nil {
		s.junk += int64(len(piece))
	} else {
		s.cur.size += int64(len(piece))
		if complete {
			s.prevBare, s.lastBare = s.lastBare, bare
			if bare {
				s.cur.bare++
			}
		}
		if !s.head.done {
			s.header(piece, first, blank > 0)
		}
		if gt || s.quote.inRun {
			// Nothing reads piece after match, so a peek may overwrite it.
			quoted, _ := s.quote.match(piece, first, more, func(n int) []byte {
				b, _ := s.br.Peek(n)
				return b
			})
			if quoted {
				s.cur.size--
			}
			if complete {
				s.quote.reset()
			}
		}
	}
	s.prevBlank = blank
}

// header keeps what the scanner needs of a header line (or piece of one).
func (s *scanner) header(piece []byte, first, blank bool) {
	h := &s.head
	if blank {
		h.done, h.bodyStart, h.field = true, s.off, nil
		return
	}
	value := piece
	if first && piece[0] != ' ' && piece[0] != '\t' {
		h.field = nil
		colon := bytes.IndexByte(piece, ':')
		if colon <= 0 {
			return
		}
		name := string(bytes.TrimRight(piece[:colon], " \t"))
		for _, f := range []struct {
			name string
			has  *bool
			dst  *[]byte
		}{{"date", &h.has.date, &h.date}, {"received", &h.has.received, &h.received}, {"content-length", &h.has.length, &h.length}} {
			if strings.EqualFold(name, f.name) && !*f.has {
				*f.has, h.field = true, f.dst
			}
		}
		value = piece[colon+1:]
	}
	if h.field != nil {
		room := maxHeadField - len(*h.field)
		*h.field = append(*h.field, value[:min(max(room, 0), len(value))]...)
	}
}

// separator decides whether a piece that starts a line starts a message,
// and if so starts it. A line starting "From " is a From_ line
//
//   - at the start of the file, always;
//   - after a blank line, if it has a date or a header follows it;
//   - without a blank line before it, if it has a date and a header
//     follows it (Netscape wrote no blank lines); this is reported.
//
// Any other line starting "From " with one of these signs (a blank line
// before, a date, a header after) is kept as message text, and reported as
// leaving the message count in doubt: another reader may split there.
func (s *scanner) separator(piece []byte, start int64, complete bool) bool {
	line := piece
	if start == 0 && bytes.HasPrefix(line, bom) {
		line = line[len(bom):]
	}
	if !bytes.HasPrefix(line, fromSpace) {
		return false
	}
	if len(s.froms) < maxFromMarks {
		s.froms = append(s.froms, fromMark{off: start, blank: s.prevBlank})
	}
	atStart := start == 0
	date, dated := parseFromLine(line)
	// Peeking invalidates piece and line.
	headerNext := complete && looksLikeHeader(s.peekHeader())
	blankBefore := s.prevBlank > 0
	switch {
	case atStart, blankBefore && (dated || headerNext):
	case s.cur == nil && (dated || headerNext):
	case dated && headerNext:
		s.problem(start, s.line, "From_ line without a blank line before it; taken as the start of a new message")
	default:
		var what string
		switch {
		case blankBefore:
			what = "after a blank line, with no date that could be read and no header after it"
		case dated:
			what = "with a date, but no blank line before it and no header after it"
		case headerNext:
			what = "followed by a header, but with no blank line before it and no date that could be read"
		}
		if what != "" && s.cur != nil {
			s.doubt(start, s.line, "line starting \"From \" %s: kept as message text, but another reader may start a message "+
				"here (unquoted mboxo or mboxcl2?): the message count is in doubt", what)
		}
		return false
	}
	if s.cur == nil && s.junk > 0 {
		s.problem(0, 1, "%d bytes before the first From_ line skipped", s.junk)
	}
	s.finish(start, blankBefore)
	s.cur = &span{off: start, line: s.line, date: date.Unix(), hasDate: dated}
	s.head = head{}
	s.prevBlank, s.lastBare, s.prevBare = 0, false, false
	if !dated {
		if s.undated.n == 0 {
			s.undated.line = s.line
		}
		s.undated.n++
	}
	if complete {
		s.cur.data = s.off
	} else {
		s.inFrom = true
	}
	return true
}

// peekHeader returns what follows the current line, without consuming it.
func (s *scanner) peekHeader() []byte {
	b, _ := s.br.Peek(8 << 10)
	return b
}

// looksLikeHeader reports whether b starts with a header: lines that are
// fields or their continuations, up to a blank line or the end of b, one
// of them a field that messages carry (Received, Date, Subject, …).
// "From Russia with love" followed by "Year: 1963" is text.
func looksLikeHeader(b []byte) bool {
	known := false
	for n := 0; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		switch {
		case len(line) == 0:
			return known
		case line[0] == ' ' || line[0] == '\t':
			if n == 0 {
				return false
			}
		case bytes.HasPrefix(line, []byte(">From ")):
			// Old MTAs kept earlier envelope lines in the header this way.
		default:
			name, ok := fieldName(line)
			if !ok {
				return known && n > 0
			}
			known = known || messageFields[strings.ToLower(name)]
		}
	}
	return known
}

// fieldName returns the name of a header field line: printable ASCII
// without spaces, then ':' (spaces before the colon allowed).
func fieldName(line []byte) (string, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return "", false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return "", false
		}
	}
	return string(name), true
}

// messageFields are header fields that show a message header starts:
// RFC 5322's, the transport's and those mail stores write.
var messageFields = map[string]bool{
	"received": true, "return-path": true, "delivered-to": true, "envelope-to": true, "x-original-to": true,
	"date": true, "from": true, "sender": true, "reply-to": true, "to": true, "cc": true, "bcc": true,
	"subject": true, "message-id": true, "in-reply-to": true, "references": true, "mime-version": true,
	"content-type": true, "content-transfer-encoding": true, "content-length": true, "lines": true,
	"status": true, "x-status": true, "x-keywords": true, "x-uid": true, "x-imap": true, "x-imapbase": true,
	"x-mozilla-status": true, "x-mozilla-status2": true, "x-mozilla-keys": true, "x-account-key": true,
	"x-uidl": true, "x-gm-thrid": true, "x-gmail-labels": true, "newsgroups": true, "path": true,
	"x-mailer": true, "user-agent": true, "organization": true, "precedence": true, "list-id": true,
}

// finish ends the current message at boundary. If the message ends with a
// blank line, that line is the separator and not part of it.
func (s *scanner) finish(boundary int64, blankBefore bool) {
	c := s.cur
	if c == nil {
		return
	}
	if s.inFrom {
		// The file ended inside the From_ line.
		c.data = boundary
		s.inFrom = false
	}
	c.end = boundary
	// Called at a From_ line, the message's last line is whole; at the end
	// of the file, it may not be.
	c.lastBare = s.lastBare && (boundary < s.off || s.first)
	if blankBefore && int64(s.prevBlank) <= boundary-c.data {
		c.end -= int64(s.prevBlank)
		c.size -= int64(s.prevBlank)
		if s.prevBlank == 1 {
			c.bare--
		}
		c.lastBare = s.prevBare
	} else if boundary == s.off && s.first {
		s.problem(c.off, c.line, "no blank line after the last message")
	} else if boundary == s.off {
		s.problem(c.off, c.line, "the file ends inside a line: the last message may be truncated")
	}
	if c.size == 0 {
		c.lastBare = false
	}
	if !c.hasDate {
		s.headDate(c)
	}
	if h := s.head; h.has.length && h.done {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(h.length)), 10, 64); err == nil && n >= 0 {
			if at := h.bodyStart + n; at != c.end && at != boundary {
				s.checks = append(s.checks, lengthCheck{off: c.off, line: c.line, length: n, at: at, end: c.end})
			}
		}
	}
	s.res.spans = append(s.res.spans, *c)
	s.cur = nil
}

// headDate dates a message whose From_ line has no date: from its Date
// field, else from the first Received field (the last hop, the delivery).
func (s *scanner) headDate(c *span) {
	h := s.head
	if h.has.date {
		if t, err := mail.ParseDate(string(unfold(h.date))); err == nil {
			c.date, c.hasDate = t.Unix(), true
			s.undated.byDate++
			return
		}
	}
	if h.has.received {
		if i := bytes.LastIndexByte(h.received, ';'); i >= 0 {
			if t, err := mail.ParseDate(string(unfold(h.received[i+1:]))); err == nil {
				c.date, c.hasDate = t.Unix(), true
				s.undated.byReceived++
				return
			}
		}
	}
	s.undated.non++
}

// checkLengths reports the Content-Length fields that end a message where
// a line starting "From " (or the end of the file) is, but not where the
// From_ lines end it: the file may be mboxcl2, its bodies holding unquoted
// From lines, and its message count is in doubt. A Content-Length that
// points nowhere of the kind was written for another copy of the message
// and says nothing.
func (s *scanner) checkLengths() {
	if len(s.froms) >= maxFromMarks {
		return
	}
	for _, c := range s.checks {
		where := ""
		switch {
		case c.at == s.res.size:
			where = "the end of the file"
		default:
			// The first line at or after the end given, if it is that end
			// or only a blank line after it.
			i, _ := slices.BinarySearchFunc(s.froms, c.at, func(m fromMark, at int64) int { return cmp.Compare(m.off, at) })
			if i < len(s.froms) && (s.froms[i].off == c.at || s.froms[i].off-int64(s.froms[i].blank) == c.at) {
				where = fmt.Sprintf("a line starting \"From \" at byte %d", s.froms[i].off)
			}
		}
		if where == "" {
			continue
		}
		s.doubt(c.off, c.line, "Content-Length: %d ends this message at byte %d (%s), the From_ lines at byte %d: "+
			"the message count is in doubt (mboxcl2 with unquoted From lines?)", c.length, c.at, where, c.end)
	}
}
