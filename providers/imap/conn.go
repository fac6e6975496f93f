package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/providers"
)

// watchConn is the TCP connection under an IMAP client. go-imap sets
// absolute deadlines (five minutes for a whole literal) and none at all while
// it waits for a reply, so a large message on a slow link fails and a stalled
// server hangs forever. watchConn ignores those deadlines and instead closes
// the connection when an operation is under way and no byte has moved in
// either direction for the idle timeout.
type watchConn struct {
	net.Conn
	timeout  time.Duration
	last     atomic.Int64 // unix nanos of the last byte moved
	busy     atomic.Int32 // operations under way
	stalled  atomic.Bool
	done     chan struct{}
	stopOnce sync.Once
}

func newWatchConn(c net.Conn, timeout time.Duration) *watchConn {
	w := &watchConn{Conn: c, timeout: timeout, done: make(chan struct{})}
	w.last.Store(time.Now().UnixNano())
	go w.watch()
	return w
}

func (w *watchConn) watch() {
	every := max(min(w.timeout/4, 5*time.Second), 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			idle := time.Since(time.Unix(0, w.last.Load()))
			if w.busy.Load() > 0 && idle > w.timeout {
				w.stalled.Store(true)
				w.Close()
				return
			}
		}
	}
}

// begin and end bracket an operation that expects the server to answer.
func (w *watchConn) begin() {
	if w.busy.Add(1) == 1 {
		w.last.Store(time.Now().UnixNano())
	}
}
func (w *watchConn) end() { w.busy.Add(-1) }

func (w *watchConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		w.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (w *watchConn) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if n > 0 {
		w.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (w *watchConn) SetDeadline(time.Time) error      { return nil }
func (w *watchConn) SetReadDeadline(time.Time) error  { return nil }
func (w *watchConn) SetWriteDeadline(time.Time) error { return nil }

func (w *watchConn) Close() error {
	w.stopOnce.Do(func() { close(w.done) })
	return w.Conn.Close()
}

// errStalled explains a connection the watchdog closed.
var errStalled = errors.New("server sent nothing for too long; connection closed")

// conn is one logged-in IMAP connection.
type conn struct {
	c        *imapclient.Client
	w        *watchConn
	se       *session  // under c, for lending it (lend.go)
	gate     *readGate // holds c's reader while lent
	idleFrom time.Time // when it was returned to the pool
	// selected is the mailbox selected on it (native name), "" for none;
	// readOnly says it was EXAMINEd. A connection goes back to the pool
	// with its mailbox still selected: selecting another leaves it without
	// an expunge (RFC 3501 §6.3.1), so leaving costs a command only where
	// it must happen (before DELETE, see leave).
	selected string
	readOnly bool
	validity uint32 // of the selected mailbox, as SELECT said
}

// selectMailbox SELECTs (or, readOnly, EXAMINEs) native.
func (cn *conn) selectMailbox(native string, readOnly bool) (*goimap.SelectData, error) {
	sel, err := cn.c.Select(native, &goimap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		// A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
		cn.selected = ""
		return nil, err
	}
	cn.selected, cn.readOnly, cn.validity = native, readOnly, sel.UIDValidity
	return sel, nil
}

// leave leaves the selected mailbox without expunging anything: UNSELECT
// where the server offers it; else CLOSE, which expunges nothing in a
// mailbox selected read-only (RFC 3501 §6.4.2), after EXAMINE if it was
// selected read-write.
func (s *Store) leave(cn *conn) error {
	if cn.selected == "" {
		return nil
	}
	var err error
	switch {
	case s.caps.Has(goimap.CapUnselect) || s.caps.Has(goimap.CapIMAP4rev2):
		err = cn.c.Unselect().Wait()
	default:
		if !cn.readOnly {
			if _, err = cn.selectMailbox(cn.selected, true); err != nil {
				return err
			}
		}
		err = cn.c.UnselectAndExpunge().Wait()
	}
	if err == nil {
		cn.selected = ""
	}
	return err
}

// do runs fn as one operation: the watchdog is armed, and cancelling ctx
// closes the connection, the only way to interrupt go-imap.
func (cn *conn) do(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cn.w.begin()
	defer cn.w.end()
	stop := context.AfterFunc(ctx, cn.close)
	err := fn()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cn.w.stalled.Load() {
			return providers.WithClass(providers.ClassTransient, fmt.Errorf("%w: %w", errStalled, err))
		}
	}
	return err
}

// alive reports whether the connection may still be used.
func (cn *conn) alive() bool {
	select {
	case <-cn.c.Closed():
		return false
	default:
		return cn.c.State() != goimap.ConnStateLogout
	}
}

// close drops the connection without waiting. go-imap's Client.Close waits
// for its reader goroutine, which may itself be waiting for this goroutine
// to consume a FETCH response: closing the socket first and letting
// Client.Close finish in the background avoids that deadlock.
func (cn *conn) close() {
	cn.w.Close()
	go cn.c.Close()
}

// connect opens one logged-in session (session.go). With a token source,
// a refused token (expired, revoked) is replaced by a fresh one once.
func (s *Store) connect(ctx context.Context) (*session, error) {
	if s.cfg.Token == nil {
		return s.handshake(ctx, "")
	}
	var refused providers.Secret
	var refusal error
	for {
		// The token is fetched before connecting: a token command may take
		// longer than a server waits for a login.
		token, err := s.cfg.Token.Token(ctx, refused)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if providers.ClassOf(err) == providers.ClassUnclassified {
				err = providers.WithClass(providers.ClassAccount, err)
			}
			if refusal != nil {
				return nil, fmt.Errorf("%w; no other token to try: %w", refusal, err)
			}
			return nil, fmt.Errorf("%s as %s: OAuth token: %w", s.cfg.Endpoint.Addr(), s.cfg.User, err)
		}
		se, err := s.handshake(ctx, token)
		if err == nil || refused != "" || !refusedToken(err) {
			return se, err
		}
		refused, refusal = token, err
	}
}

