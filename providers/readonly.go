package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// ErrReadOnly is wrapped by every write a ReadOnly or DryRun store turns
// away: nothing was written. ErrDryRun is wrapped, in addition, by those
// of a DryRun store, whose callers count them as what the run would do.
var (
	ErrReadOnly = errors.New("read-only store")
	ErrDryRun   = errors.New("dry run")
)

// Wrapper is implemented by stores and mailboxes that wrap another
// (ReadOnly, DryRun). A wrapper answers for its optional abilities itself,
// instead of by its method set, so that it can offer exactly what the
// wrapped value has, guarded as it sees fit: Ability sets *target (a
// pointer to an ability interface, such as *Remover) and reports whether
// the ability is there. Use As rather than a type assertion on a value
// that may be a wrapper.
type Wrapper interface {
	Ability(target any) bool
}

// As finds the optional ability T (Remover, Statuser, FlagLister, …) of a
// store or mailbox, looking through wrappers (as errors.As does through
// wrapped errors). A type assertion on a wrapper finds no ability.
func As[T any](v any) (T, bool) {
	if t, ok := v.(T); ok {
		return t, true
	}
	var t T
	if w, ok := v.(Wrapper); ok && w.Ability(&t) {
		return t, true
	}
	return t, false
}

// pass offers the ability of inner named by target, as it is.
func pass[T any](inner, target any) bool {
	p, ok := target.(*T)
	if !ok {
		return false
	}
	t, ok := As[T](inner)
	if ok {
		*p = t
	}
	return ok
}

// guard offers the ability of inner named by target as g, if inner has it.
func guard[T any](inner, target any, g T) bool {
	p, ok := target.(*T)
	if !ok {
		return false
	}
	if _, ok := As[T](inner); !ok {
		return false
	}
	*p = g
	return true
}

// WriteRefused is the error of a write a ReadOnly or DryRun store did not
// make: it wraps ErrReadOnly, and ErrDryRun when the store is a DryRun.
type WriteRefused struct {
	Op      string // "append", "create", "set flags", "remove", "delete", "move", "subscribe"
	Mailbox string
	N       int   // messages concerned (append: 1; remove, move, set flags: how many)
	Bytes   int64 // of an append
	dry     bool
}

func (e *WriteRefused) Error() string {
	what := e.Op
	if e.Mailbox != "" {
		what += fmt.Sprintf(" %q", e.Mailbox)
	}
	if e.dry {
		return "dry run: would " + what
	}
	return "read-only store: refused " + what
}

func (e *WriteRefused) Is(target error) bool {
	return target == ErrReadOnly || (e.dry && target == ErrDryRun)
}

// DryRunCounts are the writes a DryRun store turned away, by kind.
type DryRunCounts struct {
	Creates, Appends, FlagSets, Removes, Deletes, Moves, Subscribes int
	AppendBytes                                                     int64
}

// guarded is ReadOnly's and DryRun's store.
type guarded struct {
	inner Store
	dry   bool

	mu      sync.Mutex
	created map[string]MailboxInfo // DryRun: mailboxes it would have made
	counts  DryRunCounts
}

// ReadOnly wraps s so that nothing can be written through it: reads go to
// s, every write (CreateMailbox of a mailbox that is not there, Append,
// and the optional Remover,
// MailboxDeleter, FlagSetter, Mover, Subscriber) returns a *WriteRefused
// wrapping ErrReadOnly, of class ClassAccount (a write to a side that must
// not change is a bug, which stops the account pair). The optional
// abilities are those of s, found with As.
func ReadOnly(s Store) Store { return &guarded{inner: s} }

// DryRun wraps s for a dry run, so that a dry run is a property of the
// store and not of its caller: reads go to s, and every write is turned
// away with a *WriteRefused wrapping ErrDryRun (and ErrReadOnly) of class
// ClassMessage, which the caller counts as what the run would do. A
// mailbox CreateMailbox would have made (it did not exist) then reads as
// there and empty, so that the run goes on planning as it would; appends,
// flags and removals leave the reads unchanged. Counts reports the
// writes turned away.
func DryRun(s Store) *DryRunStore { return &DryRunStore{guarded{inner: s, dry: true}} }

