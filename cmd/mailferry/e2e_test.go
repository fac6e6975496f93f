package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// binary is the mailferry binary the end-to-end tests run, built once.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailferry-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mailferry")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is the outcome of one run of the binary.
type result struct {
	code           int
	killed         bool
	stdout, stderr string
	wall           time.Duration
}

// childTimeout bounds one run of the binary in tests: a hang fails the
// test with the child's goroutine dump instead of stalling the suite.
const childTimeout = 5 * time.Minute

func runBinary(t testing.TB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.killed = ws.Signal() == syscall.SIGKILL
		}
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("mailferry %s hung for %v; its goroutines:\n%s", args[0], childTimeout, r.stderr)
	}
	return r
}

// pair is a source and a destination Dovecot with one account each.
type pair struct {
	src, dst *imaptest.Dovecot
	ckpt     string
	env      []string
	args     []string
}

const (
	srcPass = "Src-S3cret-pw"
	dstPass = "Dst-S3cret-pw"
)

func newPair(t testing.TB, dstOpts imaptest.DovecotOptions) *pair {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	return newPairWith(t, src, dstOpts)
}

func newPairWith(t testing.TB, src *imaptest.Dovecot, dstOpts imaptest.DovecotOptions) *pair {
	if dstOpts.Users == nil {
		dstOpts.Users = map[string]string{"alice": dstPass}
	}
	dst := imaptest.StartDovecot(t, dstOpts)
	p := &pair{src: src, dst: dst, ckpt: filepath.Join(t.TempDir(), "run.db"),
		env: []string{"MAILFERRY_FROM_PASSWORD=" + srcPass, "MAILFERRY_TO_PASSWORD=" + dstPass}}
	p.args = []string{"migrate", "--from", "imap+plain://alice@" + src.Addr(), "--to", "imap+plain://alice@" + dst.Addr(),
		"--checkpoint", p.ckpt}
	return p
}

func (p *pair) migrate(t testing.TB, extraEnv []string, extraArgs ...string) result {
	t.Helper()
	return runBinary(t, append(slices.Clone(p.env), extraEnv...), append(slices.Clone(p.args), extraArgs...)...)
}

// genMessage makes a message of about size bytes; every n-th has no
// Message-ID.
func genMessage(rng *rand.Rand, mailbox string, i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender %d <s%d@example.org>\r\nTo: alice@example.org\r\nSubject: %s message %d\r\n", i%37, i%37, mailbox, i)
	fmt.Fprintf(&b, "Date: Wed, 3 Jan 2024 10:%02d:%02d +0100\r\n", (i/60)%60, i%60)
	if i%50 != 7 {
		fmt.Fprintf(&b, "Message-ID: <%s.%d@example.org>\r\n", strings.ReplaceAll(mailbox, "/", "."), i)
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	imaptest.WriteText(&b, rng, size, 70)
	return b.Bytes()
}

// seed fills a mailbox with n messages of log-uniform sizes in [minSize,
// maxSize], with flags and keywords, plus one identical copy. It returns
// the messages and their total size.
func seed(t testing.TB, d *imaptest.Dovecot, mailbox string, n, minSize, maxSize int, seedVal uint64) ([]imaptest.SeedMessage, int64) {
	rng := rand.New(rand.NewPCG(seedVal, 7))
	var msgs []imaptest.SeedMessage
	var total int64
	date := time.Date(2024, 1, 3, 9, 0, 0, 0, time.UTC)
	for i := range n {
		lo, hi := float64(minSize), float64(maxSize)
		size := int(lo * math.Pow(hi/lo, rng.Float64()))
		raw := genMessage(rng, mailbox, i, size)
		var flags []string
		if i%3 != 0 {
			flags = append(flags, `\Seen`)
		}
		if i%17 == 0 {
			flags = append(flags, "$Forwarded", "Project-X")
		}
		msgs = append(msgs, imaptest.SeedMessage{Raw: raw, Flags: flags, InternalDate: date.Add(time.Duration(i) * time.Minute)})
		total += int64(len(raw))
	}
	if n > 2 {
		msgs = append(msgs, msgs[1]) // identical copy: both must arrive
		total += int64(len(msgs[1].Raw))
	}
	d.Seed(t, "alice", mailbox, msgs)
	return msgs, total
}

// checkSame compares every mapped mailbox of the pair with doveadm: the
// destination must hold exactly the source's messages (bytes, flags,
// dates), no more, no fewer.
func checkSame(t testing.TB, p *pair, mailboxes ...string) {
	t.Helper()
	for _, mb := range mailboxes {
		want := lineSet(p.src.Messages(t, "alice", mb))
		got := lineSet(p.dst.Messages(t, "alice", mb))
		if !slices.Equal(got, want) {
			missing, extra := diff(want, got)
			t.Errorf("mailbox %s: destination has %d messages, source %d; %d missing, %d extra (duplicates or strangers)",
				mb, len(got), len(want), len(missing), len(extra))
		}
	}
}

func lineSet(msgs []imaptest.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s %s %d %v %d", m.SHA256, m.ExactSHA256, m.Size, m.Flags, m.InternalDate.Unix()))
	}
	sort.Strings(out)
	return out
}

