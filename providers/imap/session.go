package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap/literal"
)

// session is one connection after the handshake every connection of the
// adapter goes through, whoever speaks on it afterwards (go-imap for the
// pooled connections, the appender for APPEND): dial, implicit TLS or
// STARTTLS, greeting, capabilities, login (LOGIN, SASL PLAIN with an admin,
// OAuth 2.0), then ID where the server offers it. Every extension it uses
// is used only when advertised: SASL-IR, LITERAL+, ID.
type session struct {
	w    *watchConn
	conn net.Conn      // w, or TLS over it
	br   *bufio.Reader // on conn; go-imap reads through it, see client
	bw   *bufio.Writer
	caps goimap.CapSet // after login
	tag  int
}

// handshake opens one session, logged in with the password, or with token
// when it is not empty.
func (s *Store) handshake(ctx context.Context, token providers.Secret) (*session, error) {
	cfg := &s.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", cfg.Endpoint.Addr())
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, providers.WithClass(providers.ClassTransient, fmt.Errorf("connect to %s: %w: %w", cfg.Endpoint.Addr(), providers.ErrUnreachable, err))
	}
	se := &session{w: newWatchConn(raw, cfg.Timeout)}
	err = func() error {
		se.w.begin()
		defer se.w.end()
		stop := context.AfterFunc(ctx, func() { se.w.Close() })
		defer stop()
		return se.open(ctx, s, token)
	}()
	if err != nil {
		se.w.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if se.w.stalled.Load() {
			err = providers.WithClass(providers.ClassTransient, fmt.Errorf("%w: %w", errStalled, err))
		}
		return nil, fmt.Errorf("%s as %s: %w", cfg.Endpoint.Addr(), cfg.User, classifyLogin(err))
	}
	return se, nil
}

