package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// This file is the checkpoint's own encoding of the engine's ledger types
// (migrate/ledger): what is written for each, in which bytes. It is a
// versioned format of its own, documented in docs/checkpoint.md; the
// engine's types may change without it, and it changes only with a new
// value version (recordVersion) or schema.

// The numbers a record's status is stored under: never renumber.
const (
	diskPending   byte = 1
	diskCopied    byte = 2
	diskDuplicate byte = 3
	diskFailed    byte = 4
	diskRemoved   byte = 5
)

var statusToDisk = map[ledger.Status]byte{
	ledger.StatusPending:   diskPending,
	ledger.StatusCopied:    diskCopied,
	ledger.StatusDuplicate: diskDuplicate,
	ledger.StatusFailed:    diskFailed,
	ledger.StatusRemoved:   diskRemoved,
}

var statusFromDisk = map[byte]ledger.Status{
	diskPending:   ledger.StatusPending,
	diskCopied:    ledger.StatusCopied,
	diskDuplicate: ledger.StatusDuplicate,
	diskFailed:    ledger.StatusFailed,
	diskRemoved:   ledger.StatusRemoved,
}

func keyBytes(k ledger.RecordKey) []byte {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], k.SrcValidity)
	binary.BigEndian.PutUint32(b[4:], k.SrcUID)
	return b[:]
}

func parseRecordKey(b []byte) (ledger.RecordKey, error) {
	if len(b) != 8 {
		return ledger.RecordKey{}, fmt.Errorf("record key of %d bytes", len(b))
	}
	return ledger.RecordKey{SrcValidity: binary.BigEndian.Uint32(b[:4]), SrcUID: binary.BigEndian.Uint32(b[4:])}, nil
}

const recordVersion = 1

// maxReason bounds what is kept of a server's refusal text.
const maxReason = 1024

// marshalRecord encodes r (all but its key, which is the bucket key):
// version, status number, destination UIDVALIDITY, UID and UIDNEXT, run
// (4 bytes each, big-endian), size (varint), fingerprint (16 bytes),
// Message-ID and reason (uvarint length, bytes).
func marshalRecord(r *ledger.Record) ([]byte, error) {
	status, ok := statusToDisk[r.Status]
	if !ok {
		return nil, fmt.Errorf("record %d:%d: no stored form for status %v", r.SrcValidity, r.SrcUID, r.Status)
	}
	reason := r.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	b := make([]byte, 0, 64+len(r.MessageID)+len(reason))
	b = append(b, recordVersion, status)
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
	return b, nil
}

var errShortRecord = errors.New("truncated record")

// unmarshalRecord decodes what marshalRecord wrote into r (not its key).
func unmarshalRecord(b []byte, r *ledger.Record) error {
	if len(b) < 18 {
		return errShortRecord
	}
	if b[0] != recordVersion {
		return fmt.Errorf("record version %d, want %d", b[0], recordVersion)
	}
	status, ok := statusFromDisk[b[1]]
	if !ok {
		return fmt.Errorf("unknown status %d", b[1])
	}
	r.Status = status
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

// The JSON values of accounts, mailbox pairs and destination mailboxes.
// These names are stored: never rename a tag. Account states are stored
// as the ledger's strings (ledger.AccountCopied...), which are therefore
// part of this format too.

type diskAccount struct {
	Source  string    `json:"source"`
	Dest    string    `json:"dest"`
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Run     uint32    `json:"run"`
	Updated time.Time `json:"updated"`
	Cutover time.Time `json:"cutover,omitzero"`
}

type diskDest struct {
	UIDValidity uint32    `json:"uidvalidity"`
	UIDNext     uint32    `json:"uidnext"`
	Seen        time.Time `json:"seen"`
}

type diskUnsettled struct {
	UIDValidity uint32    `json:"uidvalidity"`
	UIDNext     uint32    `json:"uidnext"`
	Since       time.Time `json:"since"`
}

type diskQuiet struct {
	Src       diskState `json:"src"`
	Dst       diskState `json:"dst"`
	Seen      int       `json:"seen"`
	Copied    int       `json:"copied"`
	Duplicate int       `json:"duplicate"`
}

type diskState struct {
	UIDValidity uint32 `json:"uidvalidity"`
	UIDNext     uint32 `json:"uidnext"`
	Messages    int    `json:"messages"`
	ModSeq      uint64 `json:"modseq"`
}

type diskMailbox struct {
	Source         string          `json:"source"`
	Dest           string          `json:"dest"`
	Role           string          `json:"role,omitempty"`
	SrcValidity    uint32          `json:"src_uidvalidity"`
	DstValidity    uint32          `json:"dst_uidvalidity"`
	DstBaseline    uint32          `json:"dst_baseline,omitempty"`
	DstFresh       bool            `json:"dst_fresh,omitempty"`
	CutoverUIDNext uint32          `json:"cutover_uidnext,omitempty"`
	CutoverModSeq  uint64          `json:"cutover_modseq,omitempty"`
	Unsettled      []diskUnsettled `json:"unsettled,omitempty"`
	Quiet          *diskQuiet      `json:"quiet,omitempty"`
	Created        bool            `json:"created,omitempty"`
	Deleted        bool            `json:"deleted,omitempty"`
	Creating       []string        `json:"creating,omitempty"`
}

func toDiskMailbox(m ledger.MailboxRecord) diskMailbox {
	d := diskMailbox{Source: m.Source, Dest: m.Dest, Role: m.Role, SrcValidity: m.SrcValidity, DstValidity: m.DstValidity,
		DstBaseline: m.DstBaseline, DstFresh: m.DstFresh, CutoverUIDNext: m.CutoverUIDNext, CutoverModSeq: m.CutoverModSeq,
		Created: m.Created, Deleted: m.Deleted, Creating: slices.Clone(m.Creating)}
	for _, u := range m.Unsettled {
		d.Unsettled = append(d.Unsettled, diskUnsettled(u))
	}
	if q := m.Quiet; q != nil {
		d.Quiet = &diskQuiet{Src: diskState(q.Src), Dst: diskState(q.Dst), Seen: q.Seen, Copied: q.Copied, Duplicate: q.Duplicate}
	}
	return d
}

func (d diskMailbox) ledger() ledger.MailboxRecord {
	m := ledger.MailboxRecord{Source: d.Source, Dest: d.Dest, Role: d.Role, SrcValidity: d.SrcValidity, DstValidity: d.DstValidity,
		DstBaseline: d.DstBaseline, DstFresh: d.DstFresh, CutoverUIDNext: d.CutoverUIDNext, CutoverModSeq: d.CutoverModSeq,
		Created: d.Created, Deleted: d.Deleted, Creating: d.Creating}
	for _, u := range d.Unsettled {
		m.Unsettled = append(m.Unsettled, ledger.Unsettled(u))
	}
	if q := d.Quiet; q != nil {
		m.Quiet = &ledger.Quiet{Src: ledger.MailboxState(q.Src), Dst: ledger.MailboxState(q.Dst), Seen: q.Seen, Copied: q.Copied, Duplicate: q.Duplicate}
	}
	return m
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
