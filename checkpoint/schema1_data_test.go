package checkpoint

import "fmt"

// The contents of testdata/schema1.ckpt, a checkpoint written by the code of
// commit 1d0bc06 (schema version 1, no checksums), so that tests can tell
// that a file of that release still opens and reads the same.

const (
	schema1From = "imaps://src.example.org:993"
	schema1To   = "imaps://dst.example.org:993"
)

var schema1Accounts = map[string]Account{
	"alice\x00alice@example.com":                   {Source: "alice", Dest: "alice@example.com", State: AccountCopied, Run: 1},
	"bob\x00bob@example.com":                       {Source: "bob", Dest: "bob@example.com", State: AccountFailed, Reason: "NO [OVERQUOTA] mailbox is full", Run: 1},
	ReverseAccountID("alice\x00alice@example.com"): {Source: "alice@example.com", Dest: "alice", State: AccountCopying, Run: 2},
}

var schema1Mailboxes = map[string]MailboxRecord{
	"INBOX": {Source: "INBOX", Dest: "INBOX", SrcValidity: 7, DstValidity: 9, DstBaseline: 3, CutoverUIDNext: 400, CutoverModSeq: 12345},
	"Sent": {Source: "Sent", Dest: "Sent Items", Role: `\Sent`, SrcValidity: 8, DstValidity: 10, Created: true,
		Unsettled: []Unsettled{{UIDValidity: 10, UIDNext: 2}}},
}

var schema1Dest = map[string]DestMailbox{
	"INBOX":      {UIDValidity: 9, UIDNext: 3},
	"Sent Items": {UIDValidity: 10, UIDNext: 1},
	"Archive":    {UIDValidity: 11, UIDNext: 42},
}

// schema1Records are alice's INBOX records: enough for several pages.
func schema1Records() []Record {
	var out []Record
	for i := range uint32(600) {
		r := Record{RecordKey: RecordKey{7, i + 1}, Status: StatusCopied, DstValidity: 9, DstUID: i + 3, DstUIDNext: 3,
			Size: int64(1000 + i), MessageID: fmt.Sprintf("<%d.msg@example.org>", i), Run: 1}
		r.Fingerprint[0], r.Fingerprint[1] = byte(i), byte(i>>8)
		switch i % 10 {
		case 3:
			r.Status, r.DstUID = StatusDuplicate, i+1000
		case 5:
			r.Status, r.DstUID, r.Reason = StatusFailed, 0, "NO [TOOBIG] message too large"
		case 7:
			r.Status, r.DstUID = StatusPending, 0
		case 9:
			r.Status = StatusRemoved
		}
		if i%50 == 0 {
			r.MessageID = ""
		}
		out = append(out, r)
	}
	return out
}

// schema1Deleted are keys written, then deleted, so that the file has free pages.
var schema1Deleted = []RecordKey{{7, 2}, {7, 4}, {7, 600}}

var schema1Sent = []Record{
	{RecordKey: RecordKey{8, 1}, Status: StatusCopied, DstValidity: 10, DstUID: 1, Size: 77, MessageID: "<s1@example.org>", Run: 1},
	{RecordKey: RecordKey{8, 2}, Status: StatusPending, DstValidity: 10, DstUIDNext: 2, Size: 78, MessageID: "<s2@example.org>", Run: 2},
}