func (se *session) open(ctx context.Context, s *Store, token providers.Secret) error {
	cfg := &s.cfg
	se.conn = se.w
	if cfg.Endpoint.Security == TLS {
		tc := tls.Client(se.w, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		se.conn = tc
	}
	// 64 KiB each way: a message moves in a few syscalls, not one per 4 KiB.
	se.br, se.bw = bufio.NewReaderSize(se.conn, 64<<10), bufio.NewWriterSize(se.conn, 64<<10)
	greeting, err := se.readLine()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	kind, rest, _ := strings.Cut(strings.TrimPrefix(greeting, "* "), " ")
	preauth := false
	switch strings.ToUpper(kind) {
	case "OK":
	case "PREAUTH":
		if cfg.Endpoint.Security == StartTLS {
			// RFC 7817: PREAUTH before STARTTLS leaves the session
			// unprotected, which imap:// promises it never is.
			return errors.New("the server sent PREAUTH before STARTTLS")
		}
		preauth = true
	default:
		// BYE: too many connections, maintenance, blocked.
		return statusError(strings.TrimPrefix(greeting, "* "))
	}
	se.caps = capsInCode(rest)
	if se.caps == nil {
		if err := se.capability(); err != nil {
			return err
		}
	}
	if cfg.Endpoint.Security == StartTLS {
		if !se.caps.Has(goimap.CapStartTLS) {
			return providers.WithClass(providers.ClassAccount, errors.New("the server does not offer STARTTLS (use imaps:// for implicit TLS)"))
		}
		if _, err := se.run("STARTTLS"); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		tc := tls.Client(se.w, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		se.conn = tc
		se.br, se.bw = bufio.NewReaderSize(se.conn, 64<<10), bufio.NewWriterSize(se.conn, 64<<10)
		// Capabilities seen before TLS may have been tampered with.
		if err := se.capability(); err != nil {
			return err
		}
	}
	if !preauth {
		status, err := se.login(s, token)
		if err != nil {
			return err
		}
		// Capabilities change with the login: take the new ones from the
		// reply, else ask.
		if se.caps = capsInCode(status); se.caps == nil {
			if err := se.capability(); err != nil {
				return err
			}
		}
	}
	if se.caps.Has(goimap.CapID) {
		// Some servers want to know the client (and log it); the reply is
		// of no use.
		if _, err := se.run(`ID ("name" "mailferry")`); err != nil && !isRefusal(err) {
			return fmt.Errorf("ID: %w", err)
		}
	}
	return nil
}

// isRefusal reports a NO or BAD: the connection itself is fine.
func isRefusal(err error) bool {
	var ie *goimap.Error
	return errors.As(err, &ie) && ie.Type != goimap.StatusResponseTypeBye
}

// login authenticates by the account's configuration and returns the
// tagged OK's text, which may carry the new capabilities.
func (se *session) login(s *Store, token providers.Secret) (string, error) {
	cfg := &s.cfg
	if token != "" {
		return se.loginOAuth(s, token)
	}
	authUser := cfg.User
	if cfg.Admin != "" {
		authUser = cfg.Admin
	}
	if cfg.Admin == "" && !se.caps.Has(goimap.CapLoginDisabled) {
		return se.run("LOGIN", str(authUser), str(string(cfg.Password)))
	}
	// An admin logs in with SASL PLAIN, the account as authorization
	// identity (Dovecot master users, Exchange and Google impersonation),
	// so no user password is needed.
	if !se.caps.Has(goimap.AuthCap(sasl.Plain)) {
		return "", providers.WithClass(providers.ClassAccount, errors.New("server offers no AUTHENTICATE PLAIN"))
	}
	authz := ""
	if cfg.Admin != "" {
		authz = cfg.User
	}
	return se.authenticate(sasl.NewPlainClient(authz, authUser, string(cfg.Password)))
}

// loginOAuth authenticates with a bearer token. The server's error details
// (its JSON challenge) join the refusal, never the token.
func (se *session) loginOAuth(s *Store, token providers.Secret) (string, error) {
	mech, err := oauthMech(s.cfg.OAuthMech, se.caps)
	if err != nil {
		return "", err
	}
	cl := newOAuthClient(mech, s, token)
	status, err := se.authenticate(cl)
	if err != nil {
		if !isRefusal(err) {
			return "", err
		}
		if detail := cl.detail(); detail != "" {
			err = fmt.Errorf("%s: %w (server says %s)", mech, err, detail)
		} else {
			err = fmt.Errorf("%s: %w", mech, err)
		}
		return "", &tokenRefusedError{err}
	}
	return status, nil
}

// authenticate runs one SASL exchange (RFC 3501 AUTHENTICATE), sending the
// initial response inline only where the server offers SASL-IR.
func (se *session) authenticate(cl sasl.Client) (string, error) {
	mech, ir, err := cl.Start()
	if err != nil {
		return "", err
	}
	tag := se.nextTag()
	line := tag + " AUTHENTICATE " + mech
	pendingIR := ir != nil
	if ir != nil && se.caps.Has(goimap.CapSASLIR) {
		line += " " + encodeSASL(ir, true)
		pendingIR = false
	}
	if err := se.writeFlush(line + "\r\n"); err != nil {
		return "", err
	}
	for {
		l, err := se.readLine()
		if err != nil {
			return "", err
		}
		switch {
		case strings.HasPrefix(l, "+"):
			var resp []byte
			if pendingIR {
				resp, pendingIR = ir, false
			} else {
				challenge, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(l, "+")))
				if derr != nil {
					challenge = nil
				}
				if resp, err = cl.Next(challenge); err != nil {
					// Cancel the exchange (RFC 3501 §6.2.2), so that the
					// server ends the command and the session stays usable.
					if werr := se.writeFlush("*\r\n"); werr != nil {
						return "", werr
					}
					_, _ = se.untilTagged(tag)
					return "", err
				}
			}
			if err := se.writeFlush(encodeSASL(resp, false) + "\r\n"); err != nil {
				return "", err
			}
		case strings.HasPrefix(l, tag+" "):
			rest := strings.TrimPrefix(l, tag+" ")
			return rest, statusError(rest)
		case strings.HasPrefix(l, "* BYE"):
			return "", statusError(strings.TrimPrefix(l, "* "))
		}
	}
}

