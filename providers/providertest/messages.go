package providertest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
)

// fixture is one message the suite appends, with what it must come back as.
type fixture struct {
	name  string
	raw   []byte
	flags []string
	date  time.Time
}

// odd names the fixtures that are not well-formed CRLF messages with a
// header and a blank line; stores that declare RewritesMessages do not get
// them.
var odd = []string{"lf-only", "header-only", "starts-with-from-line", "mixed-line-ends", "zero-bytes", "stray-header-line"}

var (
	zoneEast = time.FixedZone("", 5*3600+30*60)
	zoneWest = time.FixedZone("", -7*3600)
)

// fixtures returns the messages of the Append step. Each one is there
// because some store or some file format has a hard time with it.
func fixtures(opt Options) []fixture {
	base := time.Date(2019, 11, 3, 14, 15, 16, 0, time.UTC)
	at := func(i int, z *time.Location) time.Time { return base.Add(time.Duration(i) * 37 * time.Hour).In(z) }
	ident := []byte("From: twin@example.org\r\nSubject: byte-identical twins\r\nMessage-ID: <twin@example.org>\r\n\r\nsame bytes, twice\r\n")
	out := []fixture{
		{"plain", []byte("From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: plain\r\nDate: Sun, 3 Nov 2019 14:15:16 +0000\r\nMessage-ID: <plain@example.org>\r\n\r\nHello Bob.\r\n"),
			[]string{`\Seen`}, at(0, time.UTC)},
		{"lf-only", []byte("From: carol@example.org\nSubject: bare LF line ends\nMessage-ID: <lf@example.org>\n\nline one\nline two\n"),
			[]string{`\Seen`, `\Answered`}, at(1, zoneEast)},
		{"8bit-headers", []byte("From: J\xc3\xbcrgen M\xfcller <j@example.de>\r\nSubject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe6\x97\xa5\xe6\x9c\xac\r\nMessage-ID: <8bit@example.de>\r\n\r\n8-bit body \xe2\x82\xac \xff\xfe\r\n"),
			[]string{`\Flagged`, "$Forwarded"}, at(2, zoneWest)},
		{"no-message-id", []byte("From: dave@example.org\r\nSubject: no Message-ID at all\r\nDate: Mon, 4 Nov 2019 09:00:00 -0500\r\n\r\nThe dedup key falls back to a fingerprint.\r\n"),
			[]string{`\Draft`}, at(3, time.UTC)},
		{"twin-a", ident, nil, at(4, time.UTC)},
		{"twin-b", ident, []string{`\Seen`, "Custom1"}, at(5, time.UTC)},
		{"empty-body", []byte("From: eve@example.org\r\nSubject: empty body\r\nMessage-ID: <empty-body@example.org>\r\n\r\n"),
			[]string{`\Deleted`}, at(6, time.UTC)},
		{"header-only", []byte("From: frank@example.org\r\nSubject: header only, no blank line, no final newline\r\nMessage-ID: <header-only@example.org>"),
			[]string{`\Seen`, `\Answered`, `\Flagged`, `\Draft`, `\Deleted`, "$MDNSent", "Custom2"}, at(7, time.UTC)},
		// mbox quoting: every kind of From line a body can hold, including
		// one right after a blank line and one at the very start of the body.
		{"from-lines", []byte("From: grace@example.org\r\nSubject: From lines\r\nMessage-ID: <from-lines@example.org>\r\n\r\nFrom the start of the body\r\n\r\nFrom MAILER-DAEMON Sat Jan  1 00:00:00 2000\r\n>From quoted once\r\n>>From quoted twice\r\n>not From\r\nFrom: looks like a header\r\n \r\nFrom\r\nFrom \r\n"),
			[]string{"$Label1"}, at(8, time.UTC)},
		{"no-final-newline", []byte("From: heidi@example.org\r\nSubject: no final newline\r\nMessage-ID: <no-eol@example.org>\r\n\r\nthe last line has no line end"),
			nil, at(9, time.UTC)},
		{"trailing-blank-lines", []byte("From: ivan@example.org\r\nSubject: trailing blank lines\r\nMessage-ID: <trailing@example.org>\r\n\r\nbody\r\n\r\n\r\n\r\n"),
			[]string{`\Seen`}, at(10, time.UTC)},
		{"starts-with-from-line", []byte("From judy@example.org Sat Mar 24 23:00:00 2007\r\nFrom: judy@example.org\r\nSubject: starts with an mbox From_ line\r\nMessage-ID: <starts-from@example.org>\r\n\r\nbody\r\n"),
			nil, at(11, time.UTC)},
		{"mixed-line-ends", []byte("From: mallory@example.org\r\nSubject: mixed\nMessage-ID: <mixed@example.org>\r\n\nCRLF\r\nLF\nCR\rend\r\n"),
			[]string{"$Junk"}, at(12, time.UTC)},
		{"long-line", longLine(1536 << 10), nil, at(13, time.UTC)},
		// Key fields folded over lines, repeated, and a stray line that is not
		// a field, all of which the dedup key must read as KeyOf does.
		{"folded-headers", []byte("Message-ID:\r\n <folded@example.org>\r\nSubject: a subject\r\n\tfolded over two lines\r\nFrom: a@example.org,\r\n b@example.org\r\nDate: Tue, 5 Nov 2019\r\n 10:00:00 +0000\r\nTo: x@example.org\r\nTo: y@example.org\r\n\r\nbody\r\n"),
			[]string{`\Answered`}, at(15, time.UTC)},
		{"stray-header-line", []byte("Subject: before\r\nthis line is not a header field\r\n continued\r\nMessage-ID: <stray@example.org>\r\n\r\nbody\r\n"),
			nil, at(16, time.UTC)},
	}
	if !opt.NoEmptyMessage {
		out = append(out, fixture{"zero-bytes", []byte{}, []string{`\Seen`}, at(14, time.UTC)})
	}
	if opt.RewritesMessages {
		out = slices.DeleteFunc(out, func(f fixture) bool { return slices.Contains(odd, f.name) })
	}
	return out
}

// longLine is a message whose body is one line longer than any sensible
// read buffer.
func longLine(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: oscar@example.org\r\nSubject: one very long line\r\nMessage-ID: <long-line@example.org>\r\n\r\n")
	for b.Len() < n {
		b.WriteString("0123456789abcdef")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// expect returns the bytes a store serves for raw.
func (o Options) expect(raw []byte) []byte {
	if !o.NormalisesLineEndings {
		return raw
	}
	var b bytes.Buffer
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
	}
	return b.Bytes()
}

// numbered returns a small distinct message.
func numbered(tag string, i int) []byte {
	return fmt.Appendf(nil, "From: n%d@example.org\r\nSubject: %s %d\r\nMessage-ID: <%s.%d@example.org>\r\n\r\n%s\r\n",
		i, tag, i, strings.ReplaceAll(tag, " ", "-"), i, strings.Repeat("x", i%7*13))
}
