package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/providers"
)

// Config says how to reach and log in to one account.
type Config struct {
	Endpoint Endpoint
	// TLS overrides certificate checks (CA file, skip-verify); nil verifies
	// against the system roots with the endpoint's host name.
	TLS      *tls.Config
	User     string           // the account
	Admin    string           // if set, log in as Admin acting as User
	Password providers.Secret // User's password, or Admin's when Admin is set
	// Token, if set, logs in as User with an OAuth 2.0 bearer token
	// instead of a password, by OAuthMech (OAuthAuto picks what the server
	// offers). A refused token is replaced once per connection.
	Token     providers.TokenSource
	OAuthMech string
	// AppendLimit is the largest message the server takes, if known
	// beyond its own APPENDLIMIT (a cloud's documented limit); 0: none.
	AppendLimit int64
	// MaxConns caps this account's connections (default 8).
	MaxConns int
	// Host, if set, is shared by every Store of the same server: it caps
	// their connections and backs them all off when the server throttles.
	Host *providers.HostLimiter
	// Timeout closes a connection on which an operation made no progress
	// for this long (default 2 min). DialTimeout bounds connecting
	// (default 30 s).
	Timeout     time.Duration
	DialTimeout time.Duration
	// PipelineDepth bounds the APPENDs awaiting a reply per connection
	// (default 64).
	PipelineDepth int
	// NoMultiAppend sends one APPEND per message even where the server
	// offers MULTIAPPEND and LITERAL+ (see multiappend.go).
	NoMultiAppend bool
}

// Store is one IMAP account. It keeps a small pool of logged-in connections.
type Store struct {
	cfg   Config
	ns    namespace
	caps  goimap.CapSet
	slots chan struct{} // one per connection allowed
	// buffers holds copy buffers for APPEND, so streaming a message does
	// not allocate.
	buffers sync.Pool

	mu           sync.Mutex
	idle         []*conn
	closed       bool
	singleAppend map[string]bool // mailboxes where a MULTIAPPEND was refused
	groupMax     map[string]int  // MULTIAPPEND groups made smaller, by mailbox
	subs         map[string]bool // subscriptions (native names) where LIST cannot tell, see lsub

	// statusFirst: the server leaves UIDNEXT or UIDVALIDITY out of
	// SELECT, so STATUS asks first (see examine).
	statusFirst atomic.Bool
}

var (
	_ providers.Store          = (*Store)(nil)
	_ providers.Remover        = (*Store)(nil)
	_ providers.Subscriber     = (*Store)(nil)
	_ providers.FlagSetter     = (*Store)(nil)
	_ providers.MailboxDeleter = (*Store)(nil)
	_ providers.Mover          = (*Store)(nil)
	_ providers.ChangeTracker  = (*Store)(nil)
	_ providers.AppendLimiter  = (*Store)(nil)
)

// AppendLimit is the smaller of the server's APPENDLIMIT and the
// configured limit; 0 when neither is known.
func (s *Store) AppendLimit() int64 {
	limit := s.cfg.AppendLimit
	if l, ok := s.caps.AppendLimit(); ok && l != nil && *l > 0 && (limit <= 0 || int64(*l) < limit) {
		limit = int64(*l)
	}
	return limit
}

// Open logs in once, so that wrong credentials fail here, and learns the
// server's capabilities and namespace.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if cfg.PipelineDepth <= 0 {
		cfg.PipelineDepth = 64
	}
	s := &Store{cfg: cfg, slots: make(chan struct{}, cfg.MaxConns)}
	s.buffers.New = func() any { b := make([]byte, 32<<10); return &b }
	cn, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	s.caps = cn.c.Caps()
	if err := cn.do(ctx, func() error { return s.learnNamespace(cn) }); err != nil {
		s.put(cn, err)
		s.Close() // a connection pooled by put would hold its host slot for good
		return nil, fmt.Errorf("%s: %w", cfg.Endpoint.Addr(), classify(err, opOther))
	}
	if cfg.Host != nil {
		cfg.Host.Register(s)
	}
	s.put(cn, nil)
	return s, nil
}