// encodeSASL encodes a SASL response: base64, with the empty response "="
// as an initial response (RFC 4959) and an empty line otherwise.
func encodeSASL(b []byte, initial bool) string {
	if len(b) == 0 {
		if initial {
			return "="
		}
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// capability asks for the capabilities.
func (se *session) capability() error {
	tag := se.nextTag()
	if err := se.writeFlush(tag + " CAPABILITY\r\n"); err != nil {
		return err
	}
	var caps goimap.CapSet
	for {
		l, err := se.readLine()
		if err != nil {
			return err
		}
		if rest, ok := cutPrefixFold(l, "* CAPABILITY "); ok {
			caps = parseCaps(rest)
			continue
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if err := statusError(rest); err != nil {
				return fmt.Errorf("CAPABILITY: %w", err)
			}
			if caps == nil {
				return errors.New("the server answered CAPABILITY without its capabilities")
			}
			se.caps = caps
			return nil
		}
		if strings.HasPrefix(l, "* BYE") {
			return statusError(strings.TrimPrefix(l, "* "))
		}
	}
}

// capsInCode reads "[CAPABILITY ...]" at the start of a response text;
// nil if there is none.
func capsInCode(text string) goimap.CapSet {
	// A tagged reply's text starts with its status: "OK [CAPABILITY ...]".
	if i := strings.IndexByte(text, '['); i >= 0 && !strings.Contains(text[:i], "]") {
		text = text[i:]
	}
	rest, ok := cutPrefixFold(text, "[CAPABILITY ")
	if !ok {
		return nil
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return nil
	}
	return parseCaps(rest[:end])
}

func parseCaps(list string) goimap.CapSet {
	caps := goimap.CapSet{}
	for _, c := range strings.Fields(list) {
		switch {
		case strings.EqualFold(c, string(goimap.CapIMAP4rev1)):
			caps[goimap.CapIMAP4rev1] = struct{}{}
		case strings.EqualFold(c, string(goimap.CapIMAP4rev2)):
			caps[goimap.CapIMAP4rev2] = struct{}{}
		default:
			caps[goimap.Cap(strings.ToUpper(c))] = struct{}{}
		}
	}
	return caps
}

// capList writes caps as a CAPABILITY list.
func capList(caps goimap.CapSet) string {
	out := make([]string, 0, len(caps))
	for c := range caps {
		out = append(out, string(c))
	}
	return strings.Join(out, " ")
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

func (se *session) nextTag() string {
	se.tag++
	return "s" + strconv.Itoa(se.tag)
}

func (se *session) writeFlush(s string) error {
	if _, err := se.bw.WriteString(s); err != nil {
		return err
	}
	return se.bw.Flush()
}

// An arg is one argument of a command: an atom written as it is, or a
// string, written quoted or as a literal as its bytes require.
type arg interface{ isArg() }

type atom string
type str string

func (atom) isArg() {}
func (str) isArg()  {}

// run sends a command and waits for its tagged reply, whose text it
// returns; a NO or BAD is the error. A string that cannot be quoted goes
// as a literal, non-synchronizing only where the server offers LITERAL+
// (or LITERAL- for a small one). Errors quote the server's reply, never
// the command, which may hold a password.
func (se *session) run(name string, args ...arg) (string, error) {
	tag := se.nextTag()
	line := tag + " " + name
	for _, a := range args {
		switch a := a.(type) {
		case atom:
			line += " " + string(a)
		case str:
			if q, ok := quoted(string(a)); ok {
				line += " " + q
				continue
			}
			nonSync := se.caps.Has(goimap.CapLiteralPlus) || (se.caps.Has(goimap.CapLiteralMinus) && len(a) <= 4096)
			if nonSync {
				line += " {" + strconv.Itoa(len(a)) + "+}\r\n" + string(a)
				continue
			}
			if err := se.writeFlush(line + " {" + strconv.Itoa(len(a)) + "}\r\n"); err != nil {
				return "", err
			}
			if err := se.awaitContinuation(tag); err != nil {
				return "", err
			}
			line = string(a)
		}
	}
	if err := se.writeFlush(line + "\r\n"); err != nil {
		return "", err
	}
	return se.untilTagged(tag)
}

// awaitContinuation waits for the "+" that lets a literal go; the tagged
// reply instead is the command refused.
func (se *session) awaitContinuation(tag string) error {
	for {
		l, err := se.readLine()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(l, "+"):
			return nil
		case strings.HasPrefix(l, tag+" "):
			if err := statusError(strings.TrimPrefix(l, tag+" ")); err != nil {
				return err
			}
			return errors.New("the server ended the command before its literal")
		case strings.HasPrefix(l, "* BYE"):
			return statusError(strings.TrimPrefix(l, "* "))
		}
	}
}

// untilTagged reads up to the tagged reply of tag.
func (se *session) untilTagged(tag string) (string, error) {
	for {
		l, err := se.readLine()
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return rest, statusError(rest)
		}
		if strings.HasPrefix(l, "* BYE") {
			return "", statusError(strings.TrimPrefix(l, "* "))
		}
	}
}

// quoted writes s as an IMAP quoted string, if it can be one: 7-bit text
// without CR, LF or NUL (RFC 3501 §4.3).
func quoted(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			return "", false
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, true
}

// readLine reads one response line, skipping the contents of any literal
// it announces (untagged data the caller has no use for). On an error it
// returns what it had read of the line, so that a reader woken from an
// idle read can tell it read nothing.
func (se *session) readLine() (string, error) {
	line, err := se.br.ReadString('\n')
	if err != nil {
		return line, err
	}
	for {
		n, ok := literal.Trailing(line)
		if !ok {
			return strings.TrimRight(line, "\r\n"), nil
		}
		if _, err := io.CopyN(io.Discard, se.br, n); err != nil {
			return line, err
		}
		more, err := se.br.ReadString('\n')
		if err != nil {
			return line, err
		}
		line = strings.TrimRight(line, "\r\n") + " " + more
	}
}

// readResponse reads one response with its literals: the text has each
// literal's announcement in place, lits their bytes in order.
func (se *session) readResponse() (text string, lits []string, err error) {
	line, err := se.br.ReadString('\n')
	if err != nil {
		return "", nil, err
	}
	for {
		n, ok := literal.Trailing(line)
		if !ok || n > 1<<20 {
			return strings.TrimRight(line, "\r\n"), lits, nil
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(se.br, lit); err != nil {
			return "", nil, err
		}
		lits = append(lits, string(lit))
		more, err := se.br.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimRight(line, "\r\n") + more
	}
}

// statusError parses "OK ...", "NO [CODE] text" or "BAD text"; nil for OK.
func statusError(rest string) error {
	typ, text, _ := strings.Cut(rest, " ")
	e := &goimap.Error{Type: goimap.StatusResponseType(strings.ToUpper(typ))}
	if strings.HasPrefix(text, "[") {
		if j := strings.IndexByte(text, ']'); j > 0 {
			code, _, _ := strings.Cut(text[1:j], " ")
			e.Code = goimap.ResponseCode(strings.ToUpper(code))
			text = strings.TrimSpace(text[j+1:])
		}
	}
	e.Text = text
	if e.Type == goimap.StatusResponseTypeOK {
		return nil
	}
	return e
}

// close drops the session's connection.
func (se *session) close() { se.w.Close() }

// greetedConn is a session's connection as go-imap sees it: the server's
// greeting replayed as PREAUTH with the capabilities after login, then
// whatever the session's reader holds and the socket brings, read through
// a gate that holds go-imap's reader while the connection is lent to an
// appender (lend.go).
type greetedConn struct {
	net.Conn
	gate *readGate
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.gate.read(p) }

// forGoIMAP hands the logged-in session to go-imap.
func (se *session) forGoIMAP() (net.Conn, *readGate) {
	greeting := "* PREAUTH [CAPABILITY " + capList(se.caps) + "] session ready\r\n"
	gate := newReadGate(io.MultiReader(strings.NewReader(greeting), literal.Literal8Reader(se.br)))
	return &greetedConn{Conn: se.conn, gate: gate}, gate
}