// dial opens one pooled connection: a session handed to go-imap.
func (s *Store) dial(ctx context.Context) (*conn, error) {
	se, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	if !listsSubscribed(se.caps) && s.subscribedSet() == nil {
		subs, err := se.lsub()
		if err != nil {
			se.close()
			return nil, fmt.Errorf("%s: list subscriptions: %w", s.cfg.Endpoint.Addr(), classify(err, opOther))
		}
		s.mu.Lock()
		s.subs = subs
		s.mu.Unlock()
	}
	nc, gate := se.forGoIMAP()
	c := imapclient.New(nc, &imapclient.Options{})
	se.w.begin()
	err = c.WaitGreeting()
	se.w.end()
	if err != nil {
		c.Close()
		se.close()
		return nil, providers.WithClass(providers.ClassTransient, fmt.Errorf("%s: %w", s.cfg.Endpoint.Addr(), err))
	}
	return &conn{c: c, w: se.w, se: se, gate: gate}, nil
}

func (s *Store) tlsConfig() *tls.Config {
	if s.cfg.TLS != nil {
		return s.cfg.TLS.Clone()
	}
	return &tls.Config{ServerName: s.cfg.Endpoint.Host, MinVersion: tls.VersionTLS12}
}

// classifyLogin sorts a failed connection attempt: a refusal of the
// credentials ends the account, anything else may pass.
func classifyLogin(err error) error {
	if providers.ClassOf(err) != providers.ClassUnclassified {
		return err
	}
	var ie *goimap.Error
	if errors.As(err, &ie) {
		if ie.Type == goimap.StatusResponseTypeBye || isThrottle(ie) {
			return classify(err, opOther)
		}
		if ie.Type == goimap.StatusResponseTypeNo {
			err = providers.Refused(err)
		}
		return providers.WithClass(providers.ClassAccount, fmt.Errorf("log in: %w", err))
	}
	// go-imap flattens the TLS error into text, so look at both.
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) || strings.Contains(err.Error(), "x509:") {
		return providers.WithClass(providers.ClassAccount, fmt.Errorf("%w (use --ca-file for a private CA, or --insecure-skip-verify to accept any certificate)", err))
	}
	if strings.Contains(err.Error(), "tls:") {
		return providers.WithClass(providers.ClassAccount, err)
	}
	return providers.WithClass(providers.ClassTransient, err)
}

type op int

const (
	opOther op = iota
	opAppend
	opSelect
)

