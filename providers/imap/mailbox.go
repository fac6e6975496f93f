package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/providers"
)

// fetchChunk bounds the UIDs named in one FETCH, keeping command lines well
// under servers' limits (Dovecot: 64 KiB).
const fetchChunk = 1000

// mailbox is an EXAMINEd mailbox holding one connection until Close.
type mailbox struct {
	s      *Store
	cn     *conn
	native string
	info   providers.MailboxInfo

	// The APPEND pipeline: commands whose literal is sent and whose reply
	// is awaited by the waiter goroutine, in order.
	queue    chan inflight
	inflight sync.WaitGroup
	waiter   sync.WaitGroup
	mu       sync.Mutex
	broken   error // first error that made the connection unusable

	// readFailed says a literal read of the FETCH under way failed; only
	// the goroutine that owns the mailbox touches it.
	readFailed bool

	// app sends APPENDs as MULTIAPPEND on a connection of its own where
	// the server allows (multiappend.go); noApp says not to try again.
	app   *appender
	noApp bool
}

type inflight struct {
	cmd  *imapclient.AppendCommand
	done func(providers.UID, error)
}

// Mailbox implements providers.Store. It EXAMINEs the mailbox: read-only,
// so opening the source never changes \Recent or anything else.
func (s *Store) Mailbox(ctx context.Context, name string) (providers.Mailbox, error) {
	native := s.ns.native(name)
	for attempt := 1; ; attempt++ {
		cn, err := s.get(ctx)
		if err != nil {
			return nil, err
		}
		pooled := !cn.idleFrom.IsZero()
		var sel *goimap.SelectData
		err = cn.do(ctx, func() error {
			sel, err = cn.c.Select(native, &goimap.SelectOptions{ReadOnly: true}).Wait()
			return err
		})
		if err == nil {
			return &mailbox{s: s, cn: cn, native: native, info: providers.MailboxInfo{
				Name: name, UIDValidity: sel.UIDValidity, UIDNext: uint32(sel.UIDNext), Messages: int(sel.NumMessages),
			}}, nil
		}
		s.put(cn, err)
		// A pooled connection the server hung up a moment ago (Dovecot
		// closes a session whose selected mailbox another one deleted)
		// fails its first command: that says nothing of the mailbox, so
		// try another. A stall is the server's, and is not retried here.
		var ie *goimap.Error
		if pooled && attempt < 3 && !errors.As(err, &ie) && !cn.w.stalled.Load() && ctx.Err() == nil {
			continue
		}
		return nil, fmt.Errorf("examine %q: %w", native, classify(err, opSelect))
	}
}

func (m *mailbox) Info() providers.MailboxInfo { return m.info }

func (m *mailbox) fail(err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken == nil {
		if m.cn != nil && m.cn.w.stalled.Load() && !errors.Is(err, errStalled) {
			// Whatever broke first, the watchdog is why: say so.
			err = providers.WithClass(providers.ClassTransient, fmt.Errorf("%w: %w", errStalled, err))
		}
		m.broken = err
		if m.cn != nil {
			m.cn.close()
		}
	}
	return m.broken
}

func (m *mailbox) brokenErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.broken
}

// UIDs implements providers.Mailbox with one UID SEARCH ALL.
func (m *mailbox) UIDs(ctx context.Context) ([]providers.UID, error) {
	return m.search(ctx, &goimap.SearchCriteria{})
}

var _ providers.Searcher = (*mailbox)(nil)

// Search implements providers.Searcher with UID SEARCH, whose SINCE,
// BEFORE and SMALLER mean what providers.Filter says.
func (m *mailbox) Search(ctx context.Context, f providers.Filter) ([]providers.UID, error) {
	c := &goimap.SearchCriteria{Since: f.Since, Before: f.Before}
	if f.MaxSize > 0 {
		c.Smaller = f.MaxSize + 1
	}
	return m.search(ctx, c)
}

func (m *mailbox) search(ctx context.Context, criteria *goimap.SearchCriteria) ([]providers.UID, error) {
	if err := m.brokenErr(); err != nil {
		return nil, err
	}
	var opts *goimap.SearchOptions
	if m.s.caps.Has(goimap.CapESearch) || m.s.caps.Has(goimap.CapIMAP4rev2) {
		opts = &goimap.SearchOptions{ReturnAll: true}
	}
	var data *goimap.SearchData
	err := m.cn.do(ctx, func() error {
		var err error
		data, err = m.cn.c.UIDSearch(criteria, opts).Wait()
		return err
	})
	if err != nil {
		return nil, m.opError("search", err)
	}
	uids := data.AllUIDs()
	out := make([]providers.UID, len(uids))
	for i, u := range uids {
		out[i] = providers.UID(u)
	}
	slices.Sort(out)
	return out, nil
}

