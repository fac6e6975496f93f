package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// A writer holds FILE.lock, a file beside the checkpoint, locked with
// flock(2) and holding its pid: two runs started at the same instant are
// decided there, before either looks at the checkpoint, and the one that
// loses reads who won. bbolt's own lock on the checkpoint stays, and keeps
// out a writer of an older mailferry, which does not lock FILE.lock.

func lockHolderPath(path string) string { return path + ".lock" }

// fileLock is a writer's hold on FILE.lock.
type fileLock struct {
	f    *os.File
	path string
	prev []byte // what the file said before: an older mailferry's pid
}

// acquire takes FILE.lock, waiting at most timeout.
func acquire(path string, timeout time.Duration) (*fileLock, error) {
	lp := lockHolderPath(path)
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		err = tryLock(f, true)
		if err == nil && sameFile(f, lp) {
			l := &fileLock{f: f, path: lp}
			l.prev, _ = os.ReadFile(lp)
			host, _ := os.Hostname()
			info := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
			if f.Truncate(0) == nil {
				_, _ = f.WriteAt([]byte(info), 0) // informative only: a full disk may refuse it
			}
			return l, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, errWouldBlock) {
			return nil, err
		}
		// Held (or removed by its holder as we locked it: try again).
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w%s", ErrLocked, waitHolder(path))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitHolder reads who holds the lock, allowing a holder that has just
// taken it a moment to write its pid.
func waitHolder(path string) string {
	for range 50 {
		if h := lockHolder(path); h != "" {
			return h
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ""
}

// release removes FILE.lock, then unlocks it: a process that locks the
// removed file meanwhile sees it gone and locks the next one.
func (l *fileLock) release() {
	if l == nil {
		return
	}
	if len(l.prev) > 0 {
		os.WriteFile(l.path, l.prev, 0o600) // the older mailferry's: leave it as found
	} else {
		os.Remove(l.path)
	}
	l.f.Close()
}

// holderOf says who holds the checkpoint while this process holds
// FILE.lock but not bbolt's lock: an older mailferry, whose pid the file
// held before.
func (l *fileLock) holderOf() string {
	if l == nil {
		return ""
	}
	if len(bytes.TrimSpace(l.prev)) == 0 {
		return " (a process that does not use " + l.path + ": an older mailferry?)"
	}
	return " (" + strings.TrimSpace(string(l.prev)) + ")"
}

func lockHolder(path string) string {
	b, err := os.ReadFile(lockHolderPath(path))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// lockShared takes a shared lock on the checkpoint itself, as bbolt's
// read-only open does, so that no writer changes it while it is read.
func lockShared(f *os.File, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := tryLock(f, false)
		if !errors.Is(err, errWouldBlock) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w%s", ErrLocked, waitHolder(path))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
