package migrate

import (
	"time"

	"github.com/mailferry/mailferry/providers"
)

// MailboxSummary counts what happened to one source mailbox. Its counts
// always add up: Copied + Duplicate + Failed + Pending = Seen.
type MailboxSummary struct {
	Source  string `json:"source"`
	Dest    string `json:"dest"`
	Created bool   `json:"created,omitempty"`
	// Seen is the number of messages in the source mailbox, or of those
	// the date and size filters select; Filtered counts the others.
	Seen     int `json:"seen"`
	Filtered int `json:"filtered,omitempty"`
	// Copied counts source messages whose copy mailferry made (in this or an
	// earlier run); New counts those made by this run.
	Copied int `json:"copied"`
	New    int `json:"new"`
	// Duplicate counts source messages already on the destination.
	Duplicate int `json:"skipped_duplicate"`
	// Failed counts messages the destination refused.
	Failed int `json:"failed"`
	// Pending counts messages not settled because the run stopped early.
	Pending int `json:"pending"`
	// FlagsUpdated counts earlier copies whose flags were set again to
	// follow changes on the source.
	FlagsUpdated int `json:"flags_updated,omitempty"`
	// OtherLabel counts messages this mailbox shares with another that
	// copies them (see LabelPolicy); like Filtered, they are not in Seen.
	OtherLabel int `json:"in_other_label,omitempty"`
	// LateCopies counts extra copies a stuck destination stored late, of
	// APPENDs that were sent again; they are removed (but in a dry run).
	LateCopies int `json:"late_copies_removed,omitempty"`
	// LateCopiesKept counts such copies found and left on the destination
	// (Options.LateCopies is LateCopiesKeep).
	LateCopiesKept int `json:"late_copies_kept,omitempty"`
	// Unchanged says both sides were as the last pass left them, so the
	// mailbox was not opened; the counts are that pass's.
	Unchanged bool      `json:"unchanged,omitempty"`
	Bytes     int64     `json:"bytes"`
	Failures  []Failure `json:"failures,omitempty"`
	// Altered counts copies whose stored bytes differ from the source's
	// (a destination that cannot take NUL bytes, a source that cannot
	// serve them): they count as copied, and Alterations says how, like
	// Failures.
	Altered     int       `json:"altered,omitempty"`
	Alterations []Failure `json:"alterations,omitempty"`
	Error       string    `json:"error,omitempty"`
	Class       string    `json:"error_class,omitempty"`
	// Warn says why the message count of the mailbox is in doubt (an mbox
	// file another reader may split otherwise, see providers.Doubter): the
	// copies match what mailferry read, but it may not be what the user
	// sees. It makes the account's status "warn".
	Warn string `json:"warn,omitempty"`
}

// Failure names one message that failed and why.
type Failure struct {
	UID       providers.UID `json:"uid"`
	MessageID string        `json:"message_id,omitempty"`
	Reason    string        `json:"reason"`
}

// maxFailures bounds the failures listed per mailbox; the count stays exact.
const maxFailures = 50

// AccountSummary is the outcome of one account pair.
type AccountSummary struct {
	Account   string           `json:"account"`
	Source    string           `json:"source_user"`
	Dest      string           `json:"dest_user"`
	Mailboxes []MailboxSummary `json:"mailboxes"`
	Skipped   []Skipped        `json:"skipped_mailboxes,omitempty"`
	Duration  time.Duration    `json:"duration_ns"`
	Status    string           `json:"status"` // ok, warn, failed, skipped, interrupted
	Error     string           `json:"error,omitempty"`
	Class     string           `json:"error_class,omitempty"`
	// Warnings are what the stores could not read as expected and skipped
	// or worked around, the rest being copied (malformed mbox files, see
	// providers.Warner), each starting "source: " or "destination: ". They
	// do not make the account fail. At most maxWarnings are listed;
	// WarningCount is the exact number.
	Warnings     []string `json:"warnings,omitempty"`
	WarningCount int      `json:"warning_count,omitempty"`
}

// maxWarnings bounds the warnings listed per account: a file written by an
// mboxo program can have one per message.
const maxWarnings = 100

// Totals adds up the mailbox summaries.
func (a *AccountSummary) Totals() MailboxSummary {
	var t MailboxSummary
	for _, m := range a.Mailboxes {
		t.Seen += m.Seen
		t.Filtered += m.Filtered
		t.OtherLabel += m.OtherLabel
		t.Copied += m.Copied
		t.New += m.New
		t.Duplicate += m.Duplicate
		t.Failed += m.Failed
		t.Pending += m.Pending
		t.FlagsUpdated += m.FlagsUpdated
		t.Bytes += m.Bytes
	}
	return t
}

// OK reports whether the account finished with every message settled.
func (a *AccountSummary) OK() bool {
	if a.Error != "" {
		return false
	}
	for _, m := range a.Mailboxes {
		if m.Error != "" || m.Failed > 0 || m.Pending > 0 {
			return false
		}
	}
	return true
}

// hasErrors reports an account or mailbox error, ignoring counts.
func (a *AccountSummary) hasErrors() bool {
	if a.Error != "" {
		return true
	}
	for _, m := range a.Mailboxes {
		if m.Error != "" {
			return true
		}
	}
	return false
}

// EventKind names a step of a run, for progress displays and tests.
type EventKind string

// Events, in the order a mailbox goes through them.
const (
	EventAccountStart EventKind = "account_start"
	EventMailboxStart EventKind = "mailbox_start"
	// EventMailboxCreated: the destination made a mailbox for mailferry's
	// CREATE; its record is not committed yet (the intent is).
	EventMailboxCreated EventKind = "mailbox_created"
	EventAppended       EventKind = "appended"  // the server confirmed one APPEND
	EventCommitted      EventKind = "committed" // a batch of ledger records is durable
	EventMailboxDone    EventKind = "mailbox_done"
	EventRetry          EventKind = "retry" // a mailbox, or a login (no Mailbox), is tried again
	EventAccountDone    EventKind = "account_done"
	EventUndoMailbox    EventKind = "undo_mailbox"
	EventVerifyMailbox  EventKind = "verify_mailbox"
	EventRemoved        EventKind = "removed" // undo removed and recorded a chunk
)

// Event reports progress. Handlers run synchronously on the copier's
// goroutines and must be quick.
type Event struct {
	Kind    EventKind
	ID      string // account id
	Mailbox string
	Count   int             // messages concerned
	Bytes   int64           // bytes concerned
	Summary *MailboxSummary // set on EventMailboxDone
	Account *AccountSummary // set on EventAccountDone of migrate
	// Result is the account's outcome on EventAccountDone of verify, undo
	// and reverse: a *VerifySummary, *UndoSummary or *ReverseSummary.
	Result any
	Err    error
}

func classString(err error) string {
	if err == nil {
		return ""
	}
	return providers.ClassOf(err).String()
}
