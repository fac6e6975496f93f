package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

func refusedLogin() error {
	return providers.WithClass(providers.ClassAccount, fmt.Errorf("log in: %w",
		providers.Refused(errors.New("authentication failed"))))
}

func unreachable() error {
	return providers.WithClass(providers.ClassTransient, fmt.Errorf("connect to 127.0.0.1:1: %w: %w", providers.ErrUnreachable,
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))
}

func probeAccounts(n int) []plannedAccount {
	var out []plannedAccount
	for i := range n {
		u := fmt.Sprintf("u%02d", i)
		out = append(out, plannedAccount{BatchAccount: migrate.BatchAccount{ID: u + "\x00" + u, SourceUser: u, DestUser: u}})
	}
	return out
}

// TestProbeAdminRefused: an admin refused for three accounts in a row,
// with none accepted, is the admin's credentials; they are tried no
// more than three times, whatever the size of the batch.
func TestProbeAdminRefused(t *testing.T) {
	s := &side{name: "destination", needed: true, admin: "dstadmin"}
	g := newGate(func(error) {})
	tries := 0
	ok, err := g.probe(context.Background(), s, probeAccounts(50), func(plannedAccount) (providers.Store, error) {
		tries++
		return nil, refusedLogin()
	})
	var ee *endpointError
	if ok || !errors.As(err, &ee) || tries != probeAdminTries {
		t.Fatalf("probe: ok %v, err %v, %d tries; want an endpoint error after %d", ok, err, tries, probeAdminTries)
	}
	if msg := err.Error(); !strings.Contains(msg, "refused the admin login of dstadmin") || !strings.Contains(msg, "u00, u01, u02") ||
		!strings.Contains(msg, "--to-admin") {
		t.Errorf("message: %s", msg)
	}
}

// TestProbeAdminAcceptedLater: one refusal then a login that works: the
// admin is fine, the first account's refusal is its own, kept for the
// run so that it is not tried twice, and the login is handed to the run.
func TestProbeAdminAcceptedLater(t *testing.T) {
	s := &side{name: "destination", needed: true, admin: "dstadmin"}
	g := newGate(func(error) {})
	accts := probeAccounts(5)
	store := mem.New()
	ok, err := g.probe(context.Background(), s, accts, func(p plannedAccount) (providers.Store, error) {
		if p.SourceUser == "u00" {
			return nil, refusedLogin()
		}
		return store, nil
	})
	if !ok || err != nil {
		t.Fatalf("probe: ok %v, err %v", ok, err)
	}
	logins := 0
	open := func(context.Context) (providers.Store, error) { logins++; return mem.New(), nil }
	accts[0].OpenDest = g.login(s, accts[0].ID, open)
	accts[1].OpenDest = g.login(s, accts[1].ID, open)
	if _, err := accts[0].OpenDest(context.Background()); !isLoginRefused(err) {
		t.Errorf("u00: %v, want the probe's refusal", err)
	}
	if st, err := accts[1].OpenDest(context.Background()); err != nil || st != store {
		t.Errorf("u01: %v, want the probe's login", err)
	}
	if logins != 0 {
		t.Errorf("%d logins made again", logins)
	}
}

// TestProbeUserPassword: without an admin a refused login is the user's:
// the probe stops there, the run goes on.
func TestProbeUserPassword(t *testing.T) {
	s := &side{name: "source", needed: true}
	g := newGate(func(error) {})
	tries := 0
	ok, err := g.probe(context.Background(), s, probeAccounts(10), func(plannedAccount) (providers.Store, error) {
		tries++
		return nil, refusedLogin()
	})
	if ok || err != nil || tries != 1 {
		t.Errorf("probe: ok %v, err %v, %d tries; want no verdict after 1", ok, err, tries)
	}
}

// TestGateStopsRun: once the run is under way, a login that cannot reach
// the server cancels the run with the cause.
func TestGateStopsRun(t *testing.T) {
	s := &side{name: "source", needed: true}
	ctx, cancel := context.WithCancelCause(context.Background())
	g := newGate(cancel)
	login := g.login(s, "u\x00u", func(context.Context) (providers.Store, error) { return nil, unreachable() })
	if _, err := login(ctx); !errors.Is(err, providers.ErrUnreachable) {
		t.Fatalf("login: %v", err)
	}
	var ee *endpointError
	if ctx.Err() == nil || !errors.As(context.Cause(ctx), &ee) || g.stoppedBy() != ee {
		t.Fatalf("run not stopped: %v", context.Cause(ctx))
	}
	if !strings.Contains(ee.Error(), "refused the connection") || !strings.Contains(ee.Error(), "no account was marked failed") {
		t.Errorf("message: %s", ee.Error())
	}
}