// classify sorts an error from a command by what the copier should do.
func classify(err error, o op) error {
	if err == nil || providers.ClassOf(err) != providers.ClassUnclassified {
		return err
	}
	var ie *goimap.Error
	if !errors.As(err, &ie) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// Not a server reply: the connection is in an unknown state.
		return providers.WithClass(providers.ClassTransient, err)
	}
	switch {
	case ie.Type == goimap.StatusResponseTypeBye:
		return providers.WithClass(providers.ClassTransient, err)
	case isThrottle(ie):
		return providers.Throttled(err, retryHint(ie))
	}
	switch ie.Code {
	case goimap.ResponseCodeOverQuota:
		return providers.WithClass(providers.ClassAccount, err)
	case goimap.ResponseCodeAuthenticationFailed, goimap.ResponseCodeAuthorizationFailed, goimap.ResponseCodeExpired:
		return providers.WithClass(providers.ClassAccount, err)
	case goimap.ResponseCodeTryCreate, goimap.ResponseCodeNonExistent:
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("%w: %w", providers.ErrMailboxNotFound, err))
	case goimap.ResponseCodeTooBig, goimap.ResponseCodeParse, goimap.ResponseCodeUnknownCTE:
		return providers.WithClass(providers.ClassMessage, err)
	}
	switch o {
	case opAppend:
		if mailboxRefusal(ie) {
			// The same for every message: one mailbox error, not one
			// failure per message.
			return providers.WithClass(providers.ClassMailbox, err)
		}
		// A plain NO or BAD to an APPEND is about that message.
		return providers.WithClass(providers.ClassMessage, err)
	case opSelect:
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("%w: %w", providers.ErrMailboxNotFound, err))
	}
	return providers.WithClass(providers.ClassMailbox, err)
}

// mailboxRefusal recognises a refusal to APPEND that is about the
// mailbox, not the message: no right to write there, a read-only mailbox,
// or one that is not there. Servers say so with a code (RFC 5530), or only
// in words: Courier "Current box is selected READ-ONLY.", Cyrus
// "Permission denied", Exchange "The specified folder could not be found".
func mailboxRefusal(ie *goimap.Error) bool {
	switch ie.Code {
	case goimap.ResponseCodeNoPerm, "READ-ONLY", goimap.ResponseCodeTryCreate, goimap.ResponseCodeNonExistent:
		return true
	case "":
	default:
		return false
	}
	t := strings.ToLower(ie.Text)
	for _, w := range []string{"read-only", "read only", "permission denied", "not allowed to", "no permission", "access denied",
		"mailbox does not exist", "folder could not be found", "no such mailbox"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}

// isThrottle recognises "come back later" replies: the standard codes, and
// the text of servers that send no code. A reply with another code means
// what its code says, whatever its text ("[OVERQUOTA] Too many messages" is
// a full mailbox, not a busy server).
func isThrottle(ie *goimap.Error) bool {
	switch ie.Code {
	case goimap.ResponseCodeUnavailable, goimap.ResponseCodeLimit, goimap.ResponseCodeInUse, "THROTTLED":
		return true
	case goimap.ResponseCodeOverQuota:
		// Gmail says "[OVERQUOTA] Account exceeded command or bandwidth
		// limits" for a rate limit that passes; a full mailbox does not.
		t := strings.ToLower(ie.Text)
		return strings.Contains(t, "bandwidth") || strings.Contains(t, "command") || strings.Contains(t, "rate")
	case "", goimap.ResponseCodeAlert:
		// Gmail: "NO [ALERT] Too many simultaneous connections."
		t := strings.ToLower(ie.Text)
		return strings.Contains(t, "too many") || strings.Contains(t, "try again later") ||
			strings.Contains(t, "throttl") || strings.Contains(t, "suggested backoff") ||
			// Exchange Online over its connection cap: "BAD User is
			// authenticated but not connected."
			strings.Contains(t, "authenticated but not connected")
	}
	return false
}

// backoffHint is Exchange Online's wait in a throttling reply: "Request is
// throttled. Suggested Backoff Time: 190 milliseconds".
var backoffHint = regexp.MustCompile(`(?i)suggested backoff time:\s*(\d{1,9})\s*(milliseconds|ms|seconds|s)\b`)

// retryHint is the wait a throttling reply asks for, 0 if it names none.
func retryHint(ie *goimap.Error) time.Duration {
	m := backoffHint.FindStringSubmatch(ie.Text)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	if strings.HasPrefix(strings.ToLower(m[2]), "m") {
		return time.Duration(n) * time.Millisecond
	}
	return time.Duration(n) * time.Second
}
