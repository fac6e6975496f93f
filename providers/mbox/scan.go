package mbox

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"
)

// span is where one message lies in an mbox file. The index of a mailbox is
// a slice of these: offsets and sizes, never message bytes.
type span struct {
	off      int64 // start of the From_ line
	data     int64 // first byte of the stored message
	end      int64 // end of the stored message; the blank separator line is not part of it
	size     int64 // bytes served: end-data less one per quoted line
	line     int64 // line number of the From_ line
	fromDate int64 // the From_ line's date (Unix seconds), if hasDate
	hasDate  bool
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
	inFrom    bool  // inside a From_ line longer than the buffer
	cur       *span // message being read
	junk      int64 // bytes before the first From_ line
	quote     quoteMatcher
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
	return s.res, nil
}

func (s *scanner) problem(off, line int64, format string, args ...any) {
	s.res.problems = append(s.res.problems, Problem{Path: s.path, Offset: off, Line: line, What: fmt.Sprintf(format, args...)})
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
	gt := piece[0] == '>'
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

// separator decides whether a piece that starts a line starts a message,
// and if so starts it. A From_ line is "From " at the start of the file or
// after a blank line, with a date, or with only a sender and a header field
// on the next line. One with a date but no blank line before it is taken
// too (Netscape wrote none), and reported.
func (s *scanner) separator(piece []byte, start int64, complete bool) bool {
	line := piece
	if start == 0 && bytes.HasPrefix(line, bom) {
		line = line[len(bom):]
	}
	if !bytes.HasPrefix(line, fromSpace) {
		return false
	}
	atStart := start == 0
	date, dated := parseFromLine(line)
	// Without a date, a From_ line is "From sender" alone, followed by a
	// header field; "From Russia with love" followed by "Year: 1963" is
	// text.
	headerNext := false
	if !dated && complete && len(bytes.Fields(line[len(fromSpace):])) <= 1 {
		headerNext = looksLikeField(s.peekLine())
	}
	switch {
	case atStart, s.prevBlank > 0 && (dated || headerNext):
	case s.cur == nil && (dated || headerNext):
	case dated:
		s.problem(start, s.line, "From_ line without a blank line before it; taken as the start of a new message")
	default:
		if s.prevBlank > 0 {
			s.problem(start, s.line, "line starting \"From \" after a blank line has no date and no header after it; kept as message text (unquoted mboxo?)")
		}
		return false
	}
	if s.cur == nil && s.junk > 0 {
		s.problem(0, 1, "%d bytes before the first From_ line skipped", s.junk)
	}
	s.finish(start, s.prevBlank > 0)
	s.cur = &span{off: start, line: s.line, fromDate: date.Unix(), hasDate: dated}
	s.prevBlank = 0
	if complete {
		s.cur.data = s.off
	} else {
		s.inFrom = true
	}
	return true
}

// peekLine returns the start of the next line without consuming it.
func (s *scanner) peekLine() []byte {
	b, _ := s.br.Peek(256)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return b
}

// looksLikeField reports whether line starts like a header field: a name
// of printable ASCII without spaces, then ':'.
func looksLikeField(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	for _, c := range line[:i] {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
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
	if blankBefore && int64(s.prevBlank) <= boundary-c.data {
		c.end -= int64(s.prevBlank)
		c.size -= int64(s.prevBlank)
	} else if boundary == s.off && s.first {
		s.problem(c.off, c.line, "no blank line after the last message")
	} else if boundary == s.off {
		s.problem(c.off, c.line, "the file ends inside a line: the last message may be truncated")
	}
	s.res.spans = append(s.res.spans, *c)
	s.cur = nil
}

// fromLayouts are the date formats seen on From_ lines, after the fields
// are split on white space and joined with single spaces.
var fromLayouts = []string{
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 2006 -0700",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04:05 2006 MST",
	"Mon Jan 2 15:04 2006",
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 -0700 (MST)",
	"2 Jan 2006 15:04:05 -0700",
}

// parseFromLine reads the date of a From_ line ("From sender date"). Dates
// without a zone (asctime, the classic form) are taken as UTC.
func parseFromLine(line []byte) (time.Time, bool) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) > 1024 {
		return time.Time{}, false
	}
	fields := bytes.Fields(line[len(fromSpace):])
	// The date starts at a weekday after the sender (which may be missing
	// or be "-"), or, without a weekday, right after the sender.
	starts := []int{1}
	for i := 0; i < len(fields) && i < 4; i++ {
		if isWeekday(fields[i]) {
			starts = []int{i}
			break
		}
	}
	for _, i := range starts {
		if i >= len(fields) {
			continue
		}
		date := string(bytes.Join(fields[i:], []byte{' '}))
		for _, layout := range fromLayouts {
			if t, err := time.Parse(layout, date); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

func isWeekday(b []byte) bool {
	b = bytes.TrimSuffix(b, []byte{','})
	if len(b) != 3 {
		return false
	}
	for _, d := range []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"} {
		if bytes.EqualFold(b, []byte(d)) {
			return true
		}
	}
	return false
}