func (s *Store) learnNamespace(cn *conn) error {
	if s.caps.Has(goimap.CapNamespace) {
		nsd, err := cn.c.Namespace().Wait()
		if err != nil {
			return err
		}
		if len(nsd.Personal) > 0 {
			s.ns = namespace{prefix: nsd.Personal[0].Prefix, delim: nsd.Personal[0].Delim}
			return nil
		}
	}
	// Without NAMESPACE, the delimiter of the root tells.
	l, err := cn.c.List("", "", nil).Collect()
	if err != nil {
		return err
	}
	if len(l) > 0 {
		s.ns.delim = l[0].Delim
	}
	return nil
}

// get takes a connection from the pool or dials one, within the caps.
func (s *Store) get(ctx context.Context) (*conn, error) {
	cn, found, err := reserve(ctx, s, &s.idle, func(cn *conn) bool {
		return cn.alive() && (time.Since(cn.idleFrom) < time.Minute || cn.do(ctx, func() error { return cn.c.Noop().Wait() }) == nil)
	}, (*conn).close)
	if err != nil || found {
		return cn, err
	}
	cn, err = s.dial(ctx)
	if err := s.dialed(err); err != nil {
		return nil, err
	}
	return cn, nil
}

// dialed ends a dial made after reserve found no idle connection: a
// failure is observed and gives the slots back; a success is told to the
// host. It returns err.
func (s *Store) dialed(err error) error {
	if err != nil {
		s.observe(err)
		s.unreserve()
		return err
	}
	if s.cfg.Host != nil {
		s.cfg.Host.Succeeded()
	}
	return nil
}

// reserve takes a connection slot of the store, then the newest of pool's
// idle connections that usable accepts, dropping the others it looks at,
// or, when none is left, a host slot for a new connection (found false).
func reserve[T any](ctx context.Context, s *Store, pool *[]T, usable func(T) bool, drop func(T)) (idle T, found bool, err error) {
	var zero T
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			<-s.slots
			return zero, false, errors.New("store closed")
		}
		if len(*pool) == 0 {
			s.mu.Unlock()
			break
		}
		c := (*pool)[len(*pool)-1]
		*pool = (*pool)[:len(*pool)-1]
		s.mu.Unlock()
		if usable(c) {
			return c, true, nil
		}
		drop(c)
		s.releaseHost()
	}
	if s.cfg.Host != nil {
		if err := s.cfg.Host.Acquire(ctx); err != nil {
			<-s.slots
			return zero, false, err
		}
	}
	return zero, false, nil
}

// unreserve gives back what reserve took for a connection that could not
// be made.
func (s *Store) unreserve() {
	s.releaseHost()
	<-s.slots
}

// releaseHost frees the host slot of a connection that is closed.
func (s *Store) releaseHost() {
	if s.cfg.Host != nil {
		s.cfg.Host.Release()
	}
}

// observe tells the host limiter about a reply that means "overloaded":
// a throttling code or a BYE.
func (s *Store) observe(err error) {
	if s.cfg.Host == nil || err == nil {
		return
	}
	var ie *goimap.Error
	if errors.As(err, &ie) && (isThrottle(ie) || ie.Type == goimap.StatusResponseTypeBye) {
		s.cfg.Host.Throttled(retryHint(ie))
	}
}

// put returns a connection. One that failed with anything but a plain
// server refusal is closed: its state is unknown.
func (s *Store) put(cn *conn, err error) {
	var ie *goimap.Error
	reusable := err == nil || (errors.As(err, &ie) && ie.Type != goimap.StatusResponseTypeBye)
	s.release(func() bool {
		if !reusable || !cn.alive() {
			return false
		}
		cn.idleFrom = time.Now()
		s.idle = append(s.idle, cn)
		return true
	}, cn.close)
}

