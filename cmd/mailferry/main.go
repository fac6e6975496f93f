// Command mailferry moves mailboxes between mail servers, resumably and
// reversibly. See README.md and docs/usage.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
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
	log            *slog.Logger
	interrupted    func() bool
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
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, interrupted: interrupted.Load}
	os.Exit(a.run(ctx, os.Args[1:]))
}

// run executes one command line and maps its outcome to an exit code.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.newRootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	code := exitCode(err, a.interrupted != nil && a.interrupted() || errors.Is(err, context.Canceled))
	if err != nil {
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
	var logLevel string
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
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level: %v", err)
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			return prof.start()
		},
		PersistentPostRunE: func(cmd *cobra.Command, args []string) error {
			return prof.stop()
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log detail on stderr: debug, info, warn, error")
	prof.addFlags(root.PersistentFlags())
	root.AddCommand(a.newMigrateCommand(), a.newStatusCommand(), a.newVerifyCommand(), a.newCutoverCommand(), a.newUndoCommand(), a.newReverseCommand(), a.newReportCommand(), a.newDemoCommand())
	return root
}

// openCheckpoint opens the checkpoint for writing, turning the usual
// problems into messages an operator can act on.
func openCheckpoint(path string) (*checkpoint.Store, error) {
	if path == "" {
		return nil, usagef("--checkpoint FILE is required: it records what was copied, so the run can resume and be undone")
	}
	s, err := checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		return nil, err
	}
	return s, nil
}
