package checkpoint

import (
	"fmt"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// The contents of testdata/schema2.ckpt, a checkpoint written by the code of
// commit c81a01a (schema version 2, with checksums; the release before the
// ledger types moved to migrate/ledger), so that tests can tell that a file
// of that release still opens and reads exactly what was written. Every
// field of every value is set somewhere, so that a conversion that drops
// one shows.

const (
	schema2From = "imaps://src.example.org:993"
	schema2To   = "maildir:/srv/mail/dst"
	schema2ID   = "carol\x00carol@example.com"
)

var schema2Time = time.Date(2026, 11, 30, 12, 34, 56, 0, time.UTC)

var schema2Accounts = map[string]ledger.Account{
	schema2ID:                          {Source: "carol", Dest: "carol@example.com", State: ledger.AccountCutover, Run: 2, Cutover: schema2Time},
	"dave\x00dave@example.com":         {Source: "dave", Dest: "dave@example.com", State: ledger.AccountWarn, Reason: "INBOX: the source's count is in doubt", Run: 1},
	"erin\x00erin@example.com":         {Source: "erin", Dest: "erin@example.com", State: ledger.AccountUndone, Run: 3},
	ledger.ReverseAccountID(schema2ID): {Source: "carol@example.com", Dest: "carol", State: ledger.AccountCopied, Run: 3},
}

var schema2Mailboxes = map[string]ledger.MailboxRecord{
	"INBOX": {Source: "INBOX", Dest: "INBOX", SrcValidity: 70, DstValidity: 90, DstBaseline: 5, DstFresh: true,
		CutoverUIDNext: 700, CutoverModSeq: 98765,
		Quiet: &ledger.Quiet{Src: ledger.MailboxState{UIDValidity: 70, UIDNext: 601, Messages: 600, ModSeq: 11},
			Dst: ledger.MailboxState{UIDValidity: 90, UIDNext: 700, Messages: 605, ModSeq: 22}, Seen: 600, Copied: 540, Duplicate: 60}},
	"Sent": {Source: "Sent", Dest: "Sent Items", Role: `\Sent`, SrcValidity: 80, DstValidity: 100, Created: true,
		Unsettled: []ledger.Unsettled{{UIDValidity: 100, UIDNext: 2, Since: schema2Time}, {UIDValidity: 100, UIDNext: 9, Since: schema2Time.Add(time.Hour)}}},
	"Old/Projects": {Source: "Old/Projects", Dest: "Old.Projects", SrcValidity: 81, DstValidity: 101, Created: true, Deleted: true},
}

var schema2Dest = map[string]ledger.DestMailbox{
	"INBOX":        {UIDValidity: 90, UIDNext: 5, Seen: schema2Time},
	"Sent Items":   {UIDValidity: 100, UIDNext: 1, Seen: schema2Time},
	"Old.Projects": {UIDValidity: 101, UIDNext: 1, Seen: schema2Time},
	"Archive":      {UIDValidity: 11, UIDNext: 42, Seen: schema2Time.Add(-time.Hour)},
}

// schema2Records are carol's INBOX records: enough for several pages, in
// every status.
func schema2Records() []ledger.Record {
	var out []ledger.Record
	for i := range uint32(600) {
		r := ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 70, SrcUID: i + 1}, Status: ledger.StatusCopied, DstValidity: 90, DstUID: i + 5, DstUIDNext: 5,
			Size: int64(2000 + i), MessageID: fmt.Sprintf("<%d.carol@example.org>", i), Run: 1}
		r.Fingerprint[0], r.Fingerprint[15] = byte(i), byte(i>>8)
		switch i % 10 {
		case 3:
			r.Status, r.DstUID = ledger.StatusDuplicate, i+1000
		case 5:
			r.Status, r.DstUID, r.Reason = ledger.StatusFailed, 0, "NO [TOOBIG] message too large"
		case 7:
			r.Status, r.DstUID, r.Run = ledger.StatusPending, 0, 2
		case 9:
			r.Status, r.Run = ledger.StatusRemoved, 3
		}
		if i%50 == 0 {
			r.MessageID = ""
		}
		out = append(out, r)
	}
	return out
}

// schema2Deleted are keys written, then deleted, so that the file has free pages.
var schema2Deleted = []ledger.RecordKey{{SrcValidity: 70, SrcUID: 2}, {SrcValidity: 70, SrcUID: 4}, {SrcValidity: 70, SrcUID: 600}}

var schema2Sent = []ledger.Record{
	{RecordKey: ledger.RecordKey{SrcValidity: 80, SrcUID: 1}, Status: ledger.StatusCopied, DstValidity: 100, DstUID: 1, Size: 77, MessageID: "<s1@example.org>", Run: 1},
	{RecordKey: ledger.RecordKey{SrcValidity: 80, SrcUID: 2}, Status: ledger.StatusPending, DstValidity: 100, DstUIDNext: 2, Size: 78, MessageID: "<s2@example.org>", Run: 2},
	{RecordKey: ledger.RecordKey{SrcValidity: 80, SrcUID: 3}, Status: ledger.StatusFailed, DstValidity: 100, Size: 79, Reason: "read: connection reset", Run: 2},
}

// schema2Runs are the runs of the file, in order: command, version, outcome.
var schema2Runs = [][3]string{{"migrate", "v0.9.0", "ok"}, {"migrate", "v0.9.0", "interrupted"}, {"reverse", "v0.9.1", ""}}
