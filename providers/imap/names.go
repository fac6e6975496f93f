package imap

import (
	"strings"
)

// A mailbox name component may contain a character that is the hierarchy
// delimiter on the other side. It is swapped for a look-alike so the name
// survives the move and maps back the same way.
var lookalikes = map[rune]rune{'/': '∕', '.': '․'}

// namespace is the personal namespace of an account.
type namespace struct {
	prefix string // e.g. "INBOX." on Cyrus and some Dovecot setups, else ""
	delim  rune   // 0 when the server has a flat namespace
}

// canonical turns a native mailbox name into the canonical '/'-separated
// name relative to the personal namespace.
func (ns namespace) canonical(native string) string {
	if strings.EqualFold(native, "INBOX") {
		return "INBOX"
	}
	name := native
	if ns.prefix != "" && len(name) > len(ns.prefix) && strings.EqualFold(name[:len(ns.prefix)], ns.prefix) {
		name = name[len(ns.prefix):]
	}
	if ns.delim == 0 || ns.delim == '/' {
		return name
	}
	// The inverse of native: a '/' in a component becomes its look-alike,
	// and the delimiter's look-alike, which native put there for a
	// delimiter inside a name, becomes the delimiter again, so that a
	// mailbox created as "v1.2 release" is listed as "v1.2 release".
	back, hasBack := lookalikes[ns.delim]
	parts := strings.Split(name, string(ns.delim))
	for i, p := range parts {
		p = strings.ReplaceAll(p, "/", string(lookalikes['/']))
		if hasBack {
			p = strings.ReplaceAll(p, string(back), string(ns.delim))
		}
		parts[i] = p
	}
	return strings.Join(parts, "/")
}

// native turns a canonical name into this server's name.
func (ns namespace) native(canonical string) string {
	if strings.EqualFold(canonical, "INBOX") {
		return "INBOX"
	}
	parts := strings.Split(canonical, "/")
	if ns.delim != 0 && ns.delim != '/' {
		d := string(ns.delim)
		repl, ok := lookalikes[ns.delim]
		if !ok {
			repl = '_'
		}
		for i, p := range parts {
			p = strings.ReplaceAll(p, d, string(repl))
			// A '/' this server allows in names came back as its look-alike.
			parts[i] = strings.ReplaceAll(p, string(lookalikes['/']), "/")
		}
	}
	// INBOX's children already live under the prefix on servers whose
	// namespace is "INBOX." (Cyrus); do not nest them twice.
	if len(parts) > 1 && strings.EqualFold(parts[0], "INBOX") && strings.EqualFold(ns.prefix, "INBOX"+string(ns.delim)) {
		parts = parts[1:]
	}
	delim := "/"
	if ns.delim != 0 {
		delim = string(ns.delim)
	}
	return ns.prefix + strings.Join(parts, delim)
}
