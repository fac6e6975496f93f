package imap_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
	"github.com/mailferry/mailferry/providers/imap/memserver"
	"github.com/mailferry/mailferry/providers/providertest"
)

// accounts remembers how each store of a conformance run logged in, so that
// Reopen can log in again as another process would.
type accounts struct {
	mu  sync.Mutex
	cfg map[providers.Store]imap.Config
}

func (a *accounts) open(t *testing.T, cfg imap.Config) providers.Store {
	t.Helper()
	st, err := imap.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("imap.Open %s as %s: %v", cfg.Endpoint.Addr(), cfg.User, err)
	}
	t.Cleanup(func() { st.Close() })
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg == nil {
		a.cfg = map[providers.Store]imap.Config{}
	}
	a.cfg[st] = cfg
	return st
}

func (a *accounts) reopen(t *testing.T, s providers.Store) providers.Store {
	a.mu.Lock()
	cfg, ok := a.cfg[s]
	a.mu.Unlock()
	if !ok {
		t.Fatalf("Reopen: store %p was not opened by this test", s)
	}
	return a.open(t, cfg)
}

// TestConformanceMemServer runs the suite against go-imap's in-memory
// server, one server per store.
func TestConformanceMemServer(t *testing.T) {
	var acc accounts
	providertest.Run(t, providertest.Options{
		NewStore: func(t *testing.T) providers.Store {
			srv, err := memserver.Start(map[string]string{"alice": "pw"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			return acc.open(t, imap.Config{
				Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: srv.Port()},
				User:     "alice", Password: "pw", Timeout: 30 * time.Second,
			})
		},
		Reopen:           acc.reopen,
		FoldsKeywordCase: true, // imapmemserver lowercases keywords
		NoSpecialUse:     true, // imapmemserver has no SPECIAL-USE
		RewritesMessages: true, // imapmemserver builds BODY[] with go-message
	})
}

// TestConformanceDovecot runs the suite against a real Dovecot, one user
// per store. The harness skips when Dovecot is missing and fails when
// CI=true.
func TestConformanceDovecot(t *testing.T) {
	const users = 6
	logins := map[string]string{}
	for i := range users {
		logins[fmt.Sprint("user", i)] = fmt.Sprint("pw", i)
	}
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: logins, SpecialUse: map[string]string{}})
	var acc accounts
	next := 0
	var mu sync.Mutex
	providertest.Run(t, providertest.Options{
		NewStore: func(t *testing.T) providers.Store {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			if i >= users {
				t.Fatalf("conformance run needs more than %d Dovecot users", users)
			}
			return acc.open(t, imap.Config{
				Endpoint: imap.Endpoint{Security: imap.Plain, Host: d.Host, Port: d.Port},
				User:     fmt.Sprint("user", i), Password: imap.Secret(fmt.Sprint("pw", i)), Timeout: 30 * time.Second,
			})
		},
		Reopen:                acc.reopen,
		NormalisesLineEndings: true, // Dovecot stores and serves CRLF
		NoEmptyMessage:        true, // "NO Can't save a zero byte message"
		// Dovecot takes roles from its configuration and offers no
		// CREATE-SPECIAL-USE; the adapter then creates the mailbox without one.
		NoSpecialUse:    true,
		StreamsMessages: true, // the server runs in another process
	})
}