// opError classifies a command's error and retires the connection when the
// error leaves it in an unknown state.
func (m *mailbox) opError(what string, err error) error {
	m.s.observe(err)
	err = classify(err, opOther)
	if providers.ClassOf(err) == providers.ClassTransient || errors.Is(err, context.Canceled) {
		m.fail(err)
	}
	return fmt.Errorf("%s %q: %w", what, m.native, err)
}

// chunks splits uids (nil meaning all) into UID sets.
func chunks(uids []providers.UID) []goimap.UIDSet {
	if uids == nil {
		var all goimap.UIDSet
		all.AddRange(1, 0)
		return []goimap.UIDSet{all}
	}
	var out []goimap.UIDSet
	for len(uids) > 0 {
		n := min(len(uids), fetchChunk)
		var set goimap.UIDSet
		for _, u := range uids[:n] {
			set.AddNum(goimap.UID(u))
		}
		out = append(out, set)
		uids = uids[n:]
	}
	return out
}

// List implements providers.Mailbox: one pass for flags, date, size and the
// header fields and body start the dedup key needs; no body is fetched.
func (m *mailbox) List(ctx context.Context, uids []providers.UID, fn func(providers.MessageInfo) error) error {
	if uids != nil && len(uids) == 0 {
		return nil
	}
	opts := &goimap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*goimap.FetchItemBodySection{
			{Specifier: goimap.PartSpecifierHeader, HeaderFields: providers.KeyHeaderFields(), Peek: true},
			{Specifier: goimap.PartSpecifierText, Partial: &goimap.SectionPartial{Offset: 0, Size: providers.KeyBodyPrefix}, Peek: true},
		}}
	for _, set := range chunks(uids) {
		got := map[providers.UID]bool{}
		err := m.fetch(ctx, set, opts, func(msg *imapclient.FetchMessageData) error {
			var info providers.MessageInfo
			var header, body []byte
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					info.UID = providers.UID(it.UID)
				case imapclient.FetchItemDataFlags:
					info.Flags = fromFlags(it.Flags)
				case imapclient.FetchItemDataInternalDate:
					info.InternalDate = it.Time
				case imapclient.FetchItemDataRFC822Size:
					info.Size = it.Size
				case imapclient.FetchItemDataBodySection:
					if it.Literal == nil {
						continue
					}
					b, err := io.ReadAll(io.LimitReader(it.Literal, 1<<20))
					if err == nil && int64(len(b)) < min(it.Literal.Size(), 1<<20) {
						// go-imap shows a connection lost mid-literal as io.EOF.
						err = fmt.Errorf("read message header: %w", io.ErrUnexpectedEOF)
					}
					if err != nil {
						m.readFailed = true
						return err
					}
					if it.Section.Specifier == goimap.PartSpecifierText {
						body = b
					} else {
						header = b
					}
				}
			}
			if info.UID == 0 {
				return nil // an unsolicited update, not an answer
			}
			got[info.UID] = true
			info.Key = providers.NewKey(header, body, info.Size)
			return fn(info)
		})
		if err != nil {
			return err
		}
		if err := m.checkAllReturned(ctx, set, got); err != nil {
			return err
		}
	}
	return nil
}

