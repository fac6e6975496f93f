package imap

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// standInByWalk is nulStandIn as first written: a walk over every rune.
func standInByWalk(b []byte) bool {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 && b[i] == 0x80 {
			return true
		}
		i += n
	}
	return false
}

// TestNULStandIn: the jumping scan agrees with a walk over every rune, on
// the cases that matter (0x80 inside "Ā" and CJK, alone, after a broken
// sequence) and on random mixes of ASCII, UTF-8 and stray bytes.
func TestNULStandIn(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"plain ASCII\r\n", false},
		{"\u0100 \u4e00\u8000 ok", false}, // UTF-8 with 0x80 continuation bytes
		{"nul here:\x80.", true},
		{"\xc4\x80\x80", true},     // Ā, then a stray 0x80
		{"\xe4\xb8\x80", false},    // 一
		{"\xe4\xb8\x80\x80", true}, // 一 and a stray one
		{"\xf0\x80\x80\x80", true}, // overlong: none of it is UTF-8
		{"\xe4\x80", true},         // cut short
		{"", false},
	} {
		if got := nulStandIn([]byte(c.in)); got != c.want || got != standInByWalk([]byte(c.in)) {
			t.Errorf("nulStandIn(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "\r\n", "\x80", "\xc4\x80", "\xe4\xb8\x80", "\xf0\x9f\x98\x80", "\xc4", "\xe4\xb8", "\xff", "€"}
	for range 20000 {
		var b []byte
		for range rng.IntN(12) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		if got, want := nulStandIn(b), standInByWalk(b); got != want {
			t.Fatalf("nulStandIn(%q) = %v, the walk says %v", b, got, want)
		}
	}
}
