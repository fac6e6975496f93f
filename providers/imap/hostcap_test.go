package imap_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/memserver"
)

// TestTightHostCapFinishes: more accounts and mailbox workers than the
// per-host cap allows at once. Connections that a finished mailbox left
// idle in one account's pool hold host slots another account waits for;
// the batch must still finish, under the cap, with everything copied.
func TestTightHostCapFinishes(t *testing.T) {
	t.Run("two servers", func(t *testing.T) {
		src, dst := startUsers(t, "u", "v"), startUsers(t, "u", "v")
		runTightCap(t, src, dst, "u", imap.NewHostLimiter(2), imap.NewHostLimiter(2), 2)
	})
	// Accounts u0..u3 move to v0..v3 on the same server, whose cap of 2
	// is split between the sides as the CLI does.
	t.Run("one server", func(t *testing.T) {
		s := startUsers(t, "u", "v")
		host := imap.NewHostLimiter(1)
		runTightCap(t, s, s, "v", host, host.WithCap(1), 2)
	})
}

// startUsers starts a server with users <prefix>0..3 for each prefix; the
// password of a user is "pw-" and its name.
func startUsers(t *testing.T, prefixes ...string) *memserver.Server {
	t.Helper()
	users := map[string]string{}
	for _, p := range prefixes {
		for i := range 4 {
			u := fmt.Sprintf("%s%d", p, i)
			users[u] = "pw-" + u
		}
	}
	s, err := memserver.Start(users)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runTightCap migrates u0..u3 from src to <destPrefix>0..3 on dst, four
// accounts and four mailbox workers at once, under the given limiters.
func runTightCap(t *testing.T, src, dst *memserver.Server, destPrefix string, srcHost, dstHost *imap.HostLimiter, peakCap int) {
	users := map[string]string{}
	for i := range 4 {
		users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("%s%d", destPrefix, i)
	}
	boxes := []string{"INBOX", "A", "B", "C", "D"}
	for u := range users {
		for j, mb := range boxes {
			var msgs []memserver.Message
			for k := range 6 {
				msgs = append(msgs, memserver.Message{Raw: raw(100*j+k, 400), Date: time.Date(2021, 3, 4, 5, 6, k, 0, time.UTC)})
			}
			if err := src.Seed(u, mb, msgs); err != nil {
				t.Fatal(err)
			}
		}
	}
	ledger, err := checkpoint.Open(filepath.Join(t.TempDir(), "run.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()

	open := func(s *memserver.Server, user string, host *imap.HostLimiter) func(context.Context) (providers.Store, error) {
		return func(ctx context.Context) (providers.Store, error) {
			return imap.Open(ctx, imap.Config{Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: s.Port()},
				User: user, Password: imap.Secret("pw-" + user), Timeout: 10 * time.Second, Host: host})
		}
	}
	var accts []migrate.BatchAccount
	for u, d := range users {
		accts = append(accts, migrate.BatchAccount{ID: u, SourceUser: u, DestUser: d,
			OpenSource: open(src, u, srcHost), OpenDest: open(dst, d, dstHost)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sums := migrate.RunBatch(ctx, accts, ledger, migrate.BatchOptions{Concurrency: 4, Options: migrate.Options{MailboxWorkers: 4}})
	if ctx.Err() != nil {
		t.Fatalf("the batch did not finish within a minute: connections deadlocked under the host cap")
	}
	for _, s := range sums {
		if s.Status != migrate.StatusOK || s.Totals().Copied != 6*len(boxes) {
			t.Errorf("%s: status %s, totals %+v, want ok with %d copied", s.Account, s.Status, s.Totals(), 6*len(boxes))
		}
		for _, mb := range boxes {
			want, err := src.Snapshot(s.Account, mb)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := dst.Snapshot(users[s.Account], mb); err != nil || !slices.Equal(got, want) {
				t.Errorf("%s/%s: destination differs from source (%v)", s.Account, mb, err)
			}
		}
	}
	if p := srcHost.Peak(); p > peakCap {
		t.Errorf("source host peak %d connections, cap %d", p, peakCap)
	}
	if p := dstHost.Peak(); p > peakCap {
		t.Errorf("destination host peak %d connections, cap %d", p, peakCap)
	}
}
