package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Sentinel errors of the Store contract.
var (
	// ErrMailboxNotFound: the named mailbox does not exist.
	ErrMailboxNotFound = errors.New("mailbox not found")
	// ErrMailboxExists: CreateMailbox found the mailbox already there.
	ErrMailboxExists = errors.New("mailbox already exists")
	// ErrUIDValidityChanged: the mailbox was recreated or renumbered since
	// the caller last saw it, so its old UIDs mean nothing.
	ErrUIDValidityChanged = errors.New("UIDVALIDITY changed")
	// ErrUnreachable: no connection could be made at all (refused, no
	// route, name not found, connect timed out). It stays transient, as a
	// restarting server mid-run is, but it is not load: a login is not
	// retried with backoff for it.
	ErrUnreachable = errors.New("server unreachable")
	// ErrLoginRefused: the server refused the credentials (IMAP's NO to
	// LOGIN or AUTHENTICATE), as against failing to take them at all. The
	// CLI tells a wrong password from a broken server by it without
	// knowing the protocol.
	ErrLoginRefused = errors.New("login refused")
)

// Refused marks err, the server's answer to a login, as ErrLoginRefused;
// its text is unchanged.
func Refused(err error) error {
	if err == nil {
		return nil
	}
	return refusedError{err}
}

type refusedError struct{ error }

func (e refusedError) Unwrap() error        { return e.error }
func (e refusedError) Is(target error) bool { return target == ErrLoginRefused }

// Class says what the copier should do about an error. Errors are classified
// by behaviour, not by type, so that an adapter for a new kind of store only
// has to say how bad each failure is.
type Class uint8

const (
	// ClassUnclassified errors are treated like ClassMailbox errors: the mailbox stops,
	// the others go on, and a re-run tries again.
	ClassUnclassified Class = iota
	// ClassTransient: a dropped connection, BYE, throttling or a timeout. Reconnect
	// and retry after a backoff.
	ClassTransient
	// ClassMessage: the store refused this one message (too big, unparsable).
	// Record it as failed and go on with the next.
	ClassMessage
	// ClassMailbox: this mailbox cannot be copied (cannot be created or selected).
	ClassMailbox
	// ClassAccount: nothing more can be done for this account pair
	// (authentication, over quota).
	ClassAccount
	// ClassRun: nothing more can be done at all (checkpoint unwritable).
	ClassRun
)

func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassMessage:
		return "message"
	case ClassMailbox:
		return "mailbox"
	case ClassAccount:
		return "account"
	case ClassRun:
		return "run"
	}
	return "unclassified"
}

type classifiedError struct {
	class      Class
	retryAfter time.Duration
	err        error
}

func (e *classifiedError) Error() string { return e.err.Error() }
func (e *classifiedError) Unwrap() error { return e.err }

// WithClass marks err as belonging to class. A nil err stays nil.
func WithClass(class Class, err error) error {
	if err == nil {
		return nil
	}
	return &classifiedError{class: class, err: err}
}

// Throttled marks err as transient with the server's suggested wait.
func Throttled(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &classifiedError{class: ClassTransient, retryAfter: after, err: err}
}

// ClassOf reports the class of err: the outermost explicit class wins; then
// network failures and timeouts count as Transient.
func ClassOf(err error) Class {
	if err == nil {
		return ClassUnclassified
	}
	var ce *classifiedError
	if errors.As(err, &ce) {
		return ce.class
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ClassUnclassified
	}
	if isNetworkFailure(err) {
		return ClassTransient
	}
	return ClassUnclassified
}

// Adapting marks a transient error after which the store goes about the
// work differently (smaller MULTIAPPEND groups after a connection gave way
// under a large one): the next attempt is not a repeat, so the copier does
// not count this one against its retries. A store may adapt a bounded
// number of times only.
func Adapting(err error) error {
	if err == nil {
		return nil
	}
	return &adaptingError{err}
}

type adaptingError struct{ err error }

func (e *adaptingError) Error() string { return e.err.Error() }
func (e *adaptingError) Unwrap() error { return e.err }

// IsAdapting reports whether err is marked by Adapting.
func IsAdapting(err error) bool {
	var ae *adaptingError
	return errors.As(err, &ae)
}

// RetryAfter reports the wait a server asked for, or 0.
func RetryAfter(err error) time.Duration {
	var ce *classifiedError
	if errors.As(err, &ce) {
		return ce.retryAfter
	}
	return 0
}

func isNetworkFailure(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// MessageError names the message an error is about, so that a report line
// always says which user, mailbox and message failed.
type MessageError struct {
	Mailbox string
	UID     UID
	Err     error
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("mailbox %q uid %d: %v", e.Mailbox, e.UID, e.Err)
}
func (e *MessageError) Unwrap() error { return e.Err }