// DryRunStore is a Store made by DryRun.
type DryRunStore struct{ guarded }

// Counts reports the writes turned away so far.
func (d *DryRunStore) Counts() DryRunCounts {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts
}

var (
	_ Store   = (*guarded)(nil)
	_ Wrapper = (*guarded)(nil)
	_ Store   = (*DryRunStore)(nil)
)

// refuse makes the error of a write turned away, and counts it.
func (g *guarded) refuse(op, mailbox string, n int, bytes int64) error {
	g.mu.Lock()
	c := &g.counts
	switch op {
	case "create":
		c.Creates++
	case "append":
		c.Appends++
		c.AppendBytes += bytes
	case "set flags":
		c.FlagSets += n
	case "remove":
		c.Removes += n
	case "delete":
		c.Deletes++
	case "move":
		c.Moves += n
	case "subscribe":
		c.Subscribes++
	}
	g.mu.Unlock()
	err := &WriteRefused{Op: op, Mailbox: mailbox, N: n, Bytes: bytes, dry: g.dry}
	if g.dry {
		return WithClass(ClassMessage, err)
	}
	return WithClass(ClassAccount, err)
}

// Unwrap returns the wrapped store.
func (g *guarded) Unwrap() Store { return g.inner }

func (g *guarded) Mailboxes(ctx context.Context) ([]MailboxInfo, error) {
	list, err := g.inner.Mailboxes(ctx)
	if err != nil || !g.dry {
		return list, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, info := range g.created {
		if !slices.ContainsFunc(list, func(m MailboxInfo) bool { return m.Name == info.Name }) {
			list = append(list, info)
		}
	}
	return list, nil
}

func (g *guarded) Mailbox(ctx context.Context, name string) (Mailbox, error) {
	mb, err := g.inner.Mailbox(ctx, name)
	if err == nil {
		return &guardedMailbox{g: g, inner: mb}, nil
	}
	if g.dry && errors.Is(err, ErrMailboxNotFound) {
		g.mu.Lock()
		info, ok := g.created[canonicalName(name)]
		g.mu.Unlock()
		if ok {
			return &guardedMailbox{g: g, inner: emptyMailbox{info}}, nil
		}
	}
	return nil, err
}

func (g *guarded) CreateMailbox(ctx context.Context, name, specialUse string) error {
	// As the store would: ErrMailboxExists if it is there, which
	// writes nothing.
	list, err := g.Mailboxes(ctx)
	if err != nil {
		return err
	}
	key := canonicalName(name)
	if slices.ContainsFunc(list, func(m MailboxInfo) bool { return canonicalName(m.Name) == key }) {
		return fmt.Errorf("%q: %w", name, ErrMailboxExists)
	}
	if g.dry {
		g.mu.Lock()
		if g.created == nil {
			g.created = map[string]MailboxInfo{}
		}
		g.created[key] = MailboxInfo{Name: name, SpecialUse: specialUse}
		g.mu.Unlock()
	}
	return g.refuse("create", name, 0, 0)
}

func (g *guarded) Close() error { return g.inner.Close() }

// Ability offers the read abilities of the wrapped store as they are and
// its write abilities guarded.
func (g *guarded) Ability(target any) bool {
	in := g.inner
	return pass[Statuser](in, target) || pass[ChangeTracker](in, target) || pass[AppendLimiter](in, target) ||
		pass[MailboxSizer](in, target) || pass[QuotaReporter](in, target) || pass[NameMapper](in, target) ||
		pass[Warner](in, target) || pass[Doubter](in, target) ||
		guard[Remover](in, target, guardedWrites{g}) || guard[MailboxDeleter](in, target, guardedWrites{g}) ||
		guard[FlagSetter](in, target, guardedWrites{g}) || guard[Mover](in, target, guardedWrites{g}) ||
		guard[Subscriber](in, target, guardedWrites{g})
}

// guardedWrites are the optional writes of a guarded store, all turned
// away.
type guardedWrites struct{ g *guarded }

func (w guardedWrites) Remove(ctx context.Context, mailbox string, uidValidity uint32, uids []UID) error {
	return w.g.refuse("remove", mailbox, len(uids), 0)
}

func (w guardedWrites) DeleteMailbox(ctx context.Context, name string) error {
	return w.g.refuse("delete", name, 0, 0)
}

func (w guardedWrites) SetFlags(ctx context.Context, mailbox string, uidValidity uint32, flags map[UID][]string) error {
	return w.g.refuse("set flags", mailbox, len(flags), 0)
}

func (w guardedWrites) Move(ctx context.Context, from string, uidValidity uint32, uids []UID, to string) (map[UID]UID, error) {
	return nil, w.g.refuse("move", from, len(uids), 0)
}

func (w guardedWrites) Subscribe(ctx context.Context, name string) error {
	return w.g.refuse("subscribe", name, 0, 0)
}

// guardedMailbox is a mailbox of a guarded store: Append is turned away.
type guardedMailbox struct {
	g     *guarded
	inner Mailbox
}

var (
	_ Mailbox = (*guardedMailbox)(nil)
	_ Wrapper = (*guardedMailbox)(nil)
)

func (m *guardedMailbox) Info() MailboxInfo                       { return m.inner.Info() }
func (m *guardedMailbox) UIDs(ctx context.Context) ([]UID, error) { return m.inner.UIDs(ctx) }
func (m *guardedMailbox) List(ctx context.Context, uids []UID, fn func(MessageInfo) error) error {
	return m.inner.List(ctx, uids, fn)
}
func (m *guardedMailbox) Fetch(ctx context.Context, uids []UID, fn func(UID, int64, io.Reader) error) error {
	return m.inner.Fetch(ctx, uids, fn)
}

// Append reads nothing from r and stores nothing: it returns the refusal
// at once, and done is never called (the contract for an Append that
// returns an error).
func (m *guardedMailbox) Append(ctx context.Context, r io.Reader, size int64, info MessageInfo, done func(UID, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.g.refuse("append", m.inner.Info().Name, 1, size)
}

func (m *guardedMailbox) Flush(ctx context.Context) error { return m.inner.Flush(ctx) }
func (m *guardedMailbox) Close() error                    { return m.inner.Close() }

// Ability offers the wrapped mailbox's read abilities.
func (m *guardedMailbox) Ability(target any) bool {
	return pass[FlagLister](m.inner, target) || pass[Searcher](m.inner, target)
}

// emptyMailbox is a mailbox a DryRun store would have created.
type emptyMailbox struct{ info MailboxInfo }

func (e emptyMailbox) Info() MailboxInfo                     { return e.info }
func (emptyMailbox) UIDs(ctx context.Context) ([]UID, error) { return nil, ctx.Err() }
func (emptyMailbox) List(ctx context.Context, _ []UID, _ func(MessageInfo) error) error {
	return ctx.Err()
}
func (emptyMailbox) Fetch(ctx context.Context, _ []UID, _ func(UID, int64, io.Reader) error) error {
	return ctx.Err()
}
func (emptyMailbox) Append(context.Context, io.Reader, int64, MessageInfo, func(UID, error)) error {
	return errors.New("emptyMailbox: Append is the guard's")
}
func (emptyMailbox) Flush(ctx context.Context) error { return nil }
func (emptyMailbox) Close() error                    { return nil }

// canonicalName spells INBOX the one way (it is case-insensitive, RFC
// 3501 section 5.1), to compare mailbox names.
func canonicalName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}
