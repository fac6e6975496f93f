package imap_test

// Fault injection: a migration between two real Dovecots with a
// imaptest.FaultProxy in front of one of them. Every test either ends with
// an exact copy (checked with doveadm on both sides, independently of
// mailferry: same bytes, flags and dates, nothing missing, nothing twice)
// or with the error class the fault deserves; none may hang.

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

const (
	faultUser = "alice"
	faultPass = "fault-pw"
	// faultTimeout is the idle timeout of every connection: short, so that
	// the stall tests see the watchdog fire quickly.
	faultTimeout = 2 * time.Second
)

// faultEnv is a source and a destination Dovecot and a fault proxy in front
// of one of them.
type faultEnv struct {
	src, dst *imaptest.Dovecot
	proxy    *imaptest.FaultProxy
	front    string // "source" or "destination": the side behind the proxy
	path     string // how messages are appended, see appendPaths
	// pipelineDepth bounds the APPENDs in flight (0: the default), so that
	// a reply lost does not lose every reply at once.
	pipelineDepth int
	timeout       time.Duration
	ledger        *checkpoint.Store
	boxes         []string

	mu      sync.Mutex
	events  []migrate.Event
	onEvent func(migrate.Event)
}

// sizes of the messages seeded into each mailbox: both kinds of APPEND
// literal (go-imap sends up to 4 KiB without waiting for "+", larger ones
// after it) and a few FETCH reads' worth.
var mixedSizes = []int{1000, 6000, 20000, 1500, 9000, 3000, 40000, 800, 5000, 12000}

// The two ways mailferry appends to a destination: one APPEND command per
// message through go-imap, where the server lacks MULTIAPPEND (Gmail and
// Exchange do), and MULTIAPPEND groups on a connection of their own
// (Dovecot offers it). With the proxy in front of the destination, a test
// runs on each: for "APPEND" the proxy hides MULTIAPPEND from the client.
const (
	pathAppend      = "APPEND"
	pathMultiAppend = "MULTIAPPEND"
)

var appendPaths = []string{pathAppend, pathMultiAppend}

// eachPath runs fn as one subtest per append path.
func eachPath(t *testing.T, fn func(t *testing.T, path string)) {
	for _, p := range appendPaths {
		t.Run(p, func(t *testing.T) { fn(t, p) })
	}
}

// byPath picks the value for the append path: fault counts differ, as a
// MULTIAPPEND command carries many messages.
func byPath[T any](path string, single, multi T) T {
	if path == pathMultiAppend {
		return multi
	}
	return single
}

// newFaultEnv seeds INBOX with 40 messages (one of them twice: both copies
// must arrive) and Work with 12, and puts the proxy in front of front.
func newFaultEnv(t *testing.T, front, path string) *faultEnv {
	t.Helper()
	return newFaultEnvWith(t, front, path, map[string][]int{"INBOX": repeatSizes(mixedSizes, 40), "Work": repeatSizes(mixedSizes[3:], 12)})
}

func repeatSizes(sizes []int, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = sizes[i%len(sizes)]
	}
	return out
}

func newFaultEnvWith(t *testing.T, front, path string, boxes map[string][]int) *faultEnv {
	t.Helper()
	t.Parallel()
	e := &faultEnv{front: front, path: path, timeout: faultTimeout}
	e.src = imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{faultUser: faultPass}})
	e.dst = imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{faultUser: faultPass}})
	date := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	n := 0
	for _, box := range slices.Sorted(func(yield func(string) bool) {
		for b := range boxes {
			if !yield(b) {
				return
			}
		}
	}) {
		var msgs []imaptest.SeedMessage
		for i, size := range boxes[box] {
			flags := []string{`\Seen`}
			if i%4 == 1 {
				flags = []string{`\Answered`, "$Forwarded", "Project-" + box}
			}
			msgs = append(msgs, imaptest.SeedMessage{Raw: raw(1000*n+i, size), Flags: flags, InternalDate: date.Add(time.Duration(n*1000+i) * time.Minute)})
		}
		if len(msgs) > 3 {
			msgs = append(msgs, msgs[2]) // an identical copy: both must arrive
		}
		e.src.Seed(t, faultUser, box, msgs)
		e.boxes = append(e.boxes, box)
		n++
	}
	upstream := e.dst.Addr()
	if front == "source" {
		upstream = e.src.Addr()
	}
	e.proxy = imaptest.StartFaultProxy(t, upstream)
	if path == pathAppend {
		if front != "destination" {
			t.Fatal("the append path is chosen through the destination's proxy")
		}
		e.proxy.HideCapabilities("MULTIAPPEND")
	}
	var err error
	if e.ledger, err = checkpoint.Open(filepath.Join(t.TempDir(), "run.db"), checkpoint.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ledger.Close() })
	return e
}

