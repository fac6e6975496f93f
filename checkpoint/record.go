package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Status is what a run did with one source message.
type Status uint8

// Message statuses. The numbers are stored on disk: never renumber.
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

func (k RecordKey) bytes() []byte {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], k.SrcValidity)
	binary.BigEndian.PutUint32(b[4:], k.SrcUID)
	return b[:]
}

func parseRecordKey(b []byte) (RecordKey, error) {
	if len(b) != 8 {
		return RecordKey{}, fmt.Errorf("record key of %d bytes", len(b))
	}
	return RecordKey{binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint32(b[4:])}, nil
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

const recordVersion = 1

// maxReason bounds what is kept of a server's refusal text.
const maxReason = 1024

func (r *Record) marshal() []byte {
	reason := r.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	b := make([]byte, 0, 64+len(r.MessageID)+len(reason))
	b = append(b, recordVersion, byte(r.Status))
	b = binary.BigEndian.AppendUint32(b, r.DstValidity)
	b = binary.BigEndian.AppendUint32(b, r.DstUID)
	b = binary.BigEndian.AppendUint32(b, r.DstUIDNext)
	b = binary.BigEndian.AppendUint32(b, r.Run)
	b = binary.AppendVarint(b, r.Size)
	b = append(b, r.Fingerprint[:]...)
	b = binary.AppendUvarint(b, uint64(len(r.MessageID)))
	b = append(b, r.MessageID...)
	b = binary.AppendUvarint(b, uint64(len(reason)))
	b = append(b, reason...)
	return b
}

var errShortRecord = errors.New("truncated record")

func (r *Record) unmarshal(b []byte) error {
	if len(b) < 18 {
		return errShortRecord
	}
	if b[0] != recordVersion {
		return fmt.Errorf("record version %d, want %d", b[0], recordVersion)
	}
	r.Status = Status(b[1])
	r.DstValidity = binary.BigEndian.Uint32(b[2:])
	r.DstUID = binary.BigEndian.Uint32(b[6:])
	r.DstUIDNext = binary.BigEndian.Uint32(b[10:])
	r.Run = binary.BigEndian.Uint32(b[14:])
	b = b[18:]
	size, n := binary.Varint(b)
	if n <= 0 || len(b[n:]) < 16 {
		return errShortRecord
	}
	r.Size = size
	b = b[n:]
	copy(r.Fingerprint[:], b[:16])
	b = b[16:]
	var err error
	if r.MessageID, b, err = readString(b); err != nil {
		return err
	}
	if r.Reason, _, err = readString(b); err != nil {
		return err
	}
	return nil
}

func readString(b []byte) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b[n:])) < l {
		return "", nil, errShortRecord
	}
	return string(b[n : n+int(l)]), b[n+int(l):], nil
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
	Updated time.Time `json:"updated"`
	Cutover time.Time `json:"cutover,omitzero"`
}

// Run is the ledger entry of one invocation.
type Run struct {
	ID       uint32    `json:"id"`
	Command  string    `json:"command"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Outcome  string    `json:"outcome,omitempty"`
}
