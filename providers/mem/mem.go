// Package mem is an in-memory providers.Store for fast tests of the copier,
// with hooks to inject failures at chosen points.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// Message is one stored message.
type Message struct {
	UID          providers.UID
	Raw          []byte
	Flags        []string
	InternalDate time.Time
}

type mailbox struct {
	role        string
	subscribed  bool
	uidValidity uint32
	uidNext     uint32
	msgs        []Message // ascending UID
	// changes counts every change of the mailbox, as CONDSTORE's
	// HIGHESTMODSEQ does (reported one higher, so never 0).
	changes uint64
}

// Store is an in-memory account. The zero value is not usable; use New.
type Store struct {
	// AppendHook, if set, runs before each Append is stored; a non-nil error
	// refuses the message with that error. It is called without the lock.
	AppendHook func(mailbox string, raw []byte) error
	// StoredHook, if set, runs after a message is stored; a non-nil error is
	// returned from Append as if the server's reply had been lost, so the
	// caller does not know the message arrived.
	StoredHook func(mailbox string, uid providers.UID) error
	// OpenHook, if set, is called with the name of each mailbox opened.
	OpenHook func(mailbox string)
	// NoAppendUID confirms appends without their UID, as a server without
	// UIDPLUS does.
	NoAppendUID bool
	// Normalize, if set, rewrites each appended message before it is
	// stored, as servers that normalise line ends do.
	Normalize func(raw []byte) []byte

	mu           sync.Mutex
	boxes        map[string]*mailbox
	nextValidity uint32
	appends      int
}

var (
	_ providers.Store          = (*Store)(nil)
	_ providers.Remover        = (*Store)(nil)
	_ providers.Subscriber     = (*Store)(nil)
	_ providers.FlagSetter     = (*Store)(nil)
	_ providers.MailboxDeleter = (*Store)(nil)
	_ providers.Mover          = (*Store)(nil)
)

// New returns a store holding an empty INBOX.
func New() *Store {
	s := &Store{boxes: map[string]*mailbox{}, nextValidity: 1000}
	s.createLocked("INBOX", "")
	return s
}

func (s *Store) createLocked(name, role string) *mailbox {
	s.nextValidity++
	b := &mailbox{role: role, uidValidity: s.nextValidity, uidNext: 1}
	s.boxes[name] = b
	return b
}

// Put stores a message directly (test setup) and returns its UID.
func (s *Store) Put(name string, raw []byte, flags []string, date time.Time) providers.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	if b == nil {
		b = s.createLocked(name, "")
	}
	return b.addLocked(raw, flags, date)
}

func (b *mailbox) addLocked(raw []byte, flags []string, date time.Time) providers.UID {
	uid := providers.UID(b.uidNext)
	b.uidNext++
	b.changes++
	b.msgs = append(b.msgs, Message{UID: uid, Raw: bytes.Clone(raw), Flags: slices.Clone(flags), InternalDate: date})
	return uid
}

// SetRole gives a mailbox a special-use role, creating it if needed.
func (s *Store) SetRole(name, role string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.boxes[name]; b != nil {
		b.role = role
		return
	}
	s.createLocked(name, role)
}

// Recreate gives a mailbox a new UIDVALIDITY and renumbers its messages, as
// a server does when it rebuilds its index.
func (s *Store) Recreate(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	s.nextValidity++
	b.uidValidity = s.nextValidity
	for i := range b.msgs {
		b.msgs[i].UID = providers.UID(100 + i)
	}
	b.uidNext = uint32(100 + len(b.msgs))
	b.changes++
}

// Delete removes message uid from a mailbox (a user deleting mail).
func (s *Store) Delete(name string, uid providers.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	b.msgs = slices.DeleteFunc(b.msgs, func(m Message) bool { return m.UID == uid })
	b.changes++
}

// Replace changes the bytes of message uid in place, keeping its UID: a
// server corrupting mail, for tests of verification.
func (s *Store) Replace(name string, uid providers.UID, raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.boxes[name].msgs {
		if m.UID == uid {
			s.boxes[name].msgs[i].Raw = bytes.Clone(raw)
		}
	}
}

// Messages returns a copy of the messages of a mailbox in UID order.
func (s *Store) Messages(name string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	if b == nil {
		return nil
	}
	out := make([]Message, len(b.msgs))
	for i, m := range b.msgs {
		out[i] = Message{UID: m.UID, Raw: bytes.Clone(m.Raw), Flags: slices.Clone(m.Flags), InternalDate: m.InternalDate}
	}
	return out
}

