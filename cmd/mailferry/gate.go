package main

// Fail fast. A mistake that concerns a whole server (a wrong admin
// password, a certificate not trusted, a wrong port or host name) fails
// every account the same way; run over 1,100 users it would lock the admin
// out, mark every account failed and, for an unreachable host, wait out
// each account's backoff. So a run first logs in alone, one account after
// another, until one login per side succeeds (the probe), and stops at
// once, exit 2, for a cause that is the server's; once the run is under
// way, the first login that fails for such a cause stops it the same way.
// Accounts the run did not finish stay as they were in the checkpoint, so
// that the next run takes them up without --retry-failed.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/mailferry/mailferry/providers"
)

// probeAdminTries is how many accounts' logins an admin refused may be
// tried before the admin's credentials are judged wrong. One refusal could
// be a user missing on that server; three different users in a row, with
// none accepted, is the admin.
const probeAdminTries = 3

// endpointError stops a whole run: every account would fail for it.
type endpointError struct {
	side     *side
	cause    string // what went wrong, for the message
	err      error  // the first failure
	accounts []string
	hint     string
}

func (e *endpointError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the %s %s %s", e.side.name, e.side.id(), e.cause)
	switch len(e.accounts) {
	case 0:
	case 1:
		fmt.Fprintf(&b, " (account %s)", e.accounts[0])
	default:
		fmt.Fprintf(&b, " (accounts %s)", strings.Join(e.accounts, ", "))
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(e.err, &cve) { // the hint says it all, without the adapter's own advice
		fmt.Fprintf(&b, ": %v", e.err)
	}
	if e.hint != "" {
		fmt.Fprintf(&b, "\n  %s", e.hint)
	}
	b.WriteString("\n  the run stopped; no account was marked failed: fix this and run the same command again")
	return b.String()
}

func (e *endpointError) Unwrap() error { return e.err }

// endpointWide says why err, from a login to side s, would fail every
// account of that server: "" if it may be the account's alone. An admin's
// refusal is judged by the probe, over several accounts.
func endpointWide(s *side, err error) (cause, hint string) {
	var dnsErr *net.DNSError
	var cve *tls.CertificateVerificationError
	flag := flagSide(s.name)
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "cannot be found by name", fmt.Sprintf("check the host name in --%s", flag)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused the connection", fmt.Sprintf("nothing listens on that port: check the port in --%s (imaps:// is 993, imap:// 143)", flag)
	case errors.Is(err, providers.ErrUnreachable):
		return "cannot be reached", fmt.Sprintf("check the host and port in --%s, and that a firewall lets this machine through", flag)
	case errors.As(err, &cve):
		return "presented a TLS certificate that is not trusted", certificateHint(err, flag)
	case isTLSFailure(err):
		return "failed the TLS handshake", fmt.Sprintf("check that --%s's scheme matches the port: imaps:// for implicit TLS (993), imap:// for STARTTLS (143)", flag)
	}
	return "", ""
}

// isTLSFailure recognises a failed TLS negotiation (the imap adapter says
// "TLS:" before it), and a server that offers no STARTTLS.
func isTLSFailure(err error) bool {
	var rhe tls.RecordHeaderError
	var ae tls.AlertError
	msg := err.Error()
	return errors.As(err, &rhe) || errors.As(err, &ae) || strings.Contains(msg, ": TLS: ") ||
		strings.Contains(msg, "does not offer STARTTLS")
}

// isLoginRefused reports a server's refusal of the credentials.
func isLoginRefused(err error) bool {
	return providers.ClassOf(err) == providers.ClassAccount && errors.Is(err, providers.ErrLoginRefused)
}

// gate holds the probe's logins for the run, and stops the run at the
// first endpoint-wide failure.
type gate struct {
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	stopped  *endpointError
	stores   map[string]providers.Store // side name + account id -> a login the probe made
	refused  map[string]error           // side name + account id -> the probe's refusal
	loggedIn map[string]bool            // side names a login succeeded on
}

func newGate(cancel context.CancelCauseFunc) *gate {
	return &gate{cancel: cancel, stores: map[string]providers.Store{}, refused: map[string]error{}, loggedIn: map[string]bool{}}
}

// succeeded reports whether a login to side s succeeded, in the probe or
// the run (a directory side always does).
func (g *gate) succeeded(s *side) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !s.needed || s.local() || g.loggedIn[s.name]
}

