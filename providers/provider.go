// Package providers defines what mailferry needs from a mail store (an IMAP
// account, a directory of mbox files, an in-memory store for tests) and the
// error classes every adapter reports in.
//
// Mailbox names are canonical: UTF-8, '/'-separated, relative to the
// account's personal namespace, with the inbox always spelled "INBOX".
// Adapters translate to and from their native delimiter, namespace prefix and
// encoding, so the copier never sees them.
package providers

import (
	"context"
	"io"
	"strings"
	"time"
)

// UID identifies a message within one mailbox for as long as the mailbox's
// UIDValidity is unchanged.
type UID uint32

// Special-use roles (RFC 6154) as they appear in MailboxInfo.SpecialUse.
const (
	RoleAll     = `\All`
	RoleArchive = `\Archive`
	RoleDrafts  = `\Drafts`
	RoleFlagged = `\Flagged`
	// RoleImportant is RFC 8457's \Important, Gmail's "Important" view.
	RoleImportant = `\Important`
	RoleJunk      = `\Junk`
	RoleSent      = `\Sent`
	RoleTrash     = `\Trash`
)

// MailboxInfo describes a mailbox without opening it.
type MailboxInfo struct {
	Name        string // canonical name, see the package comment
	SpecialUse  string // one of the Role constants, or "" for none
	Subscribed  bool
	UIDValidity uint32 // 0 when unknown until the mailbox is opened
	UIDNext     uint32 // 0 when unknown
	Messages    int    // -1 when unknown
	// ModSeq is the mailbox's HIGHESTMODSEQ (IMAP CONDSTORE), which grows
	// with every change of a message's flags; 0 when unknown.
	ModSeq uint64
}

// Statuser is implemented by stores that tell a mailbox's UIDVALIDITY,
// UIDNEXT, message count and HIGHESTMODSEQ without opening it (IMAP
// STATUS); migrate notes them after a pass, and a later run that finds
// both sides as they were skips the mailbox.
type Statuser interface {
	Status(ctx context.Context, mailbox string) (MailboxInfo, error)
}

// MessageInfo is what List reports about a message; it never holds the body.
type MessageInfo struct {
	UID  UID
	Size int64 // exact size of the raw message in bytes
	// CRLFSize is the size with every bare LF counted as CRLF: what an IMAP
	// server that makes line ends CRLF stores and reports as RFC822.SIZE.
	// 0 when the store does not know it (then it is Size).
	CRLFSize     int64
	Flags        []string  // system flags and keywords, never \Recent
	InternalDate time.Time // the server's INTERNALDATE, zero if unknown
	Key          Key       // dedup identity, see Key
}

// Store is one account on one side of a migration.
//
// A Store may be used from several goroutines. Each Mailbox it returns is
// owned by one goroutine at a time.
type Store interface {
	// Mailboxes lists the selectable mailboxes of the account. Order is
	// unspecified.
	Mailboxes(ctx context.Context) ([]MailboxInfo, error)
	// Mailbox opens name read-only. It returns an error wrapping
	// ErrMailboxNotFound if the mailbox does not exist. The caller must
	// Close it.
	Mailbox(ctx context.Context, name string) (Mailbox, error)
	// CreateMailbox creates name with the given special-use role ("" for
	// none), creating missing parents. It returns an error wrapping
	// ErrMailboxExists if the mailbox already exists, so the caller knows
	// whether it made the mailbox itself.
	CreateMailbox(ctx context.Context, name, specialUse string) error
	// Close releases every connection of the store.
	Close() error
}