// budget is a context bounding one test, well inside go test's deadline,
// so that a hang fails the test with a message instead of killing the
// binary.
func budget(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	if dl, ok := t.Deadline(); ok {
		d = min(d, time.Until(dl)-hangGrace-10*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// config is the connection to side: through the proxy if it is the side
// behind it.
func (e *faultEnv) config(side string, host *providers.HostLimiter) imap.Config {
	d := e.dst
	if side == "source" {
		d = e.src
	}
	ep := imap.Endpoint{Security: imap.Plain, Host: d.Host, Port: d.Port}
	if side == e.front {
		ep.Host, ep.Port = e.proxy.Host, e.proxy.Port
	}
	return imap.Config{Endpoint: ep, User: faultUser, Password: faultPass, Timeout: e.timeout, Host: host, PipelineDepth: e.pipelineDepth}
}

func (e *faultEnv) open(ctx context.Context, t *testing.T, side string) *imap.Store {
	t.Helper()
	st, err := imap.Open(ctx, e.config(side, nil))
	if err != nil {
		t.Fatalf("open %s: %v", side, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (e *faultEnv) options() migrate.Options {
	return migrate.Options{
		Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		BatchSize: 8, CommitInterval: 20 * time.Millisecond,
		Events: func(ev migrate.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			f := e.onEvent
			e.mu.Unlock()
			if f != nil {
				f(ev)
			}
		},
	}
}

// migrate runs one migration of the account pair in-process.
func (e *faultEnv) migrate(ctx context.Context, t *testing.T, opts migrate.Options) (migrate.AccountSummary, error) {
	t.Helper()
	acct := migrate.Account{ID: faultUser, SourceUser: faultUser, DestUser: faultUser,
		Source: e.open(ctx, t, "source"), Dest: e.open(ctx, t, "destination")}
	var sum migrate.AccountSummary
	var err error
	finish(ctx, t, func() { sum, err = migrate.Migrate(ctx, acct, e.ledger, opts) })
	return sum, err
}

// hangGrace is how long a run may take to return after its context is
// cancelled before the test declares it hung.
const hangGrace = 20 * time.Second

// finish runs fn, which must respect ctx: if it is still running
// hangGrace after ctx ended, the test fails with every goroutine's stack
// (fn is left behind; stopping the servers at cleanup usually frees it).
func finish(ctx context.Context, t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done:
		case <-time.After(hangGrace):
			buf := make([]byte, 1<<20)
			t.Fatalf("still running %v after the test's budget ended: hung\n%s", hangGrace, buf[:runtime.Stack(buf, true)])
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("did not finish within the test's budget: %v", ctx.Err())
	}
}

// retries returns the errors of the mailbox retries so far.
func (e *faultEnv) retries() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []error
	for _, ev := range e.events {
		if ev.Kind == migrate.EventRetry {
			out = append(out, ev.Err)
		}
	}
	return out
}

// checkExact compares every mailbox on both sides with doveadm.
func (e *faultEnv) checkExact(t *testing.T) {
	t.Helper()
	for _, box := range e.boxes {
		want := lines(e.src.Messages(t, faultUser, box))
		got := lines(e.dst.Messages(t, faultUser, box))
		if !slices.Equal(got, want) {
			missing, extra := multisetDiff(want, got)
			t.Errorf("%s: destination has %d messages, source %d: %d missing, %d extra (duplicates)\nmissing %q\nextra %q",
				box, len(got), len(want), len(missing), len(extra), missing, extra)
		}
	}
}

// checkSubset checks that the destination holds only source messages, none
// more often than the source does: a run that stopped early may leave
// messages out, never double them.
func (e *faultEnv) checkSubset(t *testing.T) (missing int) {
	t.Helper()
	for _, box := range e.boxes {
		want := lines(e.src.Messages(t, faultUser, box))
		got := lines(e.dst.Messages(t, faultUser, box))
		m, extra := multisetDiff(want, got)
		if len(extra) > 0 {
			t.Errorf("%s: %d destination messages are not source messages or are doubled: %q", box, len(extra), extra)
		}
		missing += len(m)
	}
	return missing
}

func multisetDiff(a, b []string) (onlyA, onlyB []string) {
	count := map[string]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
	}
	for _, x := range slices.Sorted(func(yield func(string) bool) {
		for k := range count {
			if !yield(k) {
				return
			}
		}
	}) {
		for n := count[x]; n > 0; n-- {
			onlyA = append(onlyA, x)
		}
		for n := count[x]; n < 0; n++ {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// checkLedger checks what the checkpoint claims against the destination:
// every message recorded as copied or duplicate points at a distinct
// destination message that exists, and with settled, no record is left
// unsettled.
func (e *faultEnv) checkLedger(t *testing.T, settled bool) map[ledger.Status]int {
	t.Helper()
	counts := map[ledger.Status]int{}
	for _, box := range e.boxes {
		exists := map[uint32]bool{}
		for _, m := range e.dst.Messages(t, faultUser, box) {
			exists[m.UID] = true
		}
		claimed := map[uint32]bool{}
		err := e.ledger.Records(faultUser, box, func(r ledger.Record) error {
			counts[r.Status]++
			switch {
			case r.Status.Settled():
				if !exists[r.DstUID] {
					t.Errorf("%s uid %d: recorded %s as destination uid %d, which does not exist", box, r.SrcUID, r.Status, r.DstUID)
				}
				if claimed[r.DstUID] {
					t.Errorf("%s: destination uid %d claimed by two records", box, r.DstUID)
				}
				claimed[r.DstUID] = true
			case settled && r.Status != ledger.StatusFailed:
				t.Errorf("%s uid %d: left %s", box, r.SrcUID, r.Status)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return counts
}

// expectRecovered is the outcome of every fault that must not cost a
// message: the run succeeds after retrying, and the copy is exact.
func (e *faultEnv) expectRecovered(t *testing.T, sum migrate.AccountSummary, err error, f *imaptest.Fault, wantFired int) {
	t.Helper()
	if err != nil || !sum.OK() {
		t.Errorf("migrate: %v\nsummary %+v", err, sum)
	}
	if got := f.Fired(); got != wantFired {
		t.Errorf("fault fired %d times, want %d: the test did not test what it says", got, wantFired)
	}
	if len(e.retries()) == 0 {
		t.Errorf("no mailbox was retried")
	}
	e.checkExact(t)
	e.checkLedger(t, true)
	// Not New == Seen: New counts only the last attempt's copies (see
	// docs/reliability.md).
	if tot := sum.Totals(); tot.Copied != tot.Seen || tot.Duplicate != 0 {
		t.Errorf("totals %+v: want every message copied", tot)
	}
}

func TestFaultDropMidFetchBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		when imaptest.When
	}{
		{"once", imaptest.Nth(5)},
		{"three times in a row", imaptest.When{Nth: 2, Times: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t, "source", "")
			ctx := budget(t, 2*time.Minute)
			// Every message is over 800 bytes: the drop is inside the literal.
			f := e.proxy.DropFetchBody(tc.when, 700)
			sum, err := e.migrate(ctx, t, e.options())
			e.expectRecovered(t, sum, err, f, tc.when.Times)
		})
	}
}

// TestFaultDropMidAppendLiteral: the destination sees half a message, then
// the connection goes. It must store nothing of it, and the retry send it
// whole, once.
func TestFaultDropMidAppendLiteral(t *testing.T) {
	eachPath(t, func(t *testing.T, path string) {
		e := newFaultEnv(t, "destination", path)
		ctx := budget(t, 2*time.Minute)
		f := e.proxy.DropAppendLiteral(imaptest.When{Nth: 4, Times: 2}, 500) // counts messages on both paths
		sum, err := e.migrate(ctx, t, e.options())
		e.expectRecovered(t, sum, err, f, 2)
	})
}

// TestFaultReplyLostAfterAppendOK: the destination stored the message (or
// a MULTIAPPEND group) and said OK, but the OK never arrived. The messages
// are pending in the ledger; the retry must find them on the destination
// rather than append them again.
func TestFaultReplyLostAfterAppendOK(t *testing.T) {
	eachPath(t, func(t *testing.T, path string) {
		t.Run("mid-run, repeatedly", func(t *testing.T) {
			e := newFaultEnv(t, "destination", path)
			// With every APPEND of a mailbox in flight at once, the first
			// lost reply would take all the others with it.
			e.pipelineDepth = byPath(path, 2, 0)
			ctx := budget(t, 2*time.Minute)
			when := byPath(path, imaptest.When{Nth: 3, Times: 3}, imaptest.When{Nth: 1, Times: 2})
			f := e.proxy.DropAfterAppendOK(when)
			sum, err := e.migrate(ctx, t, e.options())
			e.expectRecovered(t, sum, err, f, when.Times)
		})
		t.Run("the very last APPEND", func(t *testing.T) {
			e := newFaultEnvWith(t, "destination", path, map[string][]int{"INBOX": repeatSizes(mixedSizes, 20)})
			ctx := budget(t, 2*time.Minute)
			// 20 messages and the identical copy; one group for MULTIAPPEND.
			f := e.proxy.DropAfterAppendOK(byPath(path, imaptest.Nth(21), imaptest.Nth(1)))
			sum, err := e.migrate(ctx, t, e.options())
			e.expectRecovered(t, sum, err, f, 1)
		})
	})
}

// TestFaultStall: the server stops sending anything without closing. The
// watchdog must close the connection after the idle timeout and the
// mailbox be retried on a new one.
func TestFaultStall(t *testing.T) {
	for _, tc := range []struct {
		name, front, path, command string
		when                       imaptest.When
	}{
		{"APPEND", "destination", pathAppend, "APPEND", imaptest.Nth(3)},
		{"large APPEND", "destination", pathAppend, "APPEND", imaptest.Nth(7)}, // INBOX's 7th is 40 kB: sent after "+"
		{"MULTIAPPEND", "destination", pathMultiAppend, "APPEND", imaptest.Nth(1)},
		{"FETCH", "source", "", "UID FETCH", imaptest.Nth(2)},
		{"EXAMINE", "source", "", "EXAMINE", imaptest.Nth(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t, tc.front, tc.path)
			ctx := budget(t, 2*time.Minute)
			opts := e.options()
			opts.MailboxWorkers = 1
			f := e.proxy.StallCommand(tc.when, tc.command, 0)
			start := time.Now()
			sum, err := e.migrate(ctx, t, opts)
			e.expectRecovered(t, sum, err, f, 1)
			if took := time.Since(start); took < faultTimeout {
				t.Errorf("finished in %v, before the idle timeout of %v could have fired", took, faultTimeout)
			}
		})
	}
	t.Run("whole server, mid-run", func(t *testing.T) {
		eachPath(t, func(t *testing.T, path string) {
			// Every connection, open or new, freezes; once the watchdogs have
			// fired, the server comes back as a new process would, without
			// the commands that were stuck in the old one (see
			// TestKnownIssueLateAppend for a server that completes them).
			e := newFaultEnv(t, "destination", path)
			ctx := budget(t, 2*time.Minute)
			var once sync.Once
			e.onEvent = func(ev migrate.Event) {
				if ev.Kind == migrate.EventMailboxStart {
					once.Do(func() {
						e.proxy.Stall(0)
						time.AfterFunc(faultTimeout+time.Second, func() {
							e.proxy.DropAll()
							e.proxy.Resume()
						})
					})
				}
			}
			sum, err := e.migrate(ctx, t, e.options())
			if err != nil || !sum.OK() {
				t.Errorf("migrate: %v\nsummary %+v", err, sum)
			}
			if len(e.retries()) == 0 {
				t.Errorf("no mailbox was retried")
			}
			e.checkExact(t)
			e.checkLedger(t, true)
		})
	})
}

// stalled reports whether err says the watchdog closed the connection.
func stalled(err error) bool {
	return err != nil && strings.Contains(err.Error(), "server sent nothing for too long")
}

// TestFaultStallExplained: when the watchdog closes a connection, the
// error must say so, whatever the operation was, so that an operator
// reading a retry warning knows the server went silent.
func TestFaultStallExplained(t *testing.T) {
	for _, tc := range []struct{ front, path, command string }{
		{"destination", pathAppend, "APPEND"},
		{"destination", pathMultiAppend, "APPEND"},
		{"source", "", "UID FETCH"},
	} {
		t.Run(strings.TrimSpace(tc.command+" "+tc.path), func(t *testing.T) {
			e := newFaultEnvWith(t, tc.front, tc.path, map[string][]int{"INBOX": {1000, 9000, 2000}})
			ctx := budget(t, time.Minute)
			e.proxy.StallCommand(imaptest.Once, tc.command, 0)
			sum, err := e.migrate(ctx, t, e.options())
			if err != nil || !sum.OK() {
				t.Errorf("migrate: %v\nsummary %+v", err, sum)
			}
			errs := e.retries()
			if len(errs) == 0 || !stalled(errs[0]) {
				t.Errorf("retry errors %v: want the first to say the server sent nothing", errs)
			}
			e.checkExact(t)
		})
	}
}

func TestFaultBye(t *testing.T) {
	eachPath(t, func(t *testing.T, path string) {
		t.Run("instead of an APPEND", func(t *testing.T) {
			e := newFaultEnv(t, "destination", path)
			ctx := budget(t, 2*time.Minute)
			f := e.proxy.ByeCommand(byPath(path, imaptest.Nth(6), imaptest.Nth(2)), "APPEND", "Server shutting down")
			sum, err := e.migrate(ctx, t, e.options())
			e.expectRecovered(t, sum, err, f, 1)
		})
		t.Run("to every connection mid-run", func(t *testing.T) {
			e := newFaultEnv(t, "destination", path)
			ctx := budget(t, 2*time.Minute)
			var once sync.Once
			e.onEvent = func(ev migrate.Event) {
				if ev.Kind == migrate.EventCommitted {
					once.Do(func() { e.proxy.Bye("Server shutting down") })
				}
			}
			sum, err := e.migrate(ctx, t, e.options())
			if err != nil || !sum.OK() {
				t.Errorf("migrate: %v\nsummary %+v", err, sum)
			}
			e.checkExact(t)
			e.checkLedger(t, true)
		})
	})
	t.Run("instead of a FETCH", func(t *testing.T) {
		e := newFaultEnv(t, "source", "")
		ctx := budget(t, 2*time.Minute)
		f := e.proxy.ByeCommand(imaptest.Nth(3), "UID FETCH", "Server shutting down")
		sum, err := e.migrate(ctx, t, e.options())
		e.expectRecovered(t, sum, err, f, 1)
	})
}

// TestFaultTransientRefusals: refusals that mean "come back later" are
// retried and cost nothing.
func TestFaultTransientRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, front, path, command, code string
		when                             imaptest.When
	}{
		{"APPEND [UNAVAILABLE]", "destination", pathAppend, "APPEND", "UNAVAILABLE", imaptest.When{Nth: 3, Times: 2}},
		{"MULTIAPPEND [UNAVAILABLE]", "destination", pathMultiAppend, "APPEND", "UNAVAILABLE", imaptest.When{Nth: 1, Times: 2}},
		{"EXAMINE [INUSE]", "destination", pathMultiAppend, "EXAMINE", "INUSE", imaptest.Nth(2)},
		{"UID FETCH [LIMIT]", "source", "", "UID FETCH", "LIMIT", imaptest.Nth(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t, tc.front, tc.path)
			ctx := budget(t, 2*time.Minute)
			f := e.proxy.RefuseCommand(tc.when, tc.command, "NO", tc.code, "Try again later")
			sum, err := e.migrate(ctx, t, e.options())
			e.expectRecovered(t, sum, err, f, max(tc.when.Times, 1))
		})
	}
}

// TestFaultOverQuota: [OVERQUOTA] ends the account with an account-class
// error saying why; what was copied stays, nothing is doubled, and the
// ledger claims nothing the destination lacks.
func TestFaultOverQuota(t *testing.T) {
	eachPath(t, func(t *testing.T, path string) {
		for _, tc := range []struct {
			name string
			nth  int
		}{
			{"early", byPath(path, 2, 1)},
			{"later", byPath(path, 9, 2)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newFaultEnv(t, "destination", path)
				ctx := budget(t, 2*time.Minute)
				f := e.proxy.RefuseCommand(imaptest.When{Nth: tc.nth, Times: -1}, "APPEND", "NO", "OVERQUOTA", "Quota exceeded (mailbox for user is full)")
				sum, err := e.migrate(ctx, t, e.options())
				if f.Fired() == 0 {
					t.Fatalf("fault never fired")
				}
				if err == nil || providers.ClassOf(err) != providers.ClassAccount {
					t.Errorf("err %v (class %v), want an account error", err, providers.ClassOf(err))
				}
				if sum.OK() || sum.Status != migrate.StatusFailed || sum.Class != "account" || !strings.Contains(sum.Error, "OVERQUOTA") ||
					!strings.Contains(sum.Error, "Quota exceeded") {
					t.Errorf("summary status %q class %q error %q: want failed, account, and the server's reason", sum.Status, sum.Class, sum.Error)
				}
				if len(e.retries()) != 0 {
					t.Errorf("an over-quota account was retried: %v", e.retries())
				}
				missing := e.checkSubset(t)
				counts := e.checkLedger(t, false)
				if missing == 0 {
					t.Errorf("every message arrived although the destination refused some")
				}
				if tot := sum.Totals(); tot.Copied != counts[ledger.StatusCopied] {
					t.Errorf("summary says %d copied, ledger %d", tot.Copied, counts[ledger.StatusCopied])
				}
				acc, _, aerr := e.ledger.Account(faultUser)
				if aerr != nil || acc.State != ledger.AccountFailed || !strings.Contains(acc.Reason, "OVERQUOTA") {
					t.Errorf("ledger account %+v, %v: want failed with the reason", acc, aerr)
				}
			})
		}
	})
}

// TestFaultMessageRefused: a refusal of one message ([TOOBIG], or a plain
// BAD) records that message as failed with the server's text, and every
// other message is copied. On the MULTIAPPEND path the refusal spoils the
// whole group (RFC 3502: nothing of it is stored); mailferry then sends
// the mailbox's messages one by one, and the proxy refuses the first ones.
func TestFaultMessageRefused(t *testing.T) {
	eachPath(t, func(t *testing.T, path string) {
		for _, tc := range []struct {
			name         string
			size         int // every message of the mailbox: > 4 KiB is refused before the literal
			status, code string
			refused      int
		}{
			{"[TOOBIG] before the literal", 9000, "NO", "TOOBIG", 1},
			{"[TOOBIG] after the literal", 2000, "NO", "TOOBIG", 1},
			{"plain BAD", 2000, "BAD", "", 1},
			{"[TOOBIG] many, before the literal", 9000, "NO", "TOOBIG", 8},
			{"[TOOBIG] many, after the literal", 2000, "NO", "TOOBIG", 8},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newFaultEnvWith(t, "destination", path, map[string][]int{"INBOX": repeatSizes([]int{tc.size}, 20)})
				ctx := budget(t, 2*time.Minute)
				const why = "Message too large for this server"
				// With MULTIAPPEND, the group is the first APPEND.
				when := byPath(path, imaptest.When{Nth: 3, Times: tc.refused}, imaptest.When{Nth: 1, Times: 1 + tc.refused})
				f := e.proxy.RefuseCommand(when, "APPEND", tc.status, tc.code, why)
				sum, err := e.migrate(ctx, t, e.options())
				if err != nil {
					t.Errorf("migrate: %v", err)
				}
				if f.Fired() != when.Times {
					t.Fatalf("fault fired %d times, want %d", f.Fired(), when.Times)
				}
				tot := sum.Totals()
				if tot.Failed != tc.refused || tot.Copied != tot.Seen-tc.refused || tot.Pending != 0 {
					t.Errorf("totals %+v: want %d failed, the rest copied", tot, tc.refused)
				}
				for _, m := range sum.Mailboxes {
					if m.Error != "" {
						t.Errorf("mailbox %s failed: %s", m.Source, m.Error)
					}
					for _, fl := range m.Failures {
						if !strings.Contains(fl.Reason, why) {
							t.Errorf("failure of uid %d says %q, not the server's text", fl.UID, fl.Reason)
						}
					}
				}
				if sum.Status != migrate.StatusFailed {
					t.Errorf("status %q: a refused message must show", sum.Status)
				}
				if missing := e.checkSubset(t); missing != tc.refused {
					t.Errorf("%d messages missing on the destination, want the %d refused", missing, tc.refused)
				}
				if counts := e.checkLedger(t, true); counts[ledger.StatusFailed] != tc.refused {
					t.Errorf("ledger %v: want %d failed", counts, tc.refused)
				}
			})
		}
	})
}

