package imap

import (
	"errors"
	"strings"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/mailferry/mailferry/providers/mutf7"
)

// lsub reads the subscriptions with LSUB (RFC 3501), for servers without
// LIST-EXTENDED's RETURN (SUBSCRIBED). go-imap cannot parse an LSUB
// response, so it runs on the raw session before go-imap takes it over
// (see dial), once per store; Subscribe keeps the set current. The names
// are native, decoded from modified UTF-7.
func (se *session) lsub() (map[string]bool, error) {
	se.w.begin()
	defer se.w.end()
	tag := se.nextTag()
	if err := se.writeFlush(tag + ` LSUB "" "*"` + "\r\n"); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for {
		line, lits, err := se.readResponse()
		if err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return out, statusError(rest)
		}
		if rest, ok := cutPrefixFold(line, "* LSUB "); ok {
			name, ok := lsubName(rest, lits)
			if !ok {
				return nil, errors.New("unreadable LSUB response")
			}
			if dec, ok := mutf7.Decode(name); ok {
				name = dec
			}
			if strings.EqualFold(name, "INBOX") {
				name = "INBOX"
			}
			out[name] = true
		}
	}
}

// listsSubscribed reports whether LIST itself says what is subscribed.
func listsSubscribed(caps goimap.CapSet) bool {
	return caps.Has(goimap.CapListExtended) || caps.Has(goimap.CapIMAP4rev2)
}

// subscribedSet is what lsub read, nil until a connection read it.
func (s *Store) subscribedSet() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs
}

// lsubName reads the name out of "(attrs) delim name"; lits are the
// response's literals, in order.
func lsubName(rest string, lits []string) (string, bool) {
	i := strings.IndexByte(rest, ')')
	if !strings.HasPrefix(rest, "(") || i < 0 {
		return "", false
	}
	rest = strings.TrimLeft(rest[i+1:], " ")
	// The delimiter: a quoted character or NIL.
	switch {
	case strings.HasPrefix(rest, `"\`) && len(rest) >= 4:
		rest = rest[4:]
	case strings.HasPrefix(rest, `"`) && len(rest) >= 3:
		rest = rest[3:]
	case len(rest) >= 3 && strings.EqualFold(rest[:3], "NIL"):
		rest = rest[3:]
	default:
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	switch {
	case strings.HasPrefix(rest, "{"):
		if len(lits) == 0 {
			return "", false
		}
		return lits[len(lits)-1], true
	case strings.HasPrefix(rest, `"`):
		var b strings.Builder
		for i := 1; i < len(rest); i++ {
			switch rest[i] {
			case '\\':
				if i+1 < len(rest) {
					i++
					b.WriteByte(rest[i])
				}
			case '"':
				return b.String(), true
			default:
				b.WriteByte(rest[i])
			}
		}
		return "", false
	}
	return rest, rest != ""
}
