package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/mailferry/mailferry/migrate"
)

// crashEnv names a test hook: MAILFERRY_TEST_CRASH_AT=KIND:N makes the
// process SIGKILL itself right after the Nth event of that kind (appended,
// committed, mailbox_start, mailbox_done). The crash tests use it to stop a
// real process at exact points; it is a real kill -9, not a clean exit.
const crashEnv = "MAILFERRY_TEST_CRASH_AT"

// eventHandler returns the progress handler for the copier.
func (a *app) eventHandler() (func(migrate.Event), error) {
	var crashKind migrate.EventKind
	var crashAt int
	if spec := a.getenv(crashEnv); spec != "" {
		kind, n, ok := strings.Cut(spec, ":")
		var err error
		if crashAt, err = strconv.Atoi(n); !ok || err != nil || crashAt <= 0 {
			return nil, usagef("%s=%q: want KIND:N", crashEnv, spec)
		}
		crashKind = migrate.EventKind(kind)
	}
	var mu sync.Mutex
	counts := map[migrate.EventKind]int{}
	return func(e migrate.Event) {
		if e.Kind == migrate.EventMailboxDone && e.Summary != nil {
			s := e.Summary
			a.log.Info("mailbox done", "account", e.Account, "mailbox", e.Mailbox, "seen", s.Seen,
				"copied", s.Copied, "new", s.New, "duplicate", s.Duplicate, "failed", s.Failed, "pending", s.Pending)
		}
		if crashKind == "" {
			return
		}
		mu.Lock()
		counts[e.Kind]++
		hit := e.Kind == crashKind && counts[e.Kind] == crashAt
		mu.Unlock()
		if hit {
			fmt.Fprintf(os.Stderr, "mailferry: %s: killing myself at %s #%d\n", crashEnv, e.Kind, crashAt)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}, nil
}