// batchAccount is how the CLI sets up an account pair: imap.Open on each
// side, with one HostLimiter per server shared by every account of the
// batch.
func (e *faultEnv) batchAccount(srcHost, dstHost *providers.HostLimiter) migrate.BatchAccount {
	return migrate.BatchAccount{ID: faultUser, SourceUser: faultUser, DestUser: faultUser,
		OpenSource: func(ctx context.Context) (providers.Store, error) { return imap.Open(ctx, e.config("source", srcHost)) },
		OpenDest: func(ctx context.Context) (providers.Store, error) {
			return imap.Open(ctx, e.config("destination", dstHost))
		},
	}
}

func (e *faultEnv) runBatch(ctx context.Context, t *testing.T, host *providers.HostLimiter) migrate.AccountSummary {
	t.Helper()
	var sums []migrate.AccountSummary
	finish(ctx, t, func() {
		sums = migrate.RunBatch(ctx, []migrate.BatchAccount{e.batchAccount(host, providers.NewHostLimiter(0))}, e.ledger,
			migrate.BatchOptions{Options: e.options()})
	})
	return sums[0]
}

// TestFaultLoginThrottled: a server refusing logins for load (a BYE
// greeting, "too many connections", [LIMIT], or silence) is backed off
// and retried through RunBatch; the shared HostLimiter spaces the attempts.
func TestFaultLoginThrottled(t *testing.T) {
	t.Run("too many connections", func(t *testing.T) {
		e := newFaultEnv(t, "source", "")
		ctx := budget(t, 2*time.Minute)
		f := e.proxy.RefuseConnections(imaptest.When{Times: 2}, "Too many connections from this IP")
		sum := e.runBatch(ctx, t, providers.NewHostLimiter(4))
		if sum.Status != migrate.StatusOK {
			t.Errorf("account %s: %s", sum.Status, sum.Error)
		}
		if f.Fired() != 2 {
			t.Errorf("fired %d, want 2", f.Fired())
		}
		// The limiter's first pause is a second, then two: each attempt
		// after a refusal waited at least that long.
		acc := e.proxy.Accepts()
		if len(acc) < 3 {
			t.Fatalf("%d connections", len(acc))
		}
		if gap := acc[1].Sub(acc[0]); gap < time.Second {
			t.Errorf("second attempt %v after the first refusal: the host limiter did not back off", gap)
		}
		if gap := acc[2].Sub(acc[1]); gap < 2*time.Second {
			t.Errorf("third attempt %v after the second refusal: the backoff did not double", gap)
		}
		e.checkExact(t)
	})
	t.Run("LOGIN NO [LIMIT]", func(t *testing.T) {
		e := newFaultEnv(t, "source", "")
		ctx := budget(t, 2*time.Minute)
		f := e.proxy.RefuseCommand(imaptest.Once, "LOGIN", "NO", "LIMIT", "Too many concurrent sessions")
		start := time.Now()
		sum := e.runBatch(ctx, t, providers.NewHostLimiter(0))
		if sum.Status != migrate.StatusOK || f.Fired() != 1 {
			t.Errorf("account %s: %s; fired %d", sum.Status, sum.Error, f.Fired())
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("finished in %v: the host limiter did not pause after [LIMIT]", took)
		}
		e.checkExact(t)
	})
	t.Run("LOGIN stalls", func(t *testing.T) {
		e := newFaultEnv(t, "source", "")
		ctx := budget(t, 2*time.Minute)
		f := e.proxy.StallCommand(imaptest.Once, "LOGIN", 0)
		sum := e.runBatch(ctx, t, providers.NewHostLimiter(0))
		if sum.Status != migrate.StatusOK || f.Fired() != 1 {
			t.Errorf("account %s: %s; fired %d", sum.Status, sum.Error, f.Fired())
		}
		e.checkExact(t)
	})
	t.Run("wrong password is not retried", func(t *testing.T) {
		e := newFaultEnv(t, "source", "")
		ctx := budget(t, time.Minute)
		f := e.proxy.RefuseCommand(imaptest.When{Times: -1}, "LOGIN", "NO", "AUTHENTICATIONFAILED", "Authentication failed.")
		sum := e.runBatch(ctx, t, providers.NewHostLimiter(0))
		if sum.Status != migrate.StatusFailed || sum.Class != "account" || !strings.Contains(sum.Error, "Authentication failed") {
			t.Errorf("account %s class %s: %s", sum.Status, sum.Class, sum.Error)
		}
		if f.Fired() != 1 {
			t.Errorf("LOGIN refused %d times: an authentication failure was retried", f.Fired())
		}
		if strings.Contains(sum.Error, faultPass) {
			t.Errorf("error shows the password: %s", sum.Error)
		}
	})
}