// Flags implements providers.FlagLister with UID FETCH (UID FLAGS).
func (m *mailbox) Flags(ctx context.Context, uids []providers.UID, fn func(providers.UID, []string) error) error {
	if uids != nil && len(uids) == 0 {
		return nil
	}
	opts := &goimap.FetchOptions{UID: true, Flags: true}
	for _, set := range chunks(uids) {
		err := m.fetch(ctx, set, opts, func(msg *imapclient.FetchMessageData) error {
			buf, err := msg.Collect()
			if err != nil || buf.UID == 0 {
				return err
			}
			return fn(providers.UID(buf.UID), fromFlags(buf.Flags))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// fetch runs one streaming UID FETCH. If fn fails, the connection is
// dropped rather than drained: draining would download every remaining body.
func (m *mailbox) fetch(ctx context.Context, set goimap.UIDSet, opts *goimap.FetchOptions, fn func(*imapclient.FetchMessageData) error) error {
	if err := m.brokenErr(); err != nil {
		return err
	}
	var fnErr error
	m.readFailed = false
	err := m.cn.do(ctx, func() error {
		cmd := m.cn.c.Fetch(set, opts)
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			if fnErr = fn(msg); fnErr != nil {
				m.fail(fnErr)
				if m.readFailed {
					// A literal read failed: go-imap's reader goroutine has
					// gone on, to the dead connection, and is ending. Close
					// reads that literal again to drain it, which would
					// race with the reader unless it is gone.
					<-m.cn.c.Closed()
				}
				cmd.Close()
				return fnErr
			}
		}
		return cmd.Close()
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return m.opError("fetch from", err)
	}
	return nil
}

// checkAllReturned guards against go-imap silently dropping FETCH data it
// cannot attribute (a server sending UID after the literal): a requested UID
// that did not come back must really be gone.
func (m *mailbox) checkAllReturned(ctx context.Context, set goimap.UIDSet, got map[providers.UID]bool) error {
	nums, ok := set.Nums()
	if !ok {
		return nil // 1:* asks for whatever is there
	}
	var missing goimap.UIDSet
	for _, u := range nums {
		if !got[providers.UID(u)] {
			missing.AddNum(u)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var data *goimap.SearchData
	err := m.cn.do(ctx, func() error {
		var err error
		data, err = m.cn.c.UIDSearch(&goimap.SearchCriteria{UID: []goimap.UIDSet{missing}}, nil).Wait()
		return err
	})
	if err != nil {
		return m.opError("search", err)
	}
	if still := data.AllUIDs(); len(still) > 0 {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf(
			"fetch from %q: the server's reply for %d existing message(s) (first UID %d) could not be read", m.native, len(still), still[0]))
	}
	return nil
}

// Fetch implements providers.Mailbox, streaming each body from the socket.
func (m *mailbox) Fetch(ctx context.Context, uids []providers.UID, fn func(providers.UID, int64, io.Reader) error) error {
	if uids != nil && len(uids) == 0 {
		return nil
	}
	opts := &goimap.FetchOptions{UID: true, BodySection: []*goimap.FetchItemBodySection{{Peek: true}}}
	for _, set := range chunks(uids) {
		got := map[providers.UID]bool{}
		err := m.fetch(ctx, set, opts, func(msg *imapclient.FetchMessageData) error {
			var uid providers.UID
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = providers.UID(it.UID)
				case imapclient.FetchItemDataBodySection:
					if it.Literal == nil {
						continue
					}
					if uid == 0 {
						return providers.WithClass(providers.ClassMailbox, errors.New("server sent a message body before its UID"))
					}
					got[uid] = true
					lr := &literalReader{r: it.Literal, left: it.Literal.Size()}
					err := fn(uid, it.Literal.Size(), lr)
					if lr.err != nil {
						m.readFailed = true
					}
					if err != nil {
						return err
					}
					if lr.err != nil {
						return lr.err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := m.checkAllReturned(ctx, set, got); err != nil {
			return err
		}
	}
	return nil
}

// literalReader remembers a read error from the source, so that a failed
// source read is never mistaken for a destination refusal. It also holds
// the source to its announced size: go-imap reads a literal through an
// io.LimitReader, so a connection that drops mid-literal looks like a clean
// io.EOF, and half a message would be sent as if it were whole.
type literalReader struct {
	r    io.Reader
	left int64 // bytes announced and not read yet
	err  error
}

func (l *literalReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err == io.EOF && l.left > 0 {
		err = fmt.Errorf("%w: the message ended %d bytes short of its size", io.ErrUnexpectedEOF, l.left)
	}
	if err != nil && err != io.EOF {
		l.err = providers.WithClass(providers.ClassTransient, fmt.Errorf("read source message: %w", err))
		return n, l.err
	}
	return n, err
}

// Append implements providers.Mailbox. The literal is written at once; the
// server's verdict is collected by a waiter goroutine, so up to
// PipelineDepth APPENDs are in flight on the connection.
func (m *mailbox) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.brokenErr(); err != nil {
		return err
	}
	if m.app == nil && !m.noApp && m.s.canMultiAppend(m.info.Name) {
		// Without a free connection slot, append on this connection
		// rather than wait for one that may never come.
		a, err := m.s.newAppender(ctx, m.info.Name, m.info.UIDValidity)
		m.app, m.noApp = a, err != nil
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if m.app != nil {
		buf := m.s.buffers.Get().(*[]byte)
		defer m.s.buffers.Put(buf)
		return m.app.Append(ctx, r, size, info, done, *buf)
	}
	m.startWaiter()
	opts := &goimap.AppendOptions{Flags: toFlags(info.Flags), Time: info.InternalDate}
	lr, ok := r.(*literalReader)
	if !ok {
		lr = &literalReader{r: r, left: size}
	}
	m.cn.w.begin()
	stop := context.AfterFunc(ctx, func() { m.fail(ctx.Err()) })
	cmd := m.cn.c.Append(m.native, size, opts)
	buf := m.s.buffers.Get().(*[]byte)
	_, copyErr := io.CopyBuffer(cmd, lr, *buf)
	m.s.buffers.Put(buf)
	closeErr := cmd.Close()
	stop()
	if copyErr == nil {
		copyErr = closeErr
	}
	if copyErr != nil {
		m.cn.w.end()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if lr.err != nil {
			// Half a literal was sent; the connection cannot carry on.
			return m.fail(lr.err)
		}
		// A refusal before the literal ("NO" instead of "+", as Dovecot
		// does for quota) ends the command, fails the write with the
		// server's reply, and go-imap then drops the connection. Any other
		// failure may leave the command open on a live connection, where
		// waiting for its reply would block for ever.
		var ie *goimap.Error
		if errors.As(copyErr, &ie) {
			m.s.observe(copyErr)
			refusal := fmt.Errorf("append to %q: %w", m.native, classify(copyErr, opAppend))
			if providers.ClassOf(refusal) != providers.ClassMessage {
				// Over quota and the like: nothing more fits; say so.
				m.fail(refusal)
				return refusal
			}
			// This message is refused; go-imap has closed the connection,
			// so the next ones go on a new one: a refused message must
			// cost neither the mailbox nor a retry.
			if err := m.reopen(ctx); err != nil {
				return m.fail(providers.WithClass(providers.ClassTransient, fmt.Errorf("reconnect after a refused APPEND: %w", err)))
			}
			done(0, refusal)
			return nil
		}
		return m.fail(providers.WithClass(providers.ClassTransient, fmt.Errorf("append to %q: %w", m.native, copyErr)))
	}
	m.inflight.Add(1)
	m.queue <- inflight{cmd: cmd, done: done}
	return nil
}

// errReplaced retires a connection go-imap already closed.
var errReplaced = errors.New("connection replaced")

// reopen replaces the mailbox's connection, which go-imap closed after a
// refused APPEND. The server answered every earlier APPEND before the
// refusal, so once the waiter has passed those answers on, nothing is in
// flight and nothing is lost.
func (m *mailbox) reopen(ctx context.Context) error {
	m.inflight.Wait()
	m.mu.Lock()
	old := m.cn
	m.cn = nil // until replaced, Close and fail have no connection to release
	m.mu.Unlock()
	m.s.put(old, errReplaced)
	cn, err := m.s.get(ctx)
	if err != nil {
		return err
	}
	var sel *goimap.SelectData
	err = cn.do(ctx, func() error {
		var err error
		sel, err = cn.c.Select(m.native, &goimap.SelectOptions{ReadOnly: true}).Wait()
		return err
	})
	if err == nil && sel.UIDValidity != m.info.UIDValidity {
		err = providers.ErrUIDValidityChanged
	}
	if err != nil {
		m.s.put(cn, err)
		return err
	}
	m.mu.Lock()
	m.cn = cn
	m.mu.Unlock()
	return nil
}

func (m *mailbox) startWaiter() {
	if m.queue != nil {
		return
	}
	m.queue = make(chan inflight, m.s.cfg.PipelineDepth)
	m.waiter.Add(1)
	go func() {
		defer m.waiter.Done()
		for in := range m.queue {
			data, err := in.cmd.Wait()
			m.cn.w.end()
			switch {
			case err == nil:
				var uid providers.UID
				if data.UIDValidity == m.info.UIDValidity {
					uid = providers.UID(data.UID)
				}
				in.done(uid, nil)
			default:
				m.s.observe(err)
				var ie *goimap.Error
				if !errors.As(err, &ie) || ie.Type == goimap.StatusResponseTypeBye {
					err = m.fail(classify(err, opAppend))
				}
				in.done(0, fmt.Errorf("append to %q: %w", m.native, classify(err, opAppend)))
			}
			m.inflight.Done()
		}
	}()
}

// Flush implements providers.Mailbox.
func (m *mailbox) Flush(ctx context.Context) error {
	if m.app != nil {
		// The append connection is only needed while appending: closing it
		// here gives its slot back to the caps at once.
		err := m.app.Flush(ctx)
		m.app.Close()
		m.app = nil
		if err != nil {
			return err
		}
	}
	finished := make(chan struct{})
	go func() {
		m.inflight.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		m.fail(ctx.Err())
		<-finished
	}
	return m.brokenErr()
}

// Close implements providers.Mailbox and returns the connection to the pool.
func (m *mailbox) Close() error {
	err := m.Flush(context.Background())
	if m.queue != nil {
		close(m.queue)
		m.waiter.Wait()
	}
	if m.cn != nil {
		m.s.put(m.cn, err)
	}
	return nil
}

func fromFlags(flags []goimap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			out = append(out, string(f))
		}
	}
	return out
}

// toFlags keeps the flags that are valid IMAP atoms; anything else would
// break the command.
func toFlags(flags []string) []goimap.Flag {
	out := make([]goimap.Flag, 0, len(flags))
	for _, f := range flags {
		if validFlag(f) && !strings.EqualFold(f, `\Recent`) {
			out = append(out, goimap.Flag(f))
		}
	}
	return out
}

func validFlag(f string) bool {
	f = strings.TrimPrefix(f, `\`)
	if f == "" {
		return false
	}
	for _, c := range []byte(f) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}