// diff returns the lines of a not in b and of b not in a, as multisets.
func diff(a, b []string) (onlyA, onlyB []string) {
	count := map[string]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
	}
	for x, n := range count {
		for ; n > 0; n-- {
			onlyA = append(onlyA, x)
		}
		for ; n < 0; n++ {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

func readReport(t testing.TB, path string) report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestKillNineAndResume kills the migrate process with SIGKILL at chosen
// points (through the MAILFERRY_TEST_CRASH_AT hook, which makes the process
// kill itself: a real kill -9) and resumes with the same command.
func TestKillNineAndResume(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	inbox, _ := seed(t, src, "INBOX", 300, 1<<10, 40<<10, 1)
	seed(t, src, "Archive/2023", 120, 1<<10, 20<<10, 2)
	seed(t, src, "Work", 40, 1<<10, 8<<10, 3)
	mailboxes := []string{"INBOX", "Archive/2023", "Work"}
	points := []struct{ name, at string }{
		{"before-first-append", "mailbox_start:1"},
		{"mid-mailbox", "appended:150"},
		{"right-after-checkpoint-commit", "committed:4"},
		{"between-mailboxes", "mailbox_done:1"},
	}
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			p := newPairWith(t, src, imaptest.DovecotOptions{})
			// A copy of a source message that was already there must stand
			// for it, not be doubled.
			p.dst.Seed(t, "alice", "INBOX", inbox[5:6])
			r := p.migrate(t, []string{crashEnv + "=" + pt.at}, "--mailbox-workers", "1", "--commit-every", "32")
			if !r.killed {
				t.Fatalf("run was not killed at %s: exit %d\n%s", pt.at, r.code, r.stderr)
			}
			report := filepath.Join(t.TempDir(), "report.json")
			r = p.migrate(t, nil, "--report", report)
			if r.code != 0 {
				t.Fatalf("resume exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			checkSame(t, p, mailboxes...)
			for _, s := range readReport(t, report).Accounts {
				for _, m := range s.Mailboxes {
					if m.Copied+m.Duplicate+m.Failed+m.Pending != m.Seen || m.Pending != 0 || m.Failed != 0 {
						t.Errorf("summary %+v does not add up to a finished mailbox", m)
					}
				}
			}
		})
	}
	t.Run("three-random-kills", func(t *testing.T) {
		p := newPairWith(t, src, imaptest.DovecotOptions{})
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for i := range 3 {
			at := fmt.Sprintf("appended:%d", 1+rng.IntN(120))
			r := p.migrate(t, []string{crashEnv + "=" + at}, "--commit-every", strconv.Itoa(8+rng.IntN(64)))
			t.Logf("kill %d at %s: killed=%v exit=%d", i, at, r.killed, r.code)
		}
		r := p.migrate(t, nil)
		if r.code != 0 {
			t.Fatalf("resume exited %d:\n%s", r.code, r.stderr)
		}
		checkSame(t, p, mailboxes...)
	})
}

// TestFiveThousandMessages migrates 5,000 messages between real Dovecots,
// checks them byte for byte with doveadm, and re-runs: the re-run must copy
// nothing. Its duration is logged, never asserted (see docs/benchmarks.md).
func TestFiveThousandMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	p := newPair(t, imaptest.DovecotOptions{})
	_, bytes := seed(t, p.src, "INBOX", 4999, 2<<10, 32<<10, 42)
	report := filepath.Join(t.TempDir(), "report.json")
	r := p.migrate(t, nil, "--report", report)
	if r.code != 0 {
		t.Fatalf("migrate exited %d:\n%s", r.code, r.stderr)
	}
	t.Logf("5,000 messages, %.1f MB: %v, %.0f msg/s, %.1f MB/s, peak RSS %.1f MiB",
		float64(bytes)/1e6, r.wall, 5000/r.wall.Seconds(), float64(bytes)/1e6/r.wall.Seconds(), float64(readReport(t, report).PeakRSS)/(1<<20))
	checkSame(t, p, "INBOX")
	// Any APPEND the server accepts takes a UID: UIDNEXT must not move.
	uidNext := func() string {
		return p.dst.Doveadm(t, "-f", "tab", "mailbox", "status", "-u", "alice", "uidnext", "INBOX")
	}
	before := uidNext()
	again := p.migrate(t, nil, "--report", report)
	if again.code != 0 {
		t.Fatalf("re-run exited %d:\n%s", again.code, again.stderr)
	}
	t.Logf("re-run with nothing new: %v", again.wall)
	if after := uidNext(); after != before {
		t.Errorf("the re-run appended: destination UIDNEXT %q, then %q", before, after)
	}
	sums := readReport(t, report).Accounts
	if tot := sums[0].Totals(); tot.New != 0 || tot.Copied != 5000 || tot.Seen != 5000 {
		t.Errorf("re-run totals %+v, want 5000 seen and copied, 0 new", tot)
	}
	checkSame(t, p, "INBOX")
}