// TestFaultBandwidth copies a 2 MB message through a link of 1 MB/s: slow
// but moving is not stalled, so nothing may be retried. The idle timeout
// here is 10 s, not 2: the watchdog sees bytes leave the process, and the
// kernel takes a few MB at once, which then take seconds to cross such a
// link while the client waits in silence (see docs/reliability.md).
func TestFaultBandwidth(t *testing.T) {
	for _, tc := range []struct{ front, path string }{
		{"source", ""}, {"destination", pathAppend}, {"destination", pathMultiAppend},
	} {
		t.Run(tc.front+" "+tc.path, func(t *testing.T) {
			e := newFaultEnvWith(t, tc.front, tc.path, map[string][]int{"INBOX": {2 << 20, 3000, 700 << 10, 1200}})
			e.timeout = 10 * time.Second
			ctx := budget(t, 2*time.Minute)
			e.proxy.SetBandwidth(1 << 20)
			sum, err := e.migrate(ctx, t, e.options())
			if err != nil || !sum.OK() {
				t.Errorf("migrate: %v\nsummary %+v", err, sum)
			}
			if errs := e.retries(); len(errs) > 0 {
				t.Errorf("a slow but moving transfer was retried: %v", errs)
			}
			e.checkExact(t)
			e.checkLedger(t, true)
		})
	}
}

