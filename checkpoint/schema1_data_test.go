package checkpoint

import (
	"fmt"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// The contents of testdata/schema1.ckpt, a checkpoint written by the code of
// commit 1d0bc06 (schema version 1, no checksums), so that tests can tell
// that a file of that release still opens and reads the same.

const (
	schema1From = "imaps://src.example.org:993"
	schema1To   = "imaps://dst.example.org:993"
)

var schema1Accounts = map[string]ledger.Account{
	"alice\x00alice@example.com":                          {Source: "alice", Dest: "alice@example.com", State: ledger.AccountCopied, Run: 1},
	"bob\x00bob@example.com":                              {Source: "bob", Dest: "bob@example.com", State: ledger.AccountFailed, Reason: "NO [OVERQUOTA] mailbox is full", Run: 1},
	ledger.ReverseAccountID("alice\x00alice@example.com"): {Source: "alice@example.com", Dest: "alice", State: ledger.AccountCopying, Run: 2},
}

var schema1Mailboxes = map[string]ledger.MailboxRecord{
	"INBOX": {Source: "INBOX", Dest: "INBOX", SrcValidity: 7, DstValidity: 9, DstBaseline: 3, CutoverUIDNext: 400, CutoverModSeq: 12345},
	"Sent": {Source: "Sent", Dest: "Sent Items", Role: `\Sent`, SrcValidity: 8, DstValidity: 10, Created: true,
		Unsettled: []ledger.Unsettled{{UIDValidity: 10, UIDNext: 2}}},
}

var schema1Dest = map[string]ledger.DestMailbox{
	"INBOX":      {UIDValidity: 9, UIDNext: 3},
	"Sent Items": {UIDValidity: 10, UIDNext: 1},
	"Archive":    {UIDValidity: 11, UIDNext: 42},
}

// schema1Records are alice's INBOX records: enough for several pages.
func schema1Records() []ledger.Record {
	var out []ledger.Record
	for i := range uint32(600) {
		r := ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: i + 1}, Status: ledger.StatusCopied, DstValidity: 9, DstUID: i + 3, DstUIDNext: 3,
			Size: int64(1000 + i), MessageID: fmt.Sprintf("<%d.msg@example.org>", i), Run: 1}
		r.Fingerprint[0], r.Fingerprint[1] = byte(i), byte(i>>8)
		switch i % 10 {
		case 3:
			r.Status, r.DstUID = ledger.StatusDuplicate, i+1000
		case 5:
			r.Status, r.DstUID, r.Reason = ledger.StatusFailed, 0, "NO [TOOBIG] message too large"
		case 7:
			r.Status, r.DstUID = ledger.StatusPending, 0
		case 9:
			r.Status = ledger.StatusRemoved
		}
		if i%50 == 0 {
			r.MessageID = ""
		}
		out = append(out, r)
	}
	return out
}

// schema1Deleted are keys written, then deleted, so that the file has free pages.
var schema1Deleted = []ledger.RecordKey{{SrcValidity: 7, SrcUID: 2}, {SrcValidity: 7, SrcUID: 4}, {SrcValidity: 7, SrcUID: 600}}

var schema1Sent = []ledger.Record{
	{RecordKey: ledger.RecordKey{SrcValidity: 8, SrcUID: 1}, Status: ledger.StatusCopied, DstValidity: 10, DstUID: 1, Size: 77, MessageID: "<s1@example.org>", Run: 1},
	{RecordKey: ledger.RecordKey{SrcValidity: 8, SrcUID: 2}, Status: ledger.StatusPending, DstValidity: 10, DstUIDNext: 2, Size: 78, MessageID: "<s2@example.org>", Run: 2},
}
