package migrate

import (
	"log/slog"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// Options tunes a migration. The zero value gives sensible defaults.
type Options struct {
	// MailboxWorkers is how many mailboxes of one account are copied at
	// once; each uses one connection per side (default 4).
	MailboxWorkers int
	// Streams is how many connection pairs copy one large mailbox at once
	// (default 1); a mailbox with fewer than StreamThreshold messages to
	// copy (default 1000) uses one. Several streams are much faster
	// against servers that save one APPEND at a time per connection, but
	// the copies' UIDs then follow the source order only within a batch.
	Streams         int
	StreamThreshold int
	// BatchSize is how many messages are marked pending in one checkpoint
	// transaction before their APPENDs are sent (default 256).
	BatchSize int
	// BatchBytes caps the bytes of one pending batch (default 64 MiB), so a
	// crash leaves little to re-check.
	BatchBytes int64
	// CommitInterval bounds how long a confirmed copy waits before its
	// record is committed (default 500ms).
	CommitInterval time.Duration
	// Retries is how often a mailbox is retried after a transient error
	// (default 5); Backoff is the first wait, doubled each time with jitter
	// up to MaxBackoff (defaults 1s and 1 min).
	Retries    int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// QuietWait is how long the destination mailbox must not grow before
	// messages an interrupted run left pending are looked for (default
	// 2s); QuietMax bounds the whole wait (default 1 min).
	QuietWait time.Duration
	QuietMax  time.Duration
	// RetryFailed re-sends messages the destination refused in earlier runs.
	RetryFailed bool
	// DryRun plans and counts without creating, appending or recording.
	DryRun bool
	// NoFlagSync leaves the flags of earlier copies alone. Otherwise each
	// run sets them to the source's, so flag changes made on the source
	// before cutover follow (after cutover, recorded in the ledger, flags
	// are never synchronised forward: users work on the destination).
	NoFlagSync bool
	// Names maps source mailbox names to destination names for mailboxes
	// the ledger has no mapping for yet (reverse uses it to write back
	// where the mail came from).
	Names map[string]string
	// Select narrows the run to some mailboxes and messages (folder rules,
	// date and size filters); the zero value takes everything.
	Select Selection
	// Labels handles sources where one message shows in several
	// mailboxes (Gmail); the zero value copies each mailbox as it is.
	Labels LabelPolicy
	// LateCopies is what a run does with the extra copies a stuck
	// destination stored late, of APPENDs that were then sent again (see
	// LateCopyPolicy and docs/reliability.md). The zero value removes them.
	LateCopies LateCopyPolicy
	// Exclude, if set, returns source UIDs of a mailbox to leave out as if
	// they were not there (reverse uses it to skip the destination's copies
	// of source mail).
	Exclude func(mailbox string, uidValidity uint32) (func(providers.UID) bool, error)
	// Run is the run id stored on every record this run writes.
	Run uint32
	// Logger receives human-readable progress; nil discards it.
	Logger *slog.Logger
	// Events, if set, receives progress events.
	Events func(Event)
}

// LateCopyPolicy says what the forward copy does with late copies: when
// an attempt gives up a connection with APPENDs unanswered, the next one
// sends them again, and a stuck server may still store the first sends
// afterwards. Both copies came from mailferry, and only one is claimed by
// a record. The forward copy is otherwise the one run that never removes
// anything from the destination; this is that exception, made explicit.
type LateCopyPolicy string

const (
	// LateCopiesRemove (the default) removes each extra copy (UID EXPUNGE
	// of exactly those UIDs), within 24 hours of the window of unanswered
	// APPENDs that let it in, keeping the one the ledger claims: the
	// destination ends exact. Counted in MailboxSummary.LateCopies.
	LateCopiesRemove LateCopyPolicy = "remove"
	// LateCopiesKeep leaves the extra copies on the destination and
	// reports them (MailboxSummary.LateCopiesKept, and the mailbox's Warn,
	// which makes the account "warn"): for a destination from which a
	// migration must remove nothing. The destination then holds those
	// messages twice, and undo removes only the copy the ledger claims.
	LateCopiesKeep LateCopyPolicy = "keep"
)

func (o Options) withDefaults() Options {
	if o.LateCopies == "" {
		o.LateCopies = LateCopiesRemove
	}
	if o.MailboxWorkers <= 0 {
		o.MailboxWorkers = 4
	}
	if o.Streams <= 0 {
		o.Streams = 1
	}
	if o.StreamThreshold <= 0 {
		o.StreamThreshold = 1000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 64 << 20
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = 500 * time.Millisecond
	}
	if o.Retries < 0 {
		o.Retries = 0
	} else if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.QuietWait <= 0 {
		o.QuietWait = 2 * time.Second
	}
	if o.QuietMax <= 0 {
		o.QuietMax = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) emit(e Event) {
	if o.Events != nil {
		o.Events(e)
	}
}

// pacer is the retry policy Retries, Backoff and MaxBackoff describe:
// Backoff doubling up to MaxBackoff, with jitter, a server's hint
// honoured.
func (o Options) pacer() providers.Pacer {
	return providers.Pacer{Min: o.Backoff, Max: o.MaxBackoff, Retries: o.Retries}
}