// TestFaultGroupsShrinkUnderACut: every connection is cut after 1.5 MB
// while a MULTIAPPEND group of 100 of these messages is 2.6 MB. The groups
// shrink until one gets through before the cut, and everything arrives:
// a group too large for the connection never costs the mailbox.
func TestFaultGroupsShrinkUnderACut(t *testing.T) {
	e := newFaultEnvWith(t, "destination", pathMultiAppend, map[string][]int{"INBOX": repeatSizes([]int{26 << 10}, 300)})
	ctx := budget(t, 3*time.Minute)
	e.proxy.CutConnectionsAfter(1500 << 10)
	opts := e.options()
	opts.Retries = 3
	sum, err := e.migrate(ctx, t, opts)
	if err != nil || !sum.OK() {
		t.Errorf("migrate: %v\nsummary %+v", err, sum)
	}
	if tot := sum.Totals(); tot.Copied != tot.Seen || tot.Seen != 301 {
		t.Errorf("totals %+v: want all 301 messages copied", tot)
	}
	if len(e.retries()) == 0 {
		t.Errorf("no connection was cut: the test did not test what it says")
	}
	e.checkExact(t)
	e.checkLedger(t, true)
}

// TestFaultNeverHangs drops every connection to the destination in the
// middle of every message for good: the run must give up within its
// retries, with a transient error, and double nothing.
func TestFaultNeverHangs(t *testing.T) {
	eachPath(t, func(t *testing.T, path string) {
		e := newFaultEnv(t, "destination", path)
		ctx := budget(t, 2*time.Minute)
		f := e.proxy.DropAppendLiteral(imaptest.When{Times: -1}, 100)
		opts := e.options()
		opts.Retries = 3
		sum, err := e.migrate(ctx, t, opts)
		if f.Fired() == 0 || sum.OK() {
			t.Fatalf("fired %d, summary OK: %v", f.Fired(), sum.OK())
		}
		for _, m := range sum.Mailboxes {
			if m.Seen == 0 {
				continue // nothing to append, nothing to fail
			}
			if m.Error == "" || m.Class != "transient" {
				t.Errorf("mailbox %s: error %q class %q, want the transient error that exhausted the retries", m.Source, m.Error, m.Class)
			}
		}
		if err != nil && providers.ClassOf(err) != providers.ClassTransient {
			t.Errorf("err %v", err)
		}
		e.checkSubset(t)
		e.checkLedger(t, false)
	})
}

