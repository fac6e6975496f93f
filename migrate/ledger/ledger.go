// Package ledger is the engine's data model: what migrate records of every
// account pair, mailbox pair and source message, and the Ledger interface
// that keeps it. It belongs to the engine; a durable implementation (the
// bbolt checkpoint) imports it and keeps its own, versioned encoding of
// these types. The package imports nothing but the standard library.
//
// The JSON tags are the types' form in reports and `status --json`, not
// an on-disk format.
package ledger

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Status is what a run did with one source message.
type Status uint8

// Message statuses. checkpoint stores them under numbers of its own
// (docs/checkpoint.md); these values mean nothing outside this process.
const (
	// StatusPending: the message is about to be appended. Written and
	// committed before the APPEND is sent, so a crash leaves evidence to
	// settle on the next run by looking at the destination.
	StatusPending Status = 1
	// StatusCopied: the destination confirmed the APPEND; DstUID is the new
	// message (0 until a lookup finds it when the server gave no APPENDUID).
	StatusCopied Status = 2
	// StatusDuplicate: the message was already on the destination (DstUID);
	// mailferry did not create that copy and undo never removes it.
	StatusDuplicate Status = 3
	// StatusFailed: the destination refused the message or it could not be
	// read; Reason says why.
	StatusFailed Status = 4
	// StatusRemoved: undo removed the copy mailferry had made.
	StatusRemoved Status = 5
)

func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusCopied:
		return "copied"
	case StatusDuplicate:
		return "skipped-duplicate"
	case StatusFailed:
		return "failed"
	case StatusRemoved:
		return "removed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Settled reports whether the status needs no more work from migrate.
func (s Status) Settled() bool { return s == StatusCopied || s == StatusDuplicate }

// RecordKey identifies a source message for as long as its mailbox keeps
// its UIDVALIDITY.
type RecordKey struct {
	SrcValidity uint32
	SrcUID      uint32
}

// Record is the ledger entry of one source message.
type Record struct {
	RecordKey
	Status      Status
	DstValidity uint32
	DstUID      uint32
	// DstUIDNext is the destination's UIDNEXT when the message became
	// pending: any copy this run made has a UID at or above it, which keeps
	// crash recovery from mistaking older mail for its own.
	DstUIDNext  uint32
	Size        int64
	Fingerprint [16]byte
	MessageID   string
	Run         uint32
	Reason      string
}

// DestMailbox is what mailferry first saw of a mailbox on the destination,
// any mailbox, including those the migration never writes to: messages
// below UIDNext were there before mailferry, as long as the mailbox keeps
// its UIDValidity. Reverse leaves them there.
type DestMailbox struct {
	UIDValidity uint32    `json:"uidvalidity"`
	UIDNext     uint32    `json:"uidnext"`
	Seen        time.Time `json:"seen"`
}

// Unsettled is a window in which a destination may still store APPENDs
// late: from UIDNext on, under UIDValidity, since the time given.
type Unsettled struct {
	UIDValidity uint32    `json:"uidvalidity"`
	UIDNext     uint32    `json:"uidnext"`
	Since       time.Time `json:"since"`
}

// Quiet is how both mailboxes of a pair stood after a pass that left
// nothing to do, and what the pass counted: a later run that finds both
// as they were (and HIGHESTMODSEQ says no flag changed) has nothing to do
// either, and skips the pair without opening it.
type Quiet struct {
	Src       MailboxState `json:"src"`
	Dst       MailboxState `json:"dst"`
	Seen      int          `json:"seen"`
	Copied    int          `json:"copied"`
	Duplicate int          `json:"duplicate"`
}

// MailboxState is what a server says of a mailbox without opening it.
type MailboxState struct {
	UIDValidity uint32 `json:"uidvalidity"`
	UIDNext     uint32 `json:"uidnext"`
	Messages    int    `json:"messages"`
	ModSeq      uint64 `json:"modseq"`
}