// Mailbox is one open mailbox. Opening never changes it: no flag, no \Recent,
// no \Seen is altered by reading.
type Mailbox interface {
	// Info reports the mailbox as it was when opened.
	Info() MailboxInfo
	// UIDs returns the UIDs of all messages in ascending order. It is the
	// cheap call a re-run uses to see that nothing is new.
	UIDs(ctx context.Context) ([]UID, error)
	// List calls fn once per message among uids (all messages when uids is
	// nil) in ascending UID order. Messages that no longer exist are left
	// out. It stops at and returns the first error from fn or the store.
	List(ctx context.Context, uids []UID, fn func(MessageInfo) error) error
	// Fetch streams the raw bytes of the messages among uids in ascending UID
	// order. body is valid only during the call of fn and holds exactly size
	// bytes. Messages that no longer exist are left out.
	Fetch(ctx context.Context, uids []UID, fn func(uid UID, size int64, body io.Reader) error) error
	// Append stores size bytes read from r as a new message with the flags
	// and internal date of info. It returns once the bytes are handed to the
	// store. done is then called exactly once, possibly later and from another
	// goroutine, with the new message's UID (0 if the store did not report
	// one) or the store's refusal. The message is stored only when done gets
	// a nil error. If Append itself returns an error, done is never called.
	Append(ctx context.Context, r io.Reader, size int64, info MessageInfo, done func(UID, error)) error
	// Flush waits until done has been called for every Append so far and
	// returns the first error that broke the connection, if any.
	Flush(ctx context.Context) error
	// Close flushes and releases the mailbox.
	Close() error
}

// Remover is implemented by stores that can delete messages they hold; undo
// uses it. Remove deletes exactly uids from mailbox, and only if the
// mailbox's UIDValidity is still uidValidity.
type Remover interface {
	Remove(ctx context.Context, mailbox string, uidValidity uint32, uids []UID) error
}

// MailboxDeleter is implemented by stores that can delete a mailbox; undo
// removes the mailboxes mailferry created once they are empty again.
type MailboxDeleter interface {
	DeleteMailbox(ctx context.Context, name string) error
}

// FlagSetter is implemented by stores whose messages' flags can be
// changed; reverse carries flag changes back with it. SetFlags replaces the
// flags of each message in flags with exactly the given set, and only if
// the mailbox's UIDValidity is still uidValidity.
type FlagSetter interface {
	SetFlags(ctx context.Context, mailbox string, uidValidity uint32, flags map[UID][]string) error
}

// FlagLister is implemented by mailboxes that can list flags alone, much
// more cheaply than List; flag synchronisation uses it when it can.
type FlagLister interface {
	// Flags calls fn with the flags of each message among uids (all when
	// nil), in ascending UID order.
	Flags(ctx context.Context, uids []UID, fn func(UID, []string) error) error
}

// Subscriber is implemented by stores with subscriptions.
type Subscriber interface {
	Subscribe(ctx context.Context, name string) error
}

// Warner is implemented by stores that read files they may find malformed
// (a directory of mbox files): what could not be read as expected is
// skipped or worked around, the rest is imported, and Warnings says what.
// Each warning is one line naming the file and the place in it (line,
// byte offset) with a short description; it never holds message bytes or
// credentials. migrate lists them in the account's summary.
type Warner interface {
	Warnings() []string
}

// Doubter is implemented by stores whose reading of a mailbox can leave its
// message count in doubt: an mbox file holds lines that another reader may
// take as the start of a message, or Content-Length fields that split it
// otherwise. Doubts returns why, one line each like a warning, for the
// mailbox as last opened; none means the count is certain. migrate ends such
// a mailbox as "warn", never "ok".
type Doubter interface {
	Doubts(mailbox string) []string
}

// AppendLimiter is implemented by stores that know the largest message
// they take (IMAP APPENDLIMIT, RFC 7889, or a cloud's documented limit).
type AppendLimiter interface {
	// AppendLimit is the size in bytes above which an Append is refused,
	// 0 when unknown.
	AppendLimit() int64
}

// roleNames are the special-use roles of top-level mailboxes as mail
// clients and servers name them.
var roleNames = map[string]string{
	"sent": RoleSent, "sent items": RoleSent, "sent messages": RoleSent, "sent mail": RoleSent,
	"drafts": RoleDrafts,
	"trash":  RoleTrash, "deleted items": RoleTrash, "deleted messages": RoleTrash, "bin": RoleTrash,
	"junk": RoleJunk, "spam": RoleJunk, "junk e-mail": RoleJunk, "junk email": RoleJunk,
	"archive": RoleArchive, "archives": RoleArchive,
}

// RoleByName guesses the special-use role of a mailbox (canonical name)
// from its name, for stores that cannot record roles (mbox, maildir) and
// servers that do not report them (IMAP without SPECIAL-USE): "Sent
// Items" is \Sent. Only top-level mailboxes have one; "" for none.
func RoleByName(name string) string {
	if strings.Contains(name, "/") {
		return ""
	}
	return roleNames[strings.ToLower(name)]
}
