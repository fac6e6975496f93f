package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/providers"
)

// headerInfo is what List needs from a message's header and body start.
type headerInfo struct {
	key   providers.Key
	flags []string // from Status, X-Status, X-Keywords, Keywords and Thunderbird's headers
}

// flagFields are the header fields flags are read from.
var flagFields = []string{"status", "x-status", "x-keywords", "keywords",
	"x-mozilla-status", "x-mozilla-status2", "x-mozilla-keys"}

// maxFlagField bounds what is kept of one flag field; they are short.
const maxFlagField = 16 << 10

// readHeader reads the header of a message of size bytes from r (the
// unquoted message) and the first providers.KeyBodyPrefix bytes of its body.
// It keeps only the key fields and the flag fields, so a huge header costs
// no more memory than the fields kept. The key it computes is the one
// providers.KeyOf computes for the whole message: it splits header and body
// where providers.SplitMessage does, and gives NewKey the key fields with
// their continuation lines in their original order, which is all NewKey
// reads of a header.
func readHeader(br *bufio.Reader, size int64) (headerInfo, error) {
	var keyHdr bytes.Buffer
	fields := map[string][]byte{}
	// What the current line's field is kept for: the key or a flag field
	// (named curName).
	var toKey bool
	var curName string
	first := true // the next piece starts a line
lines:
	for {
		piece, err := br.ReadSlice('\n')
		more := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !more && err != io.EOF {
			return headerInfo{}, err
		}
		if len(piece) == 0 {
			break
		}
		lineStart := first
		first = piece[len(piece)-1] == '\n'
		value := piece
		if lineStart {
			if len(piece) == 1 && piece[0] == '\n' || len(piece) == 2 && piece[0] == '\r' && piece[1] == '\n' {
				break // the blank line: the body follows
			}
			if piece[0] != ' ' && piece[0] != '\t' {
				// A new field (or junk); a continuation line keeps what is kept.
				toKey, curName = false, ""
				if colon := bytes.IndexByte(piece, ':'); colon > 0 {
					name := strings.ToLower(string(bytes.TrimRight(piece[:colon], " \t")))
					toKey = isKeyField(name)
					if slices.Contains(flagFields, name) {
						curName = name
						fields[name] = append(fields[name], ' ')
						value = piece[colon+1:]
					}
				}
			}
		}
		if toKey {
			keyHdr.Write(piece)
		}
		if curName != "" {
			fields[curName] = appendCapped(fields[curName], value)
		}
		if err == io.EOF {
			break lines
		}
	}
	body := make([]byte, providers.KeyBodyPrefix)
	n, err := io.ReadFull(br, body)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return headerInfo{}, err
	}
	return headerInfo{key: providers.NewKey(keyHdr.Bytes(), body[:n], size), flags: headerFlags(fields)}, nil
}

// isKeyField matches the fields providers.NewKey reads.
func isKeyField(lower string) bool {
	for _, f := range providers.KeyHeaderFields() {
		if strings.EqualFold(f, lower) {
			return true
		}
	}
	return false
}

func appendCapped(dst, b []byte) []byte {
	if room := maxFlagField - len(dst); room < len(b) {
		b = b[:max(room, 0)]
	}
	return append(dst, b...)
}

func unfold(b []byte) []byte {
	return bytes.Join(bytes.Fields(b), []byte{' '})
}

// Thunderbird's message flags (nsMsgMessageFlags), in X-Mozilla-Status (the
// low 16 bits) and X-Mozilla-Status2 (the high 16 bits).
const (
	mozRead          = 0x0001
	mozReplied       = 0x0002
	mozMarked        = 0x0004
	mozExpunged      = 0x0008
	mozForwarded     = 0x1000
	mozIMAPDeleted   = 0x00200000
	mozMDNReportSent = 0x00800000
	mozLabels        = 0x0E000000
)

// headerFlags maps the flag fields of a message to IMAP flags.
func headerFlags(fields map[string][]byte) []string {
	var flags []string
	add := func(f string) {
		if !slices.ContainsFunc(flags, func(g string) bool { return strings.EqualFold(f, g) }) {
			flags = append(flags, f)
		}
	}
	for _, c := range strings.TrimSpace(string(fields["status"])) {
		if c == 'R' {
			add(`\Seen`)
		}
	}
	for _, c := range strings.TrimSpace(string(fields["x-status"])) {
		switch c {
		case 'A':
			add(`\Answered`)
		case 'F':
			add(`\Flagged`)
		case 'T':
			add(`\Draft`)
		case 'D':
			add(`\Deleted`)
		}
	}
	var moz uint64
	if v, err := strconv.ParseUint(strings.TrimSpace(string(fields["x-mozilla-status"])), 16, 16); err == nil {
		moz |= v
	}
	if v, err := strconv.ParseUint(strings.TrimSpace(string(fields["x-mozilla-status2"])), 16, 32); err == nil {
		moz |= v &^ 0xffff
	}
	for _, m := range []struct {
		bit  uint64
		flag string
	}{
		{mozRead, `\Seen`}, {mozReplied, `\Answered`}, {mozMarked, `\Flagged`}, {mozExpunged, `\Deleted`},
		{mozIMAPDeleted, `\Deleted`}, {mozForwarded, "$Forwarded"}, {mozMDNReportSent, "$MDNSent"},
	} {
		if moz&m.bit != 0 {
			add(m.flag)
		}
	}
	if label := (moz & mozLabels) >> 25; label > 0 {
		add("$Label" + strconv.FormatUint(label, 10))
	}
	// X-Keywords (Dovecot, mutt) and X-Mozilla-Keys separate with spaces
	// or commas; Keywords (RFC 5322) holds comma-separated phrases, of
	// which only the ones that are IMAP atoms can be keywords.
	space := func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n' }
	var kws []string
	kws = append(kws, strings.FieldsFunc(string(fields["x-keywords"]), space)...)
	kws = append(kws, strings.FieldsFunc(string(fields["x-mozilla-keys"]), space)...)
	for _, k := range strings.Split(string(unfold(fields["keywords"])), ",") {
		kws = append(kws, strings.TrimSpace(k))
	}
	for _, k := range kws {
		if validKeyword(k) {
			add(k)
		}
	}
	return flags
}

// validKeyword accepts IMAP atoms that are not system flags.
func validKeyword(k string) bool {
	if k == "" || len(k) > 200 {
		return false
	}
	for _, c := range []byte(k) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}
