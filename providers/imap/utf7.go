package imap

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
)

// The raw APPEND connection writes mailbox names itself, so it needs the
// modified UTF-7 of RFC 3501 section 5.1.3 that go-imap keeps internal.

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeMUTF7 encodes a UTF-8 mailbox name: printable ASCII stands for
// itself ("&" as "&-"), runs of anything else become "&" + modified
// base64 of their UTF-16 + "-".
func encodeMUTF7(s string) string {
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
		b.WriteString(mutf7.EncodeToString(buf))
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

// decodeMUTF7 is the inverse of encodeMUTF7, for tests and round trips. It
// returns ok false for input that is not valid modified UTF-7.
func decodeMUTF7(s string) (string, bool) {
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
		raw, err := mutf7.DecodeString(s[:j])
		if err != nil || len(raw)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		b.WriteString(string(utf16.Decode(u)))
		s = s[j+1:]
	}
	return b.String(), true
}
