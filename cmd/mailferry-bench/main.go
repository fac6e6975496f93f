// Command mailferry-bench times mailferry against mbsync and, when
// installed, imapsync, in one run on the same machine and data: it starts
// Dovecot instances on loopback, seeds them, runs every tool onto fresh
// destinations, checks each result with doveadm, and prints a markdown
// table (or writes it into docs/benchmarks.md between its peers markers).
//
//	go run ./cmd/mailferry-bench --write docs/benchmarks.md
//
// It needs Debian's dovecot-imapd, isync (mbsync) and time (/usr/bin/time,
// for each child's peak RSS); imapsync is run from its script when it is
// on PATH or given with --imapsync. It is for comparison only: no peer is
// shipped with mailferry.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func main() {
	var cfg config
	var write string
	flag.IntVar(&cfg.reps, "reps", 3, "runs of each case; the table gives the median")
	flag.StringVar(&cfg.mailferry, "mailferry", "", "the mailferry binary (default: build ./cmd/mailferry)")
	flag.StringVar(&cfg.imapsync, "imapsync", "", "imapsync's script (default: imapsync on PATH, if any)")
	flag.StringVar(&cfg.profile, "profile", "", "write mailferry's CPU and block profiles of the (f) and (g) runs into this directory")
	flag.StringVar(&write, "write", "", "replace the peers section of this markdown file with the table")
	flag.StringVar(&cfg.cases, "cases", "", "the cases to run, as letters (\"fg\"); default all, see peers.go")
	flag.Parse()
	os.Exit(run(cfg, write, os.Stdout, os.Stderr))
}

func run(cfg config, write string, stdout, stderr io.Writer) int {
	for _, need := range []string{"dovecot", "doveadm", "mbsync", "/usr/bin/time"} {
		if _, err := exec.LookPath(need); err != nil {
			fmt.Fprintf(stderr, "mailferry-bench: %s not found (Debian: apt-get install dovecot-imapd isync time)\n", need)
			return 2
		}
	}
	if cfg.imapsync == "" {
		cfg.imapsync, _ = exec.LookPath("imapsync")
	}
	r := &runner{log: stderr}
	defer r.finish()
	table, err := r.do(func() string {
		if cfg.mailferry == "" {
			cfg.mailferry = build(r)
		}
		return runPeers(r, cfg)
	})
	if err != nil {
		fmt.Fprintf(stderr, "mailferry-bench: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, table)
	if write != "" {
		if err := replaceSection(write, "peers", table); err != nil {
			fmt.Fprintf(stderr, "mailferry-bench: %v\n", err)
			return 1
		}
	}
	return 0
}

// build compiles mailferry from this module into a temporary directory.
func build(r *runner) string {
	out := filepath.Join(r.TempDir(), "mailferry")
	cmd := exec.Command("go", "build", "-o", out, "github.com/mailferry/mailferry/cmd/mailferry")
	if b, err := cmd.CombinedOutput(); err != nil {
		r.Fatalf("build mailferry: %v\n%s", err, b)
	}
	return out
}

// runner is the testing.TB that the Dovecot helpers (imaptest) take, for a
// program: what they log goes to stderr, and a fatal error ends the run
// after the cleanups, which stop the Dovecots. Only the methods below are
// called; the embedded TB is nil.
type runner struct {
	testing.TB
	log io.Writer

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// errFatal carries a fatal error out of the harness to do.
type errFatal struct{ msg string }

func (r *runner) do(fn func() string) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(errFatal)
			if !ok {
				panic(p)
			}
			err = errors.New(f.msg)
		}
	}()
	return fn(), nil
}

func (r *runner) finish() {
	r.mu.Lock()
	fns := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func (r *runner) Helper()      {}
func (r *runner) Name() string { return "mailferry-bench" }
func (r *runner) Failed() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }
func (r *runner) Log(a ...any) { fmt.Fprintln(r.log, a...) }
func (r *runner) Logf(format string, a ...any) {
	fmt.Fprintf(r.log, strings.TrimSuffix(format, "\n")+"\n", a...)
}
func (r *runner) Error(a ...any) { r.Errorf("%s", fmt.Sprint(a...)) }
func (r *runner) Errorf(format string, a ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.Logf(format, a...)
}
func (r *runner) Fatal(a ...any)                 { r.Fatalf("%s", fmt.Sprint(a...)) }
func (r *runner) Fatalf(format string, a ...any) { panic(errFatal{fmt.Sprintf(format, a...)}) }
func (r *runner) Skip(a ...any)                  { r.Fatal(a...) }
func (r *runner) Skipf(format string, a ...any)  { r.Fatalf(format, a...) }
func (r *runner) Cleanup(fn func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, fn)
	r.mu.Unlock()
}

func (r *runner) TempDir() string {
	d, err := os.MkdirTemp("", "mailferry-bench-")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(d) })
	return d
}
