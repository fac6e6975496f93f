package imap_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// userPool gives each store of a conformance run its own user of one
// server: user0 (password pw0), user1, ... up to n.
type userPool struct {
	server string
	n      int
	mu     sync.Mutex
	next   int
}

func (p *userPool) logins() map[string]string {
	m := map[string]string{}
	for i := range p.n {
		m[fmt.Sprint("user", i)] = fmt.Sprint("pw", i)
	}
	return m
}

func (p *userPool) take(t *testing.T) (user string, pass providers.Secret) {
	p.mu.Lock()
	i := p.next
	p.next++
	p.mu.Unlock()
	if i >= p.n {
		t.Fatalf("conformance run needs more than %d %s users", p.n, p.server)
	}
	return fmt.Sprint("user", i), providers.Secret(fmt.Sprint("pw", i))
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
	pool := &userPool{server: "Dovecot", n: 6}
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: pool.logins(), SpecialUse: map[string]string{}})
	var acc accounts
	providertest.Run(t, providertest.Options{
		NewStore: func(t *testing.T) providers.Store {
			user, pass := pool.take(t)
			return acc.open(t, imap.Config{
				Endpoint: imap.Endpoint{Security: imap.Plain, Host: d.Host, Port: d.Port},
				User:     user, Password: pass, Timeout: 30 * time.Second,
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

// TestConformanceStrictDovecot runs the suite against Dovecot presented as
// a strict RFC 3501 server (imaptest.Strict): with no extension at all, and
// with every extension but one. A command that uses an extension the
// profile took away fails the run.
func TestConformanceStrictDovecot(t *testing.T) {
	profiles := map[string]imaptest.Strict{"IMAP4rev1": imaptest.Rev1}
	for _, ext := range imaptest.Extensions {
		profiles["all-but-"+ext] = imaptest.AllBut(ext)
	}
	pool := &userPool{server: "Dovecot", n: 3 * (len(profiles) + 1)}
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: pool.logins(), SpecialUse: map[string]string{}})
	for name, prof := range profiles {
		t.Run(name, func(t *testing.T) {
			p := imaptest.StartFaultProxy(t, d.Addr())
			p.BeStrict(prof)
			has := func(ext string) bool { return slices.Contains(prof.Keep, ext) }
			var acc accounts
			providertest.Run(t, providertest.Options{
				NewStore: func(t *testing.T) providers.Store {
					user, pass := pool.take(t)
					return acc.open(t, imap.Config{
						Endpoint: imap.Endpoint{Security: imap.Plain, Host: p.Host, Port: p.Port},
						User:     user, Password: pass, Timeout: 30 * time.Second,
					})
				},
				Reopen:                acc.reopen,
				NormalisesLineEndings: true,
				NoEmptyMessage:        true,
				NoSpecialUse:          true,
				NoAppendUID:           !has("UIDPLUS"),
				MoveRefused:           !has("MOVE") && !has("UIDPLUS"),
				MaxMessageBytes:       2 << 20,
			})
			if v := p.Stats().Violations; len(v) > 0 {
				t.Errorf("commands that used an extension the server did not offer: %q", v)
			}
		})
	}
}

// TestRolesByNameWithoutSpecialUse: a server that does not report roles
// (no SPECIAL-USE) still has its Sent and Trash found, by the names mail
// clients give them, so that "Sent Items" lands in the other side's Sent;
// one that reports them is believed.
func TestRolesByNameWithoutSpecialUse(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"u1": "pw1", "u2": "pw2"},
		SpecialUse: map[string]string{"Trash": `\Trash`}})
	for _, c := range []struct {
		strict   bool
		user     string
		wantSent string
	}{{true, "u1", providers.RoleSent}, {false, "u2", ""}} {
		addr := d.Addr()
		if c.strict {
			p := imaptest.StartFaultProxy(t, d.Addr())
			p.BeStrict(imaptest.Rev1)
			addr = p.Addr()
		}
		d.CreateMailbox(t, c.user, "Sent Items")
		host, port, _ := strings.Cut(addr, ":")
		n, _ := strconv.Atoi(port)
		st, err := imap.Open(context.Background(), imap.Config{Endpoint: imap.Endpoint{Security: imap.Plain, Host: host, Port: n},
			User: c.user, Password: providers.Secret(strings.Replace(c.user, "u", "pw", 1)), Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		boxes, err := st.Mailboxes(context.Background())
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		roles := map[string]string{}
		for _, b := range boxes {
			roles[b.Name] = b.SpecialUse
		}
		if roles["Sent Items"] != c.wantSent || roles["Trash"] != providers.RoleTrash {
			t.Errorf("strict %v: roles %v; want Sent Items %q and Trash \\Trash", c.strict, roles, c.wantSent)
		}
	}
}
