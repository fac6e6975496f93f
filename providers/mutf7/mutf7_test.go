package mutf7

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestRoundTrip(t *testing.T) {
	cases := map[string]string{
		"INBOX":          "INBOX",
		"Entwürfe":       "Entw&APw-rfe",
		"日本語":            "&ZeVnLIqe-",
		"a&b":            "a&-b",
		"Sent Items/🚀":   "Sent Items/&2D3egA-",
		"~peter/mail/台北": "~peter/mail/&U,BTFw-",
	}
	for in, want := range cases {
		if got := Encode(in); got != want {
			t.Errorf("Encode(%q) = %q, want %q", in, got, want)
		}
		if back, ok := Decode(want); !ok || back != in {
			t.Errorf("Decode(%q) = %q, %v", want, back, ok)
		}
		if back, ok := DecodeCanonical(want); !ok || back != in {
			t.Errorf("DecodeCanonical(%q) = %q, %v", want, back, ok)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&AGE-&", "&=-", "Entwürfe"} {
		if _, ok := Decode(bad); ok {
			t.Errorf("Decode(%q) accepted junk", bad)
		}
		if _, ok := DecodeCanonical(bad); ok {
			t.Errorf("DecodeCanonical(%q) accepted junk", bad)
		}
	}
}

// TestDecodeCanonical: what a server may send but Encode never writes is
// read by Decode and refused by DecodeCanonical.
func TestDecodeCanonical(t *testing.T) {
	cases := map[string]string{
		"&AGE-": "a",      // printable ASCII in base64
		"&2D0-": "\uFFFD", // unpaired surrogate
	}
	for in, want := range cases {
		if got, ok := Decode(in); !ok || got != want {
			t.Errorf("Decode(%q) = %q, %v, want %q", in, got, ok, want)
		}
		if got, ok := DecodeCanonical(in); ok {
			t.Errorf("DecodeCanonical(%q) = %q, accepted a non-canonical name", in, got)
		}
	}
}

// FuzzRoundTrip: any UTF-8 mailbox name survives modified UTF-7 and back,
// the encoding is printable ASCII, and decoding junk never panics.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"INBOX", "Entwürfe", "日本語", "a&b", "Sent Items/🚀", "&", "&-", "&Jjo-", "~peter/mail/台北"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		back, ok := Decode(s)
		if ok && !utf8.ValidString(back) {
			t.Errorf("Decode(%q) = %q, not UTF-8", s, back)
		}
		if canon, cok := DecodeCanonical(s); cok && (!ok || canon != back) {
			t.Errorf("DecodeCanonical(%q) = %q, but Decode = %q, %v", s, canon, back, ok)
		}
		if !utf8.ValidString(s) {
			return
		}
		enc := Encode(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("Encode(%q) = %q: byte %#x is not printable ASCII", s, enc, enc[i])
			}
		}
		if back, ok := Decode(enc); !ok || back != s {
			t.Errorf("Decode(Encode(%q)) = %q, %v (encoded %q)", s, back, ok, enc)
		}
		// DecodeCanonical refuses U+FFFD, so a name holding one stays
		// encoded.
		if back, ok := DecodeCanonical(enc); ok != !strings.ContainsRune(s, unicode.ReplacementChar) || ok && back != s {
			t.Errorf("DecodeCanonical(Encode(%q)) = %q, %v (encoded %q)", s, back, ok, enc)
		}
	})
}