func TestExitCodesAndSecrets(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 5, 500, 1000, 9)

	t.Run("wrong password fails the account, exit 1, password not shown", func(t *testing.T) {
		r := runBinary(t, []string{"MAILFERRY_FROM_PASSWORD=Wr0ng-Secret-xyz", "MAILFERRY_TO_PASSWORD=" + dstPass}, p.args...)
		if r.code != exitPartial {
			t.Errorf("exit %d, want %d\n%s", r.code, exitPartial, r.stderr)
		}
		for _, out := range []string{r.stdout, r.stderr} {
			if strings.Contains(out, "Wr0ng-Secret-xyz") || strings.Contains(out, dstPass) {
				t.Errorf("output contains a password:\n%s", out)
			}
		}
		if !strings.Contains(r.stdout+r.stderr, "alice") {
			t.Errorf("output does not name the user:\n%s%s", r.stdout, r.stderr)
		}
	})
	t.Run("success exit 0, checkpoint private and free of secrets", func(t *testing.T) {
		r := p.migrate(t, nil)
		if r.code != exitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		fi, err := os.Stat(p.ckpt)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("checkpoint mode %v, want 0600", fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p.ckpt)
		for _, pw := range []string{srcPass, dstPass} {
			if bytes.Contains(b, []byte(pw)) || strings.Contains(r.stdout+r.stderr, pw) {
				t.Errorf("password %q found in the checkpoint or output", pw)
			}
		}
	})
	t.Run("missing password is a usage error", func(t *testing.T) {
		r := runBinary(t, []string{"MAILFERRY_FROM_PASSWORD=", "MAILFERRY_TO_PASSWORD="}, p.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "MAILFERRY_FROM_PASSWORD") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("password in the URL is refused", func(t *testing.T) {
		r := runBinary(t, p.env, "migrate", "--from", "imap+plain://alice:hunter2@"+p.src.Addr(), "--to", "imap+plain://alice@"+p.dst.Addr(), "--checkpoint", p.ckpt)
		if r.code != exitUsage || strings.Contains(r.stderr, "hunter2") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("plaintext to a remote host is refused", func(t *testing.T) {
		r := runBinary(t, p.env, "migrate", "--from", "imap+plain://alice@mail.example.com:143", "--to", "imap+plain://alice@"+p.dst.Addr(), "--checkpoint", p.ckpt)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--insecure-plaintext") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("other endpoints on the same checkpoint are refused", func(t *testing.T) {
		other := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": dstPass}})
		r := runBinary(t, p.env, "migrate", "--from", "imap+plain://alice@"+p.src.Addr(), "--to", "imap+plain://alice@"+other.Addr(), "--checkpoint", p.ckpt)
		if r.code != exitUsage || !strings.Contains(r.stderr, "endpoints differ") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("a locked checkpoint is refused, not waited on", func(t *testing.T) {
		held, err := checkpoint.Open(p.ckpt, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		r := p.migrate(t, nil)
		if r.code != exitUsage || !strings.Contains(r.stderr, "in use by another mailferry process") || !strings.Contains(r.stderr, "pid") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("a foreign file is refused and left untouched", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "notes.txt")
		content := []byte("this is not a checkpoint\n")
		os.WriteFile(path, content, 0o644)
		r := runBinary(t, p.env, append(slices.Clone(p.args[:len(p.args)-1]), path)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "not a mailferry checkpoint") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, content) {
			t.Errorf("foreign file was modified")
		}
	})
}

// TestDryRunInterruptAndLiveStatus: a dry run writes nothing anywhere;
// status shows a running migration without waiting for it; Ctrl-C ends the
// run with exit code 130 and a consistent checkpoint that resumes.
func TestDryRunInterruptAndLiveStatus(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 2999, 4<<10, 16<<10, 5)
	report := filepath.Join(t.TempDir(), "dry.json")

	r := p.migrate(t, nil, "--dry-run", "--report", report)
	if r.code != 0 {
		t.Fatalf("dry run exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(p.ckpt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created the checkpoint: %v", err)
	}
	if n := len(p.dst.Messages(t, "alice", "INBOX")); n != 0 {
		t.Errorf("dry run put %d messages on the destination", n)
	}
	if tot := readReport(t, report).Accounts[0].Totals(); tot.New != 3000 || tot.Copied != 0 {
		t.Errorf("dry run counts %+v, want 3000 to copy", tot)
	}

	// Through a slow link, so that the run is still going when status and
	// SIGINT come.
	slow := imaptest.StartFaultProxy(t, p.dst.Addr())
	slow.SetBandwidth(2 << 20)
	args := slices.Clone(p.args)
	args[slices.Index(args, "--to")+1] = "imap+plain://alice@" + slow.Addr()
	cmd := exec.Command(binary, append(args, "--output", "text", "--mailbox-workers", "1")...)
	cmd.Env = append(os.Environ(), p.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v, err := readLiveStatus(p.ckpt); err == nil && v.Accounts != nil && anyAppended(v) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no live status with progress after 30s:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := runBinary(t, nil, "status", "--checkpoint", p.ckpt)
	if st.code != 0 || !strings.Contains(st.stdout, "a migration is running") || !strings.Contains(st.stdout, "alice") {
		t.Errorf("status during the run: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Errorf("after SIGINT: %v, want exit %d\n%s", err, exitInterrupted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "resume") {
		t.Errorf("interrupted run does not say how to resume:\n%s", stderr.String())
	}
	if _, err := os.Stat(liveStatusPath(p.ckpt)); err == nil {
		t.Errorf("live status file left behind after the run ended")
	}
	landed := len(p.dst.Messages(t, "alice", "INBOX"))
	if landed == 0 || landed >= 3000 {
		t.Errorf("%d messages landed before the interrupt; the test needs a run stopped midway", landed)
	}
	slow.SetBandwidth(0)
	if r := runBinary(t, p.env, args...); r.code != 0 {
		t.Fatalf("resume exit %d\n%s", r.code, r.stderr)
	}
	checkSame(t, p, "INBOX")
}

func anyAppended(v liveView) bool {
	for _, a := range v.Accounts {
		if a.Appended > 0 {
			return true
		}
	}
	return false
}