func gateKey(s *side, id string) string { return s.name + "\x00" + id }

// probe logs in to side s as the accounts would, one at a time, until one
// login succeeds or the failures show the server's fault. open logs in
// one account on s. It reports whether a login succeeded.
func (g *gate) probe(ctx context.Context, s *side, accts []plannedAccount, open func(plannedAccount) (providers.Store, error)) (bool, error) {
	if !s.needed || s.local() {
		return false, nil
	}
	var refused []string
	var first error
	for _, p := range accts {
		st, err := open(p)
		if err == nil {
			g.mu.Lock()
			g.stores[gateKey(s, p.ID)] = st
			g.loggedIn[s.name] = true
			g.mu.Unlock()
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		user := p.SourceUser
		if s.name == "destination" {
			user = p.DestUser
		}
		if cause, hint := endpointWide(s, err); cause != "" {
			return false, &endpointError{side: s, cause: cause, err: err, hint: hint}
		}
		if !isLoginRefused(err) {
			// Busy, or a problem of this account: the server answered, so
			// it is reachable and its certificate fine; the run retries.
			return false, nil
		}
		g.mu.Lock()
		g.refused[gateKey(s, p.ID)] = err
		g.mu.Unlock()
		if s.admin == "" && s.tokens == nil {
			return false, nil // the user's own password: that account's problem
		}
		refused = append(refused, user)
		if first == nil {
			first = err
		}
		if len(refused) == probeAdminTries {
			break
		}
	}
	if len(refused) == 0 {
		return false, nil
	}
	who, hint := "the admin login of "+s.admin, fmt.Sprintf("check --%s-admin and its password ($MAILFERRY_%s_ADMIN_PASSWORD or --%s-admin-password-file)", flagSide(s.name), strings.ToUpper(flagSide(s.name)), flagSide(s.name))
	if s.tokens != nil {
		who, hint = "the OAuth token", fmt.Sprintf("check --%s-oauth-token-cmd and the application's access to these mailboxes", flagSide(s.name))
	}
	return false, &endpointError{side: s, cause: fmt.Sprintf("refused %s for every account tried", who), err: first, accounts: refused, hint: hint}
}

// wrap makes the accounts' logins go through the gate: the probe's login
// or refusal is used once, and a failure for an endpoint-wide cause stops
// the run.
func (g *gate) wrap(accts []plannedAccount, src, dst *side) {
	for i := range accts {
		p := &accts[i]
		if p.invalid != "" {
			continue
		}
		p.OpenSource = g.login(src, p.ID, p.OpenSource)
		p.OpenDest = g.login(dst, p.ID, p.OpenDest)
	}
}

func (g *gate) login(s *side, id string, open func(context.Context) (providers.Store, error)) func(context.Context) (providers.Store, error) {
	key := gateKey(s, id)
	return func(ctx context.Context) (providers.Store, error) {
		g.mu.Lock()
		st, err := g.stores[key], g.refused[key]
		delete(g.stores, key)
		delete(g.refused, key)
		g.mu.Unlock()
		switch {
		case st != nil:
			return st, nil
		case err != nil:
			return nil, err
		}
		st, err = open(ctx)
		if err == nil {
			g.mu.Lock()
			g.loggedIn[s.name] = true
			g.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil {
			if cause, hint := endpointWide(s, err); cause != "" {
				g.stop(&endpointError{side: s, cause: cause, err: err, hint: hint})
			}
		}
		return st, err
	}
}

// stop ends the run for e; the first cause is the one reported.
func (g *gate) stop(e *endpointError) {
	g.mu.Lock()
	if g.stopped == nil {
		g.stopped = e
	}
	g.mu.Unlock()
	g.cancel(e)
}

// stoppedBy returns what stopped the run, nil if nothing did.
func (g *gate) stoppedBy() *endpointError {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

// close logs out of what the probe opened and the run did not take.
func (g *gate) close() {
	g.mu.Lock()
	stores := g.stores
	g.stores = map[string]providers.Store{}
	g.mu.Unlock()
	for _, st := range stores {
		st.Close()
	}
}