// MailboxRecord is the ledger entry of one mailbox pair of an account.
type MailboxRecord struct {
	Source      string `json:"source"`
	Dest        string `json:"dest"`
	Role        string `json:"role,omitempty"`
	SrcValidity uint32 `json:"src_uidvalidity"`
	DstValidity uint32 `json:"dst_uidvalidity"`
	// DstBaseline is the destination's UIDNEXT when mailferry first opened
	// the destination mailbox: messages below it were there before the
	// migration (reverse leaves them alone).
	DstBaseline uint32 `json:"dst_baseline,omitempty"`
	// DstFresh says the destination mailbox was empty when mailferry first
	// saw it under DstValidity. Some servers (Courier) number a mailbox only
	// once it holds mail, and show a new UIDVALIDITY at each look until
	// then: a change from a fresh one is that numbering, not a renumbering
	// of anything, and everything in the mailbox came after first sight.
	DstFresh bool `json:"dst_fresh,omitempty"`
	// CutoverUIDNext is the destination's UIDNEXT when cutover was
	// recorded: messages at or above it arrived after the point of no
	// return.
	CutoverUIDNext uint32 `json:"cutover_uidnext,omitempty"`
	// CutoverModSeq is the destination mailbox's HIGHESTMODSEQ then
	// (CONDSTORE servers): reverse carries back the flags of exactly the
	// messages changed after it.
	CutoverModSeq uint64 `json:"cutover_modseq,omitempty"`
	// Unsettled are the destination UIDNEXTs before batches whose APPENDs
	// were still unanswered when their connection was given up: a stuck
	// server may store them late, after they were sent again. Each later
	// run looks above them for such late copies (see migrate).
	Unsettled []Unsettled `json:"unsettled,omitempty"`
	// Quiet is how both sides stood after the last pass that left nothing
	// to do; nil after any other pass.
	Quiet *Quiet `json:"quiet,omitempty"`
	// Created says mailferry created the destination mailbox, so undo may
	// remove it once it is empty again; Deleted says undo did.
	Created bool `json:"created,omitempty"`
	Deleted bool `json:"deleted,omitempty"`
	// Creating is the intent to CREATE the destination mailbox, committed
	// before the CREATE is sent: the destination names that were not on
	// the destination when it was written, the mailbox's own first, then
	// the parents a server may make with it. A crash between the CREATE
	// and the commit of Created leaves it; the next run (or undo) settles
	// it: what of it exists then, mailferry made. It is cleared once
	// settled.
	Creating []string `json:"creating,omitempty"`
}

// Account states.
const (
	AccountPending  = "pending"
	AccountCopying  = "copying"
	AccountCopied   = "copied"
	AccountWarn     = "warn" // copied, but a source mailbox's message count is in doubt (Reason says why)
	AccountFailed   = "failed"
	AccountUndone   = "undone"
	AccountVerified = "verified"
	AccountCutover  = "cutover"
)

// Account is the ledger entry of one account pair. It never holds a secret.
type Account struct {
	Source  string    `json:"source"`
	Dest    string    `json:"dest"`
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Run     uint32    `json:"run"`
	Updated time.Time `json:"updated"` // set by the ledger at each PutAccount
	Cutover time.Time `json:"cutover,omitzero"`
}

// AccountID is the ledger key of an account pair: the same pair in a later
// batch file finds its earlier progress.
func AccountID(sourceUser, destUser string) string {
	return strings.ToLower(sourceUser) + "\x00" + strings.ToLower(destUser)
}

const reversePrefix = "reverse\x00"

// ReverseAccountID is the ledger key of the way back of account id:
// reverse's copy back is a run of its own, destination to source, so it
// resumes and deduplicates like a migration. It is not an account pair of
// the move: commands that go over "every account" skip it.
func ReverseAccountID(id string) string { return reversePrefix + id }

// IsReverseAccount reports whether id is the ledger key of a way back.
func IsReverseAccount(id string) bool { return strings.HasPrefix(id, reversePrefix) }

// Ledger is the durable record the engine needs. Every method that writes
// must have committed when it returns: a record is evidence for the next
// run only once it is durable. Iterations are in key order (names in byte
// order; records by source UIDVALIDITY, then UID).
type Ledger interface {
	Account(id string) (Account, bool, error)
	PutAccount(id string, a Account) error
	Mailbox(account, name string) (MailboxRecord, bool, error)
	PutMailbox(account, name string, rec MailboxRecord) error
	// PutMailboxes writes the records of several mailbox pairs in one
	// commit: a run's notes that may be late but need not cost a commit
	// each (see migrate's quiet notes).
	PutMailboxes(account string, recs map[string]MailboxRecord) error
	// ForgetMailbox removes the record of mailbox pair name, not the
	// records of its messages; one not there is no error. (It takes back
	// a CREATE intent the destination refused.)
	ForgetMailbox(account, name string) error
	Mailboxes(account string, fn func(name string, rec MailboxRecord) error) error
	Records(account, mailbox string, fn func(Record) error) error
	PutRecords(account, mailbox string, recs []Record) error
	DeleteRecords(account, mailbox string, keys []RecordKey) error
	DestMailboxes(account string, fn func(name string, d DestMailbox) error) error
	PutDestMailboxes(account string, seen map[string]DestMailbox) error
}

// Compare orders keys as a ledger iterates them: by source UIDVALIDITY,
// then UID.
func (k RecordKey) Compare(o RecordKey) int {
	if c := cmp.Compare(k.SrcValidity, o.SrcValidity); c != 0 {
		return c
	}
	return cmp.Compare(k.SrcUID, o.SrcUID)
}

// check says whether s is one of the statuses above: a ledger refuses to
// store any other.
func (s Status) check() error {
	switch s {
	case StatusPending, StatusCopied, StatusDuplicate, StatusFailed, StatusRemoved:
		return nil
	}
	return fmt.Errorf("ledger: no such status %v", s)
}