// Names returns the mailbox names in order.
func (s *Store) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.boxes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Appends counts the messages stored through Append.
func (s *Store) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// Subscribed reports whether name is subscribed.
func (s *Store) Subscribed(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	return b != nil && b.subscribed
}

func (s *Store) infoLocked(name string, b *mailbox) providers.MailboxInfo {
	return providers.MailboxInfo{Name: name, SpecialUse: b.role, Subscribed: b.subscribed,
		UIDValidity: b.uidValidity, UIDNext: b.uidNext, Messages: len(b.msgs), ModSeq: b.changes + 1}
}

var _ providers.Statuser = (*Store)(nil)

// Status implements providers.Statuser.
func (s *Store) Status(ctx context.Context, name string) (providers.MailboxInfo, error) {
	if err := ctx.Err(); err != nil {
		return providers.MailboxInfo{}, err
	}
	name = canonicalInbox(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	if b == nil {
		return providers.MailboxInfo{}, fmt.Errorf("status %q: %w", name, providers.ErrMailboxNotFound)
	}
	return s.infoLocked(name, b), nil
}

// Mailboxes implements providers.Store.
func (s *Store) Mailboxes(ctx context.Context) ([]providers.MailboxInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []providers.MailboxInfo
	for name, b := range s.boxes {
		out = append(out, s.infoLocked(name, b))
	}
	return out, nil
}

// Mailbox implements providers.Store.
func (s *Store) Mailbox(ctx context.Context, name string) (providers.Mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name = canonicalInbox(name)
	if s.OpenHook != nil {
		s.OpenHook(name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	if b == nil {
		return nil, fmt.Errorf("open %q: %w", name, providers.ErrMailboxNotFound)
	}
	return &handle{s: s, name: name, info: s.infoLocked(name, b)}, nil
}

// CreateMailbox implements providers.Store.
func (s *Store) CreateMailbox(ctx context.Context, name, role string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name = canonicalInbox(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.boxes[name] != nil {
		return fmt.Errorf("create %q: %w", name, providers.ErrMailboxExists)
	}
	s.createLocked(name, role)
	return nil
}

// Subscribe implements providers.Subscriber.
func (s *Store) Subscribe(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	if b == nil {
		return fmt.Errorf("subscribe %q: %w", name, providers.ErrMailboxNotFound)
	}
	b.subscribed = true
	return nil
}

// SetSubscribed marks a mailbox subscribed (test setup).
func (s *Store) SetSubscribed(name string) { _ = s.Subscribe(context.Background(), name) }

// Remove implements providers.Remover.
func (s *Store) Remove(ctx context.Context, name string, uidValidity uint32, uids []providers.UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[name]
	if b == nil {
		return fmt.Errorf("remove from %q: %w", name, providers.ErrMailboxNotFound)
	}
	if b.uidValidity != uidValidity {
		return fmt.Errorf("remove from %q: %w", name, providers.ErrUIDValidityChanged)
	}
	b.msgs = slices.DeleteFunc(b.msgs, func(m Message) bool { return slices.Contains(uids, m.UID) })
	b.changes++
	return nil
}

// Move implements providers.Mover.
func (s *Store) Move(ctx context.Context, from string, uidValidity uint32, uids []providers.UID, to string) (map[providers.UID]providers.UID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src, dst := s.boxes[canonicalInbox(from)], s.boxes[canonicalInbox(to)]
	switch {
	case src == nil:
		return nil, fmt.Errorf("move from %q: %w", from, providers.ErrMailboxNotFound)
	case dst == nil:
		return nil, fmt.Errorf("move to %q: %w", to, providers.ErrMailboxNotFound)
	case src.uidValidity != uidValidity:
		return nil, fmt.Errorf("move from %q: %w", from, providers.ErrUIDValidityChanged)
	}
	moved := map[providers.UID]providers.UID{}
	src.msgs = slices.DeleteFunc(src.msgs, func(m Message) bool {
		if !slices.Contains(uids, m.UID) {
			return false
		}
		moved[m.UID] = dst.addLocked(m.Raw, m.Flags, m.InternalDate)
		return true
	})
	src.changes++
	return moved, nil
}

// canonicalInbox spells INBOX the one way: it is case-insensitive (RFC 3501
// section 5.1).
func canonicalInbox(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// SetFlags implements providers.FlagSetter.
func (s *Store) SetFlags(ctx context.Context, name string, uidValidity uint32, flags map[providers.UID][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[canonicalInbox(name)]
	if b == nil {
		return fmt.Errorf("set flags in %q: %w", name, providers.ErrMailboxNotFound)
	}
	if b.uidValidity != uidValidity {
		return fmt.Errorf("set flags in %q: %w", name, providers.ErrUIDValidityChanged)
	}
	for i, m := range b.msgs {
		if f, ok := flags[m.UID]; ok {
			b.msgs[i].Flags = slices.Clone(f)
		}
	}
	b.changes++
	return nil
}

// SetMessageFlags changes one message's flags (a user reading mail).
func (s *Store) SetMessageFlags(name string, uid providers.UID, flags []string) {
	s.mu.Lock()
	b := s.boxes[name]
	v := b.uidValidity
	s.mu.Unlock()
	_ = s.SetFlags(context.Background(), name, v, map[providers.UID][]string{uid: flags})
}

// DeleteMailbox implements providers.MailboxDeleter.
func (s *Store) DeleteMailbox(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = canonicalInbox(name)
	if s.boxes[name] == nil {
		return fmt.Errorf("delete %q: %w", name, providers.ErrMailboxNotFound)
	}
	delete(s.boxes, name)
	return nil
}

// Close implements providers.Store.
func (s *Store) Close() error { return nil }

type handle struct {
	s    *Store
	name string
	info providers.MailboxInfo
}

func (h *handle) Info() providers.MailboxInfo { return h.info }

func (h *handle) snapshot(uids []providers.UID) ([]Message, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	b := h.s.boxes[h.name]
	if b == nil {
		return nil, fmt.Errorf("mailbox %q: %w", h.name, providers.ErrMailboxNotFound)
	}
	if b.uidValidity != h.info.UIDValidity {
		return nil, fmt.Errorf("mailbox %q: %w", h.name, providers.ErrUIDValidityChanged)
	}
	var out []Message
	for _, m := range b.msgs {
		if uids == nil || slices.Contains(uids, m.UID) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (h *handle) UIDs(ctx context.Context) ([]providers.UID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	msgs, err := h.snapshot(nil)
	var out []providers.UID
	for _, m := range msgs {
		out = append(out, m.UID)
	}
	return out, err
}

func (h *handle) List(ctx context.Context, uids []providers.UID, fn func(providers.MessageInfo) error) error {
	msgs, err := h.snapshot(uids)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		info := providers.MessageInfo{UID: m.UID, Size: int64(len(m.Raw)), Flags: slices.Clone(m.Flags),
			InternalDate: m.InternalDate, Key: providers.KeyOf(m.Raw)}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (h *handle) Flags(ctx context.Context, uids []providers.UID, fn func(providers.UID, []string) error) error {
	msgs, err := h.snapshot(uids)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := fn(m.UID, slices.Clone(m.Flags)); err != nil {
			return err
		}
	}
	return nil
}

func (h *handle) Fetch(ctx context.Context, uids []providers.UID, fn func(providers.UID, int64, io.Reader) error) error {
	msgs, err := h.snapshot(uids)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(m.UID, int64(len(m.Raw)), bytes.NewReader(m.Raw)); err != nil {
			return err
		}
	}
	return nil
}

func (h *handle) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("append to %q: %w", h.name, err)
	}
	if int64(len(raw)) != size {
		return fmt.Errorf("append to %q: got %d bytes, want %d", h.name, len(raw), size)
	}
	if hook := h.s.AppendHook; hook != nil {
		if err := hook(h.name, raw); err != nil {
			if providers.ClassOf(err) == providers.ClassMessage {
				done(0, err)
				return nil
			}
			return err
		}
	}
	h.s.mu.Lock()
	b := h.s.boxes[h.name]
	if b == nil {
		h.s.mu.Unlock()
		done(0, fmt.Errorf("append to %q: %w", h.name, providers.ErrMailboxNotFound))
		return nil
	}
	flags := providers.AppendFlags(info.Flags)
	if h.s.Normalize != nil {
		raw = h.s.Normalize(raw)
	}
	uid := b.addLocked(raw, flags, info.InternalDate)
	h.s.appends++
	h.s.mu.Unlock()
	if hook := h.s.StoredHook; hook != nil {
		if err := hook(h.name, uid); err != nil {
			return err
		}
	}
	if h.s.NoAppendUID {
		uid = 0
	}
	done(uid, nil)
	return nil
}

func (h *handle) Flush(ctx context.Context) error { return nil }
func (h *handle) Close() error                    { return nil }
