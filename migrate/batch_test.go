package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

func TestRunBatch(t *testing.T) {
	l := openLedger(t)
	type pair struct{ src, dst *mem.Store }
	pairs := map[string]pair{}
	var accts []BatchAccount
	var throttled atomic.Int32
	for i := range 12 {
		user := fmt.Sprintf("user%02d", i)
		p := pair{mem.New(), mem.New()}
		for j := range 5 + i {
			p.src.Put("INBOX", msg(100*i+j, user), nil, testDate)
		}
		pairs[user] = p
		accts = append(accts, BatchAccount{ID: ledger.AccountID(user, user), SourceUser: user, DestUser: user,
			OpenSource: func(ctx context.Context) (providers.Store, error) {
				switch user {
				case "user03":
					return nil, providers.WithClass(providers.ClassAccount, errors.New("authentication failed"))
				case "user05":
					// Refused for load twice, then fine.
					if throttled.Add(1) <= 2 {
						return nil, providers.Throttled(errors.New("too many connections"), 0)
					}
				}
				return p.src, nil
			},
			OpenDest: func(context.Context) (providers.Store, error) { return p.dst, nil },
		})
	}
	opts := BatchOptions{Options: Options{QuietWait: time.Millisecond, Backoff: time.Millisecond}, Concurrency: 3, SkipFailed: true}
	sums := RunBatch(context.Background(), accts, l, opts)
	if len(sums) != len(accts) {
		t.Fatalf("%d summaries for %d accounts", len(sums), len(accts))
	}
	for i, s := range sums {
		user := accts[i].SourceUser
		if s.Source != user {
			t.Errorf("summary %d is for %s, want %s: order must follow the input", i, s.Source, user)
		}
		switch user {
		case "user03":
			if s.Status != StatusFailed || s.Class != "account" {
				t.Errorf("user03: %+v", s)
			}
			acc, _, _ := l.Account(accts[i].ID)
			if acc.State != ledger.AccountFailed || acc.Reason == "" {
				t.Errorf("user03 ledger state %+v, want failed with a reason", acc)
			}
		default:
			if s.Status != StatusOK {
				t.Errorf("%s: %+v", user, s)
			}
			if got, want := multiset(pairs[user].dst, "INBOX"), multiset(pairs[user].src, "INBOX"); !slices.Equal(got, want) {
				t.Errorf("%s: destination differs", user)
			}
		}
	}
	// A later run skips the failed account unless asked to retry it.
	again := RunBatch(context.Background(), accts[3:4], l, opts)
	if again[0].Status != StatusSkipped {
		t.Errorf("failed account re-run without RetryFailed: %+v", again[0])
	}
	opts.RetryFailed = true
	again = RunBatch(context.Background(), accts[3:4], l, opts)
	if again[0].Status != StatusFailed || again[0].Class != "account" {
		t.Errorf("failed account with RetryFailed: %+v", again[0])
	}
}

