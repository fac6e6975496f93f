// Command mailferry moves mailboxes between mail servers, resumably and
// reversibly. See README.md and docs/usage.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes, a contract with scripts (docs/usage.md).
const (
	exitOK          = 0
	exitPartial     = 1 // some message or account failed; the others finished
	exitUsage       = 2 // bad flags, unreadable input, checkpoint locked or unwritable
	exitInterrupted = 130
)

// partialError reports a run that finished with some failures.
type partialError struct{ msg string }

func (e *partialError) Error() string { return e.msg }

// usageError reports bad flags or arguments.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

// app carries what every command needs; there is no global state.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// setMemoryLimit is debug.SetMemoryLimit in the binary (memlimit.go).
	setMemoryLimit func(int64) int64
	log            *slog.Logger
	logs           *accountLogs // --log-dir, nil without
	interrupted    func() bool
	// args is the command line as reports show it (see shownArgs).
	args []string
	// jsonErrors: the command's output is JSON, so its error is an
	// event on stdout as well.
	jsonErrors bool
	// afterRun runs once the command has returned and closed its files,
	// before the process exits (the metrics listener's linger).
	afterRun []func()
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var interrupted atomic.Bool // set by the signal goroutine, read by run
	go func() {
		<-sigs
		interrupted.Store(true)
		fmt.Fprintln(os.Stderr, "mailferry: interrupted: finishing in-flight messages and committing the checkpoint; press Ctrl-C again to abort")
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "mailferry: aborted; the same command resumes from the checkpoint")
		os.Exit(exitInterrupted)
	}()
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, interrupted: interrupted.Load, setMemoryLimit: debug.SetMemoryLimit}
	os.Exit(a.run(ctx, os.Args[1:]))
}

// run executes one command line and maps its outcome to an exit code.
func (a *app) run(ctx context.Context, args []string) int {
	if _, ok := a.stdout.(*cleanWriter); !ok {
		a.stdout = &cleanWriter{w: a.stdout, cols: terminalColumns(a.stdout, a.getenv)}
		a.stderr = &cleanWriter{w: a.stderr, cols: terminalColumns(a.stderr, a.getenv)}
	}
	a.args = shownArgs(args)
	root := a.newRootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	code := exitCode(err, a.interrupted != nil && a.interrupted() || errors.Is(err, context.Canceled))
	if err != nil {
		if a.jsonErrors {
			// A refusal is an event like any other for a program reading
			// the JSON lines.
			json.NewEncoder(a.stdout).Encode(struct {
				Time  time.Time `json:"time"`
				Event string    `json:"event"`
				Exit  int       `json:"exit_code"`
				Error string    `json:"error"`
			}{time.Now().UTC(), "error", code, err.Error()})
		}
		fmt.Fprintf(a.stderr, "mailferry: %v\n", err)
		if code == exitInterrupted {
			fmt.Fprintln(a.stderr, "mailferry: the checkpoint is consistent; run the same command again to resume")
		}
	}
	for _, f := range a.afterRun {
		f()
	}
	a.afterRun = nil
	return code
}

func exitCode(err error, interrupted bool) int {
	var pe *partialError
	switch {
	case err == nil:
		return exitOK
	case interrupted:
		return exitInterrupted
	case errors.As(err, &pe):
		return exitPartial
	}
	return exitUsage
}

func (a *app) newRootCommand() *cobra.Command {
	var logLevel, configFile, logDir string
	var prof profiles
	root := &cobra.Command{
		Use:   "mailferry",
		Short: "Move mailboxes between mail servers, resumably and reversibly",
		Long: `mailferry copies mailboxes between IMAP servers byte for byte, with flags,
keywords and dates, deduplicated, resumable after any crash, and recorded
in a checkpoint so that every run can be verified and undone.

Exit status: 0 all account pairs succeeded; 1 some message or account
failed (the others finished); 2 usage or run error (bad flags, unreadable
input, checkpoint locked or unwritable); 130 interrupted (the checkpoint is
consistent and the same command resumes).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if configFile != "" {
				if err := a.applyConfig(cmd, configFile); err != nil {
					return err
				}
			}
			a.jsonErrors = wantsJSON(cmd, raw(a.stdout))
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level: %v", err)
			}
			if logDir != "" {
				var err error
				if a.logs, err = newAccountLogs(logDir, lvl); err != nil {
					return err
				}
			}
			a.log = newLogger(a.stderr, lvl, a.logs)
			for old, now := range renamedFlags {
				if f := cmd.Flags().Lookup(old); f != nil && f.Changed {
					a.log.Warn(fmt.Sprintf("--%s is now %s; the old name goes in the next release", old, now))
				}
			}
			return prof.start()
		},
		PersistentPostRunE: func(cmd *cobra.Command, args []string) error {
			if a.logs != nil {
				if err := a.logs.close(); err != nil {
					return err
				}
			}
			return prof.stop()
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log detail on stderr: debug, info, warn, error")
	root.PersistentFlags().StringVar(&configFile, "config", "", "YAML file of flags a wave repeats (flag: value; a command's name: its own settings); flags and the environment override it; passwords only as env:NAME or file:PATH (see docs/usage.md)")
	root.PersistentFlags().StringVar(&logDir, "log-dir", "", "also write each account's log lines and progress to DIR/<source user>.log")
	prof.addFlags(root.PersistentFlags())
	root.AddCommand(a.newMigrateCommand(), a.newPreflightCommand(), a.newStatusCommand(), a.newVerifyCommand(), a.newCutoverCommand(), a.newUndoCommand(), a.newReverseCommand(), a.newReportCommand(), a.newDemoCommand())
	root.AddCommand(a.newCheckpointCommand())
	return root
}

// shownArgs is the command line for reports: never a secret, as passwords
// and tokens are never flag values, but a token command may carry one
// (a client secret), so its text is left out.
func shownArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		name, _, hasValue := strings.Cut(a, "=")
		if !strings.HasSuffix(name, "-oauth-token-cmd") {
			continue
		}
		if hasValue {
			out[i] = name + "=(not shown)"
		} else if i+1 < len(out) {
			out[i+1] = "(not shown)"
		}
	}
	return out
}

// wantsJSON reports whether cmd writes JSON lines on stdout: --json,
// --output json, or --output auto when stdout is not a terminal.
func wantsJSON(cmd *cobra.Command, stdout io.Writer) bool {
	out, j := cmd.Flags().Lookup("output"), cmd.Flags().Lookup("json")
	if out == nil || j == nil {
		return false
	}
	switch {
	case j.Value.String() == "true", out.Value.String() == "json":
		return true
	case out.Value.String() == "auto":
		return !isTerminal(stdout)
	}
	return false
}

// renamedFlags are the old names still taken, hidden, for one release,
// with what replaces them. (pflag's own deprecation notice would be lost:
// cobra keeps flag output for its errors.)
var renamedFlags = map[string]string{
	"batch-size":     "--commit-every (beside --batch, the CSV file, it said the wrong thing)",
	"include-folder": "--include 're:REGEX' (--include takes a glob, or a regular expression after re:)",
	"exclude-folder": "--exclude 're:REGEX' (--exclude takes a glob, or a regular expression after re:)",
}
