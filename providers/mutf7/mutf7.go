// Package mutf7 implements IMAP's modified UTF-7 (RFC 3501 section 5.1.3),
// the encoding of mailbox names on the wire and, in Dovecot (by default)
// and Courier-IMAP before 5.0, of Maildir folder names on disk.
package mutf7

import (
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf16"
)

var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// Encode writes the UTF-8 name s in modified UTF-7: printable ASCII stands
// for itself ("&" as "&-"), runs of anything else become "&", the modified
// base64 of their UTF-16, "-".
func Encode(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 0, 2*len(u))
		for _, c := range u {
			buf = append(buf, byte(c>>8), byte(c))
		}
		b.WriteByte('&')
		b.WriteString(b64.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}

// Decode is the inverse of Encode for any valid modified UTF-7, as a server
// may send it. It returns ok false for input that is not modified UTF-7;
// an unpaired surrogate decodes as U+FFFD.
func Decode(s string) (string, bool) {
	return decode(s, false)
}

// DecodeCanonical is Decode for only what Encode writes: it also returns ok
// false where a base64 run is empty, spells printable ASCII, or holds an
// unpaired surrogate, so that a name that merely looks like modified UTF-7
// is not misread.
func DecodeCanonical(s string) (string, bool) {
	return decode(s, true)
}

func decode(s string, canonical bool) (string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return "", false // only printable ASCII stands for itself
		}
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		j := strings.IndexByte(s, '-')
		if j < 0 {
			return "", false
		}
		if j == 0 {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		raw, err := b64.DecodeString(s[:j])
		if err != nil || len(raw)%2 != 0 || canonical && len(raw) == 0 {
			return "", false
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(u) {
			if canonical && (r >= 0x20 && r <= 0x7e || r == unicode.ReplacementChar) {
				return "", false // printable ASCII must stand for itself
			}
			b.WriteRune(r)
		}
		s = s[j+1:]
	}
	return b.String(), true
}
