package providers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// KeyBodyPrefix is how many bytes of a message body, counted from the first
// byte after the header/body separator, go into its fingerprint.
const KeyBodyPrefix = 1024

// keyFields are the header fields a Key is computed from. Adapters that can
// fetch header fields selectively (IMAP HEADER.FIELDS) fetch exactly these.
var keyFields = [...]string{"Message-ID", "Date", "From", "To", "Cc", "Subject"}

// KeyHeaderFields returns the header fields a Key is computed from.
func KeyHeaderFields() []string { return keyFields[:] }

// Fingerprint is a content hash over the stable header fields, the size and
// the start of the body. Two messages with equal fingerprints are treated as
// the same message for deduplication.
type Fingerprint [16]byte

func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Key is the dedup identity of a message. It is derived from the message's
// bytes only, never from anything a server adds, and computing it never
// fails: junk headers give an empty MessageID and a fingerprint all the same.
type Key struct {
	MessageID   string // normalised "<left@right>", "" when the message has none
	Date        string // the Date field, unfolded and trimmed, "" when absent
	Fingerprint Fingerprint
	// Loose is the fingerprint without the size: equal for a message whose
	// line ends a server normalised or to which a tool added a header
	// field outside the key fields (mbsync's X-TUID), as long as the key
	// fields and the start of the body are the same.
	Loose Fingerprint
}

// NewKey computes a Key. header holds the message's header block or just the
// KeyHeaderFields of it, in their original order; bodyPrefix holds the first
// KeyBodyPrefix bytes of the body (fewer if the body is shorter); size is the
// size of the whole raw message.
func NewKey(header, bodyPrefix []byte, size int64) Key {
	fields := parseKeyFields(header)
	var k Key
	if ids := fields["message-id"]; len(ids) > 0 {
		k.MessageID = NormalizeMessageID(ids[0])
	}
	if dates := fields["date"]; len(dates) > 0 {
		k.Date = dates[0]
	}
	var head bytes.Buffer
	for _, name := range keyFields {
		head.WriteString(strings.ToLower(name))
		head.WriteByte(':')
		for i, v := range fields[strings.ToLower(name)] {
			if i > 0 {
				head.WriteByte(0)
			}
			head.WriteString(strings.ReplaceAll(v, "\x00", "\x80"))
		}
		head.WriteByte('\n')
	}
	if len(bodyPrefix) > KeyBodyPrefix {
		bodyPrefix = bodyPrefix[:KeyBodyPrefix]
	}
	// Line endings are what servers legitimately normalise; and NUL,
	// which IMAP cannot carry in BODY[]: Dovecot serves it as 0x80, Cyrus
	// as it is (literal8), so a NUL counts as 0x80 (a body without NUL,
	// nearly every one, keys as it always did).
	body := bytes.ReplaceAll(bodyPrefix, []byte{'\r'}, nil)
	body = bytes.ReplaceAll(body, []byte{0}, []byte{0x80})
	h := sha256.New()
	h.Write([]byte("mailferry-key-v1\n"))
	h.Write(head.Bytes())
	h.Write([]byte("size:" + strconv.FormatInt(size, 10) + "\n"))
	h.Write(body)
	copy(k.Fingerprint[:], h.Sum(nil))
	h.Reset()
	h.Write([]byte("mailferry-loose-v1\n"))
	h.Write(head.Bytes())
	// Half the prefix: 1,024 bytes of a CRLF body hold at least 512 once
	// the CRs are gone, so the same body with LF or CRLF gives the same
	// bytes here, however long it is.
	h.Write(body[:min(len(body), KeyBodyPrefix/2)])
	copy(k.Loose[:], h.Sum(nil))
	return k
}

// KeyOf computes the Key of a whole raw message held in memory.
func KeyOf(raw []byte) Key {
	header, body := SplitMessage(raw)
	if len(body) > KeyBodyPrefix {
		body = body[:KeyBodyPrefix]
	}
	return NewKey(header, body, int64(len(raw)))
}

// SplitMessage splits raw at the first empty line, as IMAP servers do for the
// HEADER and TEXT sections. A message without an empty line is all header.
func SplitMessage(raw []byte) (header, body []byte) {
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return nil, raw[2:]
	}
	if bytes.HasPrefix(raw, []byte("\n")) {
		return nil, raw[1:]
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\n' {
			continue
		}
		rest := raw[i+1:]
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			return raw[:i+1], rest[2:]
		}
		if bytes.HasPrefix(rest, []byte("\n")) {
			return raw[:i+1], rest[1:]
		}
	}
	return raw, nil
}

// maxMessageIDLen bounds what is kept of an absurdly long Message-ID; longer
// ones are replaced by a hash so keys stay small and comparable.
const maxMessageIDLen = 250

// NormalizeMessageID turns a raw Message-ID field value into a comparable
// form: the first <...> token with white space removed, or, for IDs without
// angle brackets, the whole value with white space removed and brackets added.
// It returns "" for an empty value.
func NormalizeMessageID(v string) string {
	v = strings.TrimSpace(v)
	if start := strings.IndexByte(v, '<'); start >= 0 {
		if end := strings.IndexByte(v[start:], '>'); end > 0 {
			v = v[start+1 : start+end]
		} else {
			v = v[start+1:]
		}
	}
	v = strings.Join(strings.Fields(v), "")
	v = strings.Trim(v, "<>")
	if v == "" {
		return ""
	}
	if len(v) > maxMessageIDLen {
		sum := sha256.Sum256([]byte(v))
		v = "sha256:" + hex.EncodeToString(sum[:])
	}
	return "<" + v + ">"
}

// parseKeyFields reads a header block leniently and returns, for each key
// field (lower-case name), its values in order of appearance, unfolded and
// with white space collapsed. Lines that are neither fields nor
// continuations are skipped, never an error.
func parseKeyFields(header []byte) map[string][]string {
	out := make(map[string][]string, len(keyFields))
	var cur string // lower-case name of the field being continued, "" if none kept
	var val []byte
	flush := func() {
		if cur != "" {
			out[cur] = append(out[cur], collapseSpace(val))
		}
		cur, val = "", val[:0]
	}
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line, header = header[:i], header[i+1:]
		} else {
			header = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break // end of the header block
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur != "" {
				val = append(val, ' ')
				val = append(val, line...)
			}
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := strings.ToLower(string(bytes.TrimRight(line[:colon], " \t")))
		if !isKeyField(name) {
			continue
		}
		cur = name
		val = append(val, line[colon+1:]...)
	}
	flush()
	return out
}

func isKeyField(lower string) bool {
	for _, f := range keyFields {
		if strings.EqualFold(f, lower) {
			return true
		}
	}
	return false
}

func collapseSpace(b []byte) string {
	return string(bytes.Join(bytes.Fields(b), []byte{' '}))
}