// release ends the use of a connection slot. Under s.mu, while the store
// is open and no other store waits for the host, keep may pool the
// connection and report true; otherwise shut closes it and the host slot
// is given back. The host is checked under s.mu, as closeIdle takes from
// the pools: a caller that starts waiting for a host slot either sees the
// connection pooled and closes it, or makes this release close it.
func (s *Store) release(keep func() bool, shut func()) {
	defer func() { <-s.slots }()
	s.mu.Lock()
	contended := s.cfg.Host != nil && s.cfg.Host.Contended()
	if !s.closed && !contended && keep() {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	shut()
	s.releaseHost()
}

// Close logs out every idle connection. Mailboxes still open close theirs
// when they are closed.
func (s *Store) Close() error {
	if s.cfg.Host != nil {
		s.cfg.Host.Unregister(s)
	}
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, cn := range idle {
		s.logout(cn)
	}
	return nil
}

// CloseIdle implements providers.IdlePool: the host limiter asks for the slot of the
// connection idle the longest, for an account waiting for one.
func (s *Store) CloseIdle() bool {
	s.mu.Lock()
	if len(s.idle) == 0 {
		s.mu.Unlock()
		return false
	}
	cn := s.idle[0]
	s.idle = s.idle[1:]
	s.mu.Unlock()
	s.logout(cn)
	return true
}

// logout ends an idle connection politely and frees its host slot.
func (s *Store) logout(cn *conn) {
	cn.w.begin()
	_ = cn.c.Logout().Wait()
	cn.w.end()
	cn.close()
	s.releaseHost()
}

// with runs fn on a pooled connection.
func (s *Store) with(ctx context.Context, fn func(cn *conn) error) error {
	cn, err := s.get(ctx)
	if err != nil {
		return err
	}
	err = cn.do(ctx, func() error { return fn(cn) })
	s.put(cn, err)
	return err
}

var roles = []goimap.MailboxAttr{goimap.MailboxAttrAll, goimap.MailboxAttrArchive, goimap.MailboxAttrDrafts,
	goimap.MailboxAttrFlagged, goimap.MailboxAttrJunk, goimap.MailboxAttrSent, goimap.MailboxAttrTrash, goimap.MailboxAttr(providers.RoleImportant)}

// Mailboxes implements providers.Store.
func (s *Store) Mailboxes(ctx context.Context) ([]providers.MailboxInfo, error) {
	var out []providers.MailboxInfo
	extended := listsSubscribed(s.caps)
	subscribed := s.subscribedSet()
	err := s.with(ctx, func(cn *conn) error {
		// LIST's RETURN options are LIST-EXTENDED syntax (RFC 5258), which
		// LIST-STATUS (RFC 5819) builds on.
		opts := &goimap.ListOptions{}
		if extended {
			opts.ReturnSubscribed = true
			opts.ReturnSpecialUse = s.caps.Has(goimap.CapSpecialUse)
			if s.caps.Has(goimap.CapListStatus) || s.caps.Has(goimap.CapIMAP4rev2) {
				opts.ReturnStatus = s.statusItems()
			}
		}
		if *opts == (goimap.ListOptions{}) {
			opts = nil
		}
		list, err := cn.c.List("", "*", opts).Collect()
		if err != nil {
			return err
		}
		for _, l := range list {
			if slices.Contains(l.Attrs, goimap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, goimap.MailboxAttrNonExistent) {
				continue
			}
			info := providers.MailboxInfo{Name: s.ns.canonical(l.Mailbox), Messages: -1,
				Subscribed: slices.Contains(l.Attrs, goimap.MailboxAttrSubscribed) || subscribed[l.Mailbox]}
			for _, a := range roles {
				if slices.ContainsFunc(l.Attrs, func(x goimap.MailboxAttr) bool { return strings.EqualFold(string(x), string(a)) }) {
					info.SpecialUse = string(a)
					break
				}
			}
			if info.SpecialUse == "" && !s.caps.Has(goimap.CapSpecialUse) {
				// A server that cannot say: by the name clients give it.
				info.SpecialUse = providers.RoleByName(info.Name)
			}
			if st := l.Status; st != nil {
				statusInfo(&info, st)
			}
			out = append(out, info)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", classify(err, opOther))
	}
	return out, nil
}

// statusItems are what STATUS (and LIST-STATUS) asks: HIGHESTMODSEQ only
// where the server numbers changes.
func (s *Store) statusItems() *goimap.StatusOptions {
	return &goimap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		HighestModSeq: s.caps.Has(goimap.CapCondStore) || s.caps.Has(goimap.CapIMAP4rev2)}
}

func statusInfo(info *providers.MailboxInfo, st *goimap.StatusData) {
	info.UIDValidity, info.UIDNext, info.ModSeq = st.UIDValidity, uint32(st.UIDNext), st.HighestModSeq
	if st.NumMessages != nil {
		info.Messages = int(*st.NumMessages)
	}
}

var _ providers.Statuser = (*Store)(nil)

// Status implements providers.Statuser with STATUS, never about a mailbox
// the connection has selected: RFC 3501 §6.3.10 advises against it, and
// Dovecot then answers with what the session has seen, not with what a
// later LIST-STATUS says.
func (s *Store) Status(ctx context.Context, name string) (providers.MailboxInfo, error) {
	native := s.ns.native(name)
	info := providers.MailboxInfo{Name: name, Messages: -1}
	err := s.with(ctx, func(cn *conn) error {
		if cn.selected == native {
			if err := s.leave(cn); err != nil {
				return err
			}
		}
		st, err := cn.c.Status(native, s.statusItems()).Wait()
		if err != nil {
			return err
		}
		statusInfo(&info, st)
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("status %q: %w", native, classify(err, opSelect))
	}
	return info, nil
}

// CreateMailbox implements providers.Store.
func (s *Store) CreateMailbox(ctx context.Context, name, role string) error {
	native := s.ns.native(name)
	err := s.with(ctx, func(cn *conn) error {
		var opts *goimap.CreateOptions
		if role != "" && s.caps.Has(goimap.CapCreateSpecialUse) {
			opts = &goimap.CreateOptions{SpecialUse: []goimap.MailboxAttr{goimap.MailboxAttr(role)}}
		}
		err := cn.c.Create(native, opts).Wait()
		var ie *goimap.Error
		if opts != nil && errors.As(err, &ie) && ie.Code != goimap.ResponseCodeAlreadyExists {
			// Some servers refuse the role (one \Sent per account); the
			// mailbox still matters more than its attribute.
			err = cn.c.Create(native, nil).Wait()
		}
		return err
	})
	if err == nil {
		return nil
	}
	var ie *goimap.Error
	if errors.As(err, &ie) && (ie.Code == goimap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "exists")) {
		return fmt.Errorf("create %q: %w", native, providers.ErrMailboxExists)
	}
	return fmt.Errorf("create %q: %w", native, classify(err, opOther))
}

// Subscribe implements providers.Subscriber.
func (s *Store) Subscribe(ctx context.Context, name string) error {
	native := s.ns.native(name)
	err := s.with(ctx, func(cn *conn) error { return cn.c.Subscribe(native).Wait() })
	if err != nil {
		return fmt.Errorf("subscribe %q: %w", native, classify(err, opOther))
	}
	s.mu.Lock()
	if s.subs != nil {
		s.subs[native] = true
	}
	s.mu.Unlock()
	return nil
}

// Remove implements providers.Remover: it expunges exactly uids, after
// checking UIDVALIDITY, and nothing else that is marked \Deleted. With
// UIDPLUS that is UID EXPUNGE. Without it, a plain EXPUNGE would also
// remove whatever the user marked \Deleted, so mailferry only expunges when
// no other message carries \Deleted, and refuses otherwise.
func (s *Store) Remove(ctx context.Context, name string, uidValidity uint32, uids []providers.UID) error {
	if len(uids) == 0 {
		return nil
	}
	native := s.ns.native(name)
	var set goimap.UIDSet
	for _, u := range uids {
		set.AddNum(goimap.UID(u))
	}
	uidExpunge := s.caps.Has(goimap.CapUIDPlus) || s.caps.Has(goimap.CapIMAP4rev2)
	err := s.selected(ctx, native, uidValidity, func(cn *conn) error {
		if !uidExpunge {
			data, err := cn.c.UIDSearch(&goimap.SearchCriteria{Flag: []goimap.Flag{goimap.FlagDeleted}, Not: []goimap.SearchCriteria{{UID: []goimap.UIDSet{set}}}}, nil).Wait()
			if err != nil {
				return err
			}
			if others := data.AllUIDs(); len(others) > 0 {
				return providers.WithClass(providers.ClassMailbox, fmt.Errorf(
					"server lacks UIDPLUS and %d other message(s) are marked \\Deleted: expunging would remove them too", len(others)))
			}
		}
		if err := cn.c.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		if uidExpunge {
			return cn.c.UIDExpunge(set).Close()
		}
		return cn.c.Expunge().Close()
	})
	if err != nil {
		return fmt.Errorf("remove from %q: %w", native, classify(err, opOther))
	}
	return nil
}

// Move implements providers.Mover: UID MOVE (RFC 6851) where the server
// has it; else UID COPY and, only once the copy is confirmed, \Deleted and
// UID EXPUNGE of exactly those UIDs (UIDPLUS). go-imap's own fallback sends
// the three commands at once, so it would expunge even if the copy failed;
// without MOVE or UIDPLUS nothing is moved.
func (s *Store) Move(ctx context.Context, from string, uidValidity uint32, uids []providers.UID, to string) (map[providers.UID]providers.UID, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	hasMove := s.caps.Has(goimap.CapMove) || s.caps.Has(goimap.CapIMAP4rev2)
	uidPlus := s.caps.Has(goimap.CapUIDPlus) || s.caps.Has(goimap.CapIMAP4rev2)
	if !hasMove && !uidPlus {
		return nil, providers.WithClass(providers.ClassMailbox, errors.New("the server has neither MOVE nor UIDPLUS: moving would need an EXPUNGE of every \\Deleted message"))
	}
	var set goimap.UIDSet
	for _, u := range uids {
		set.AddNum(goimap.UID(u))
	}
	native, target := s.ns.native(from), s.ns.native(to)
	var srcSet, dstSet goimap.UIDSet
	err := s.selected(ctx, native, uidValidity, func(cn *conn) error {
		if hasMove {
			data, err := cn.c.Move(set, target).Wait()
			if err != nil {
				return err
			}
			srcSet, _ = data.SourceUIDs.(goimap.UIDSet)
			dstSet, _ = data.DestUIDs.(goimap.UIDSet)
			return nil
		}
		data, err := cn.c.Copy(set, target).Wait()
		if err != nil {
			return err
		}
		srcSet, dstSet = data.SourceUIDs, data.DestUIDs
		if err := cn.c.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		return cn.c.UIDExpunge(set).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("move from %q to %q: %w", native, target, classify(err, opOther))
	}
	out := map[providers.UID]providers.UID{}
	srcUIDs, ok1 := srcSet.Nums()
	dstUIDs, ok2 := dstSet.Nums()
	if ok1 && ok2 && len(srcUIDs) == len(dstUIDs) {
		for i, u := range srcUIDs {
			out[providers.UID(u)] = providers.UID(dstUIDs[i])
		}
	}
	return out, nil
}

// errCondStore retires a connection on which CONDSTORE was enabled: its
// later FETCH replies would carry MODSEQ, which the rest of the adapter
// does not ask for.
var errCondStore = errors.New("CONDSTORE enabled on this connection")

// condStore runs fn on a connection of its own, closed afterwards (see
// errCondStore), if the server has CONDSTORE.
func (s *Store) condStore(ctx context.Context, fn func(cn *conn) error) error {
	if !s.caps.Has(goimap.CapCondStore) && !s.caps.Has(goimap.CapIMAP4rev2) {
		return providers.WithClass(providers.ClassMailbox, errors.New("the server has no CONDSTORE"))
	}
	cn, err := s.get(ctx)
	if err != nil {
		return err
	}
	err = cn.do(ctx, func() error { return fn(cn) })
	s.put(cn, errCondStore)
	return err
}

// HighestModSeq implements providers.ChangeTracker with EXAMINE
// (CONDSTORE), not STATUS: with Dovecot 2.3, a HIGHESTMODSEQ read by
// STATUS before any client had selected the mailbox with CONDSTORE made
// every message look changed since (TestDovecotChangedSince).
func (s *Store) HighestModSeq(ctx context.Context, name string) (uint32, uint64, error) {
	native := s.ns.native(name)
	var sel *goimap.SelectData
	err := s.condStore(ctx, func(cn *conn) error {
		var err error
		sel, err = cn.c.Select(native, &goimap.SelectOptions{ReadOnly: true, CondStore: true}).Wait()
		cn.selected, cn.readOnly = native, true
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("examine %q: %w", native, classify(err, opSelect))
	}
	return sel.UIDValidity, sel.HighestModSeq, nil
}

// ChangedSince implements providers.ChangeTracker with EXAMINE (CONDSTORE)
// and UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq).
func (s *Store) ChangedSince(ctx context.Context, name string, uidValidity uint32, modseq uint64, fn func(providers.UID, []string) error) error {
	native := s.ns.native(name)
	err := s.condStore(ctx, func(cn *conn) error {
		sel, err := cn.c.Select(native, &goimap.SelectOptions{ReadOnly: true, CondStore: true}).Wait()
		if err != nil {
			return classify(err, opSelect)
		}
		cn.selected, cn.readOnly = native, true
		if sel.UIDValidity != uidValidity {
			return providers.WithClass(providers.ClassMailbox, providers.ErrUIDValidityChanged)
		}
		if sel.NumMessages == 0 {
			return nil
		}
		var all goimap.UIDSet
		all.AddRange(1, 0)
		msgs, err := cn.c.Fetch(all, &goimap.FetchOptions{UID: true, Flags: true, ChangedSince: modseq}).Collect()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := fn(providers.UID(m.UID), fromFlags(m.Flags)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("changes in %q: %w", native, classify(err, opOther))
	}
	return nil
}

// selected runs fn with name SELECTed read-write on a pooled connection,
// after checking its UIDVALIDITY. The mailbox stays selected (see conn).
func (s *Store) selected(ctx context.Context, native string, uidValidity uint32, fn func(cn *conn) error) error {
	return s.with(ctx, func(cn *conn) error {
		sel, err := cn.selectMailbox(native, false)
		if err != nil {
			return classify(err, opSelect)
		}
		if sel.UIDValidity != uidValidity {
			return providers.WithClass(providers.ClassMailbox, providers.ErrUIDValidityChanged)
		}
		return fn(cn)
	})
}

// SetFlags implements providers.FlagSetter with UID STORE FLAGS.SILENT,
// one command per distinct flag set.
func (s *Store) SetFlags(ctx context.Context, name string, uidValidity uint32, flags map[providers.UID][]string) error {
	if len(flags) == 0 {
		return nil
	}
	groups := map[string]*goimap.UIDSet{}
	sets := map[string][]goimap.Flag{}
	for uid, fl := range flags {
		f := toFlags(fl)
		slices.Sort(f)
		key := fmt.Sprint(f)
		if groups[key] == nil {
			groups[key] = &goimap.UIDSet{}
			sets[key] = f
		}
		groups[key].AddNum(goimap.UID(uid))
	}
	native := s.ns.native(name)
	err := s.selected(ctx, native, uidValidity, func(cn *conn) error {
		for key, set := range groups {
			if err := cn.c.Store(*set, &goimap.StoreFlags{Op: goimap.StoreFlagsSet, Silent: true, Flags: sets[key]}, nil).Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set flags in %q: %w", native, classify(err, opOther))
	}
	return nil
}

// DeleteMailbox implements providers.MailboxDeleter. No connection of the
// store has the mailbox selected when it goes: servers refuse to delete
// the selected mailbox (Courier: "Cannot delete currently-open folder"),
// and Dovecot ends the other sessions that have it selected.
func (s *Store) DeleteMailbox(ctx context.Context, name string) error {
	native := s.ns.native(name)
	s.mu.Lock()
	var holding []*conn
	s.idle = slices.DeleteFunc(s.idle, func(cn *conn) bool {
		if cn.selected == native {
			holding = append(holding, cn)
			return true
		}
		return false
	})
	s.mu.Unlock()
	for _, cn := range holding {
		// An idle connection holds its host slot, not a store slot.
		if err := cn.do(ctx, func() error { return s.leave(cn) }); err != nil || !cn.alive() {
			cn.close()
			s.releaseHost()
			continue
		}
		s.mu.Lock()
		s.idle = append(s.idle, cn)
		s.mu.Unlock()
	}
	err := s.with(ctx, func(cn *conn) error {
		if cn.selected == native {
			if err := s.leave(cn); err != nil {
				return err
			}
		}
		return cn.c.Delete(native).Wait()
	})
	if err != nil {
		return fmt.Errorf("delete mailbox %q: %w", native, classify(err, opSelect))
	}
	return nil
}
