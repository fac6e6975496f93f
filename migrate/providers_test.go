package migrate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
	"github.com/mailferry/mailferry/providers/imap/memserver"
	"github.com/mailferry/mailferry/providers/maildir"
	"github.com/mailferry/mailferry/providers/mbox"
	"github.com/mailferry/mailferry/providers/mem"
	"github.com/mailferry/mailferry/providers/providertest"
)

// migrateCopier is providertest's end-to-end check run through the engine:
// each source and destination pair gets its own ledger, kept between the
// copy and the copy again, as a checkpoint is between runs.
func migrateCopier() providertest.Copier {
	var mu sync.Mutex
	ledgers := map[[2]providers.Store]*ledger.Memory{}
	return func(t *testing.T, src, dst providers.Store, again bool) {
		t.Helper()
		mu.Lock()
		l := ledgers[[2]providers.Store{src, dst}]
		if l == nil {
			l = ledger.NewMemory()
			ledgers[[2]providers.Store{src, dst}] = l
		}
		mu.Unlock()
		sum, err := migrate.Migrate(t.Context(), migrate.Account{ID: "providertest", SourceUser: "a", DestUser: "a", Source: src, Dest: dst},
			l, migrate.Options{Retries: -1})
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if !sum.OK() {
			t.Fatalf("Migrate not OK: %+v", sum)
		}
		tot := sum.Totals()
		if tot.Failed != 0 || tot.Pending != 0 || tot.Duplicate != 0 {
			t.Errorf("Migrate totals %+v: want every message copied, none duplicate, failed or pending", tot)
		}
		switch {
		case again && tot.New != 0:
			t.Errorf("the run again copied %d new messages, want 0", tot.New)
		case !again && (tot.New != tot.Seen || tot.Seen == 0):
			t.Errorf("first run copied %d of %d messages", tot.New, tot.Seen)
		}
	}
}

// TestProvidersRoundTrip: every provider's store, filled with
// providertest's hard messages, goes through migrate into memory and back
// into a second store of the provider byte for byte, with flags and
// dates, and a second run adds nothing. (This was providertest's Migrate
// step; it lives here so that providertest depends on nothing but
// providers.)
func TestProvidersRoundTrip(t *testing.T) {
	t.Run("mem", func(t *testing.T) {
		providertest.RoundTrip(t, providertest.Options{NewStore: func(*testing.T) providers.Store { return mem.New() }}, migrateCopier())
	})
	t.Run("mbox", func(t *testing.T) {
		providertest.RoundTrip(t, providertest.Options{
			NewStore: func(t *testing.T) providers.Store {
				st, err := mbox.Open(t.TempDir(), mbox.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			},
			NoSubscribe: true, NoSpecialUse: true,
		}, migrateCopier())
	})
	for _, layout := range []maildir.Layout{maildir.LayoutMaildirPP, maildir.LayoutFS} {
		t.Run("maildir-"+layout.String(), func(t *testing.T) {
			providertest.RoundTrip(t, providertest.Options{
				NewStore: func(t *testing.T) providers.Store {
					st, err := maildir.Open(t.TempDir(), maildir.Options{Layout: layout})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { st.Close() })
					return st
				},
				NoSpecialUse: true,
			}, migrateCopier())
		})
	}
	openIMAP := func(t *testing.T, host string, port int, user, pass string) providers.Store {
		t.Helper()
		st, err := imap.Open(context.Background(), imap.Config{
			Endpoint: imap.Endpoint{Security: imap.Plain, Host: host, Port: port},
			User:     user, Password: providers.Secret(pass), Timeout: 30 * time.Second,
		})
		if err != nil {
			t.Fatalf("imap.Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	t.Run("imap-memserver", func(t *testing.T) {
		providertest.RoundTrip(t, providertest.Options{
			NewStore: func(t *testing.T) providers.Store {
				srv, err := memserver.Start(map[string]string{"alice": "pw"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Close() })
				return openIMAP(t, "127.0.0.1", srv.Port(), "alice", "pw")
			},
			FoldsKeywordCase: true, NoSpecialUse: true, RewritesMessages: true,
		}, migrateCopier())
	})
	t.Run("dovecot", func(t *testing.T) {
		users := map[string]string{"user0": "pw0", "user1": "pw1"}
		d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users, SpecialUse: map[string]string{}})
		next := 0
		providertest.RoundTrip(t, providertest.Options{
			NewStore: func(t *testing.T) providers.Store {
				user := fmt.Sprint("user", next)
				next++
				return openIMAP(t, d.Host, d.Port, user, users[user])
			},
			NormalisesLineEndings: true, NoEmptyMessage: true, NoSpecialUse: true,
		}, migrateCopier())
	})
}
