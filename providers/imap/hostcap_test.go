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
// connection caps allow at once. Connections that a finished mailbox left
// idle in one account's pool hold host slots another account waits for,
// and setting flags on the destination needs a connection while the copy
// holds one; the batch and a re-run carrying flag changes must still
// finish, under the caps, with everything copied.
func TestTightHostCapFinishes(t *testing.T) {
	t.Run("two servers", func(t *testing.T) {
		src, dst := startUsers(t, "u", "v"), startUsers(t, "u", "v")
		runTightCap(t, src, dst, "u", providers.NewHostLimiter(2), providers.NewHostLimiter(2), 2, 0)
	})
	// Accounts u0..u3 move to v0..v3 on the same server, whose cap of 2
	// is split between the sides as the CLI does.
	t.Run("one server", func(t *testing.T) {
		s := startUsers(t, "u", "v")
		host := providers.NewHostLimiter(1)
		runTightCap(t, s, s, "v", host, host.WithCap(1), 2, 0)
	})
	t.Run("one connection per account", func(t *testing.T) {
		src, dst := startUsers(t, "u", "v"), startUsers(t, "u", "v")
		runTightCap(t, src, dst, "u", providers.NewHostLimiter(0), providers.NewHostLimiter(0), 8, 1)
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
func runTightCap(t *testing.T, src, dst *memserver.Server, destPrefix string, srcHost, dstHost *providers.HostLimiter, peakCap, maxConns int) {
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

	open := func(s *memserver.Server, user string, host *providers.HostLimiter) func(context.Context) (providers.Store, error) {
		return func(ctx context.Context) (providers.Store, error) {
			return imap.Open(ctx, imap.Config{Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: s.Port()},
				User: user, Password: providers.Secret("pw-" + user), Timeout: 10 * time.Second, Host: host, MaxConns: maxConns})
		}
	}
	var accts []migrate.BatchAccount
	for u, d := range users {
		accts = append(accts, migrate.BatchAccount{ID: u, SourceUser: u, DestUser: d,
			OpenSource: open(src, u, srcHost), OpenDest: open(dst, d, dstHost)})
	}
	batch := func() []migrate.AccountSummary {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sums := migrate.RunBatch(ctx, accts, ledger, migrate.BatchOptions{Concurrency: 4, Options: migrate.Options{MailboxWorkers: 4}})
		if ctx.Err() != nil {
			t.Fatalf("the batch did not finish within a minute: connections deadlocked under the caps")
		}
		return sums
	}
	batch()
	// A user reads a message in every mailbox; the re-run carries it over.
	for u := range users {
		for _, mb := range boxes {
			if err := src.AddFlag(u, mb, `\Seen`); err != nil {
				t.Fatal(err)
			}
		}
	}
	sums := batch()
	for _, s := range sums {
		if got := s.Totals().FlagsUpdated; got != len(boxes) {
			t.Errorf("%s: %d flag updates on the re-run, want %d", s.Account, got, len(boxes))
		}
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