// quietWait is how long the copier waits for the destination to stop
// growing before it settles pending records (migrate.Options.QuietWait's
// default).
const quietWait = 2 * time.Second

// TestLateAppendIsReconciled: one connection to the destination stalls
// after receiving whole APPENDs, the watchdog closes it, the retry waits
// for the destination to stop growing, finds nothing, and re-appends the
// messages; then the stalled server process wakes up and stores the
// originals too. The attempt noted the window of unanswered APPENDs, so
// the next run finds the extra copies there and removes them: the
// destination ends exact. (A stall shorter than the idle timeout plus the
// quiet wait is settled in the run itself.)
func TestLateAppendIsReconciled(t *testing.T) {
	e := newFaultEnvWith(t, "destination", pathAppend, map[string][]int{"INBOX": repeatSizes([]int{1000}, 10)})
	ctx := budget(t, time.Minute)
	// The 3rd APPEND (a small one, sent whole without waiting for "+") and
	// those pipelined behind it are held, then delivered.
	f := e.proxy.StallCommand(imaptest.Nth(3), "APPEND", faultTimeout+quietWait+3*time.Second)
	opts := e.options()
	opts.MailboxWorkers = 1
	sum, err := e.migrate(ctx, t, opts)
	if err != nil || !sum.OK() || f.Fired() != 1 {
		t.Fatalf("migrate: %v, fired %d\nsummary %+v", err, f.Fired(), sum)
	}
	// Give the held APPENDs time to land.
	waitUntil := time.Now().Add(10 * time.Second)
	for time.Now().Before(waitUntil) && e.proxy.Conns() > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	extra := len(e.dst.Messages(t, faultUser, "INBOX")) - len(e.src.Messages(t, faultUser, "INBOX"))
	again, err := e.migrate(ctx, t, opts)
	if err != nil || !again.OK() {
		t.Fatalf("re-run: %v\nsummary %+v", err, again)
	}
	removed := 0
	for _, m := range again.Mailboxes {
		removed += m.LateCopies
	}
	if removed != extra {
		t.Errorf("re-run removed %d late copies, want %d", removed, extra)
	}
	e.checkExact(t)
}

