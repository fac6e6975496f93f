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
// committed, mailbox_start, mailbox_done, account_done). The crash tests use
// it to stop a real process at exact points; it is a real kill -9, not a
// clean exit.
const crashEnv = "MAILFERRY_TEST_CRASH_AT"

// crashHook returns the hook's event handler, or nil when it is not set.
func (a *app) crashHook() (func(migrate.Event), error) {
	spec := a.getenv(crashEnv)
	if spec == "" {
		return nil, nil
	}
	kind, n, ok := strings.Cut(spec, ":")
	at, err := strconv.Atoi(n)
	if !ok || err != nil || at <= 0 {
		return nil, usagef("%s=%q: want KIND:N", crashEnv, spec)
	}
	var mu sync.Mutex
	count := 0
	return func(e migrate.Event) {
		if e.Kind != migrate.EventKind(kind) {
			return
		}
		mu.Lock()
		count++
		hit := count == at
		mu.Unlock()
		if hit {
			fmt.Fprintf(os.Stderr, "mailferry: %s: killing myself at %s #%d\n", crashEnv, kind, at)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}, nil
}