func TestRunBatchInterrupted(t *testing.T) {
	l := openLedger(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sums := RunBatch(ctx, []BatchAccount{{ID: "a", SourceUser: "a", OpenSource: func(context.Context) (providers.Store, error) {
		t.Error("an account was started after cancellation")
		return nil, errors.New("unreachable")
	}}}, l, BatchOptions{})
	if sums[0].Status != StatusInterrupted {
		t.Errorf("status %q, want interrupted", sums[0].Status)
	}
}

// TestInterruptedAccountResumesInBatch: an account stopped by Ctrl-C in the
// middle of its mailbox is interrupted, not failed, so the same batch
// command carries on with it (failed accounts are skipped until
// --retry-failed) and ends with everything copied once.
func TestInterruptedAccountResumesInBatch(t *testing.T) {
	l := openLedger(t)
	src, dst := mem.New(), mem.New()
	for j := range 40 {
		src.Put("INBOX", msg(j, "resume"), []string{`\Seen`}, testDate)
	}
	acct := BatchAccount{ID: ledger.AccountID("u", "u"), SourceUser: "u", DestUser: "u",
		OpenSource: func(context.Context) (providers.Store, error) { return src, nil },
		OpenDest:   func(context.Context) (providers.Store, error) { return dst, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stored atomic.Int32
	dst.StoredHook = func(string, providers.UID) error {
		if stored.Add(1) == 10 {
			cancel()
		}
		return nil
	}
	opts := BatchOptions{Options: Options{QuietWait: time.Millisecond, BatchSize: 4}, SkipFailed: true}
	first := RunBatch(ctx, []BatchAccount{acct}, l, opts)
	if first[0].Status != StatusInterrupted {
		t.Fatalf("interrupted account: status %q (%s), want interrupted", first[0].Status, first[0].Error)
	}
	if acc, _, _ := l.Account(acct.ID); acc.State == ledger.AccountFailed {
		t.Errorf("ledger records the interrupted account as failed (%s): the next batch run would skip it", acc.Reason)
	}
	dst.StoredHook = nil
	again := RunBatch(context.Background(), []BatchAccount{acct}, l, opts)
	if again[0].Status != StatusOK {
		t.Fatalf("the same batch again: status %q (%s), want ok", again[0].Status, again[0].Error)
	}
	if got, want := multiset(dst, "INBOX"), multiset(src, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("after resuming, the destination holds %d messages, the source %d", len(got), len(want))
	}
}

// TestLoginNotRetriedWhenUnreachable: a server that cannot be reached is
// not busy, so its login is tried once; a login refused for load is
// retried, and each retry is an event.
func TestLoginNotRetriedWhenUnreachable(t *testing.T) {
	l := openLedger(t)
	var unreachable, busy atomic.Int32
	acct := func(user string, open func() error) BatchAccount {
		dst := mem.New()
		return BatchAccount{ID: ledger.AccountID(user, user), SourceUser: user, DestUser: user,
			OpenSource: func(context.Context) (providers.Store, error) {
				if err := open(); err != nil {
					return nil, err
				}
				return mem.New(), nil
			},
			OpenDest: func(context.Context) (providers.Store, error) { return dst, nil }}
	}
	accts := []BatchAccount{
		acct("down", func() error {
			unreachable.Add(1)
			return providers.WithClass(providers.ClassTransient, fmt.Errorf("connect: %w: refused", providers.ErrUnreachable))
		}),
		acct("busy", func() error {
			if busy.Add(1) <= 2 {
				return providers.Throttled(errors.New("too many connections"), 0)
			}
			return nil
		}),
	}
	var mu sync.Mutex
	retries := map[string]int{}
	opts := BatchOptions{Options: Options{QuietWait: time.Millisecond, Backoff: time.Millisecond, Events: func(e Event) {
		if e.Kind == EventRetry {
			mu.Lock()
			retries[e.ID]++
			mu.Unlock()
		}
	}}, Concurrency: 2}
	sums := RunBatch(context.Background(), accts, l, opts)
	if n := unreachable.Load(); n != 1 {
		t.Errorf("unreachable server: %d login attempts, want 1", n)
	}
	if sums[0].Status != StatusFailed || sums[1].Status != StatusOK {
		t.Errorf("statuses %s, %s; want failed, ok", sums[0].Status, sums[1].Status)
	}
	if got := retries[accts[1].ID]; got != 2 {
		t.Errorf("busy server: %d retry events, want 2", got)
	}
	if got := retries[accts[0].ID]; got != 0 {
		t.Errorf("unreachable server: %d retry events, want 0", got)
	}
}

// writeSpy fails the test on any write that reaches the store behind it.
type writeSpy struct {
	providers.Store
	t *testing.T
}

func (w writeSpy) CreateMailbox(ctx context.Context, name, role string) error {
	w.t.Errorf("a dry run created %q on the store", name)
	return w.Store.CreateMailbox(ctx, name, role)
}

// TestDryRunIsTheStores: Migrate puts a dry run's destination behind
// providers.DryRun and the source behind providers.ReadOnly, so nothing
// reaches either store's writes, and a second look at the destination
// finds it as it was.
func TestDryRunIsTheStores(t *testing.T) {
	src, dst := mem.New(), mem.New()
	src.Put("INBOX", []byte("Message-ID: <a@x>\r\n\r\none\r\n"), nil, time.Now())
	src.Put("Projects/Alpha", []byte("Message-ID: <b@x>\r\n\r\ntwo\r\n"), nil, time.Now())
	dst.Put("INBOX", []byte("Message-ID: <old@x>\r\n\r\nold\r\n"), nil, time.Now())
	sum, err := Migrate(context.Background(), Account{ID: "a", Source: writeSpy{src, t}, Dest: writeSpy{dst, t}}, nil, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status == StatusFailed {
		t.Errorf("dry run failed: %+v", sum)
	}
	if dst.Appends() != 0 || len(dst.Names()) != 1 || len(src.Messages("INBOX")) != 1 {
		t.Errorf("the stores changed: destination appends %d, mailboxes %v", dst.Appends(), dst.Names())
	}
	var newN int
	for _, m := range sum.Mailboxes {
		newN += m.New
	}
	if newN != 2 {
		t.Errorf("the dry run would copy %d messages, want 2: %+v", newN, sum.Mailboxes)
	}
}
