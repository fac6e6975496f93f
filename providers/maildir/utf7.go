package maildir

import (
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf16"
)

// Dovecot (by default) and Courier-IMAP before 5.0 store folder names in
// IMAP's modified UTF-7 (RFC 3501 section 5.1.3). providers/imap has its
// own copy for the wire; this one is for directory names.

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeUTF7 writes s in modified UTF-7: printable ASCII as itself, '&' as
// "&-", runs of other characters as '&', modified base64 of their UTF-16,
// '-'.
func encodeUTF7(s string) string {
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

// decodeUTF7 undoes encodeUTF7; ok is false for anything that is not
// modified UTF-7 as encodeUTF7 writes it (so that a UTF-8 name is not
// misread).
func decodeUTF7(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return "", false
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
		if err != nil || len(raw) == 0 || len(raw)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(u) {
			if r >= 0x20 && r <= 0x7e || r == unicode.ReplacementChar {
				return "", false // printable ASCII must stand for itself
			}
			b.WriteRune(r)
		}
		s = s[j+1:]
	}
	return b.String(), true
}