// TestRetriesCountOnlyAttemptsWithoutProgress: --retries bounds the
// failures in a row that settled nothing, so a long mailbox on a link that
// drops now and then gets across as long as every attempt copies
// something.
func TestRetriesCountOnlyAttemptsWithoutProgress(t *testing.T) {
	e := newFaultEnv(t, "destination", pathAppend)
	ctx := budget(t, 2*time.Minute)
	var mu sync.Mutex
	appended := 0
	e.onEvent = func(ev migrate.Event) {
		if ev.Kind != migrate.EventAppended {
			return
		}
		mu.Lock()
		appended++
		drop := appended%6 == 0
		mu.Unlock()
		if drop {
			go e.proxy.DropAll()
		}
	}
	opts := e.options()
	opts.Retries = 3
	opts.MailboxWorkers = 1
	sum, err := e.migrate(ctx, t, opts)
	if err != nil || !sum.OK() {
		t.Errorf("migrate: %v\nsummary %+v", err, sum)
	}
	e.checkExact(t)
}

// TestNewCountsEveryAttempt: a summary's New (and Bytes) count the copies
// of every attempt of the run, not only the last one.
func TestNewCountsEveryAttempt(t *testing.T) {
	e := newFaultEnv(t, "destination", pathAppend)
	ctx := budget(t, 2*time.Minute)
	e.proxy.DropAppendLiteral(imaptest.Nth(20), 100)
	sum, err := e.migrate(ctx, t, e.options())
	if err != nil || !sum.OK() {
		t.Fatalf("migrate: %v\nsummary %+v", err, sum)
	}
	if tot := sum.Totals(); tot.New != tot.Seen {
		t.Errorf("totals %+v: every message was copied by this run, New says %d", tot, tot.New)
	}
}
