package imap

import (
	"context"
	"errors"
	"strings"
)

// lsub reads the subscriptions with LSUB (RFC 3501), for servers without
// LIST-EXTENDED's RETURN (SUBSCRIBED). go-imap cannot parse an LSUB
// response, so it runs on a session of its own (session.go), logged out
// afterwards: one login more per listing, on such servers only. The names
// are native (decoded from modified UTF-7).
func (s *Store) lsub(ctx context.Context) (map[string]bool, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.unreserve()
	se, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer se.close()
	se.w.begin()
	defer se.w.end()
	stop := context.AfterFunc(ctx, se.close)
	defer stop()
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
			if err := statusError(rest); err != nil {
				return nil, err
			}
			se.writeFlush("z LOGOUT\r\n")
			return out, nil
		}
		if rest, ok := cutPrefixFold(line, "* LSUB "); ok {
			name, ok := lsubName(rest, lits)
			if !ok {
				return nil, errors.New("unreadable LSUB response")
			}
			if dec, ok := decodeMUTF7(name); ok {
				name = dec
			}
			if strings.EqualFold(name, "INBOX") {
				name = "INBOX"
			}
			out[name] = true
		}
	}
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
