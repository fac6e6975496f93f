package imap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/providers"
)

// fetchChunk bounds the UIDs named in one FETCH, keeping command lines well
// under servers' limits (Dovecot: 64 KiB).
const fetchChunk = 1000

// mailbox is an EXAMINEd mailbox. It reads on a pooled connection it
// holds while it reads, and appends through an appender of the store
// (multiappend.go), giving its read connection back first: it never holds
// two connections of its store, so copies waiting for connections cannot
// wait for each other.
type mailbox struct {
	s      *Store
	cn     *conn // nil while appending, or after Close
	native string
	info   providers.MailboxInfo

	mu     sync.Mutex
	broken error // first error that made the connection unusable

	// readFailed says a literal read of the FETCH under way failed; only
	// the goroutine that owns the mailbox touches it.
	readFailed bool

	app *appender
}

// Mailbox implements providers.Store. It EXAMINEs the mailbox: read-only,
// so opening the source never changes \Recent or anything else.
func (s *Store) Mailbox(ctx context.Context, name string) (providers.Mailbox, error) {
	native := s.ns.native(name)
	m := &mailbox{s: s, native: native}
	var info providers.MailboxInfo
	cn, err := s.examined(ctx, native, 0, func(got providers.MailboxInfo) error {
		info = got
		return nil
	})
	if err != nil {
		return nil, err
	}
	info.Name = name
	m.cn, m.info = cn, info
	return m, nil
}

// examined takes a connection with native EXAMINEd and hands check what
// the server said of the mailbox; the connection is given back if check
// fails. A pooled connection that still has native EXAMINEd under the
// UIDVALIDITY keep (not 0) is taken as it is: its session follows the
// mailbox, and nothing is asked. A pooled connection the server hung up a moment ago (Dovecot
// closes a session whose selected mailbox another one deleted) fails its
// first command: that says nothing of the mailbox, so another is tried. A
// stall is the server's, and is not retried here.
func (s *Store) examined(ctx context.Context, native string, keep uint32, check func(providers.MailboxInfo) error) (*conn, error) {
	for attempt := 1; ; attempt++ {
		cn, err := s.get(ctx)
		if err != nil {
			return nil, err
		}
		if keep != 0 && cn.selected == native && cn.readOnly && cn.validity == keep {
			return cn, nil
		}
		pooled := !cn.idleFrom.IsZero()
		var info providers.MailboxInfo
		err = cn.do(ctx, func() error {
			info, err = s.examine(cn, native)
			return err
		})
		if err == nil {
			if err := check(info); err != nil {
				s.put(cn, nil)
				return nil, err
			}
			return cn, nil
		}
		s.put(cn, err)
		var ie *goimap.Error
		if pooled && attempt < 3 && !errors.As(err, &ie) && !cn.w.stalled.Load() && ctx.Err() == nil {
			continue
		}
		return nil, fmt.Errorf("examine %q: %w", native, classify(err, opSelect))
	}
}

// examine EXAMINEs native on cn. UIDNEXT and UIDVALIDITY come from STATUS
// when EXAMINE does not give them (RFC 3501 servers need not send
// [UIDNEXT]); once a server has left one out, STATUS goes first for every
// mailbox, so that it is never asked about the selected mailbox.
func (s *Store) examine(cn *conn, native string) (providers.MailboxInfo, error) {
	var st *goimap.StatusData
	status := func() error {
		var err error
		st, err = cn.c.Status(native, &goimap.StatusOptions{UIDNext: true, UIDValidity: true, NumMessages: true}).Wait()
		return err
	}
	if s.statusFirst.Load() {
		if err := s.leave(cn); err != nil {
			return providers.MailboxInfo{}, err
		}
		if err := status(); err != nil {
			return providers.MailboxInfo{}, err
		}
	}
	sel, err := cn.selectMailbox(native, true)
	if err != nil {
		return providers.MailboxInfo{}, err
	}
	info := providers.MailboxInfo{UIDValidity: sel.UIDValidity, UIDNext: uint32(sel.UIDNext), Messages: int(sel.NumMessages)}
	if st == nil && (sel.UIDNext == 0 || sel.UIDValidity == 0) {
		s.statusFirst.Store(true)
		if err := s.leave(cn); err != nil {
			return info, err
		}
		if err := status(); err != nil {
			return info, err
		}
		if sel, err = cn.selectMailbox(native, true); err != nil {
			return info, err
		}
		info = providers.MailboxInfo{UIDValidity: sel.UIDValidity, UIDNext: uint32(sel.UIDNext), Messages: int(sel.NumMessages)}
	}
	if st != nil && info.UIDNext == 0 {
		info.UIDNext = uint32(st.UIDNext)
	}
	if info.UIDValidity == 0 && st != nil {
		info.UIDValidity = st.UIDValidity
	}
	return info, nil
}

// Info implements providers.Mailbox. A mailbox empty when opened takes
// the UIDVALIDITY the server gives it when it stores the first message:
// some servers (Courier) number a mailbox only then, and show a new
// UIDVALIDITY at each EXAMINE until they do.
func (m *mailbox) Info() providers.MailboxInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info
}

// adopt takes the UIDVALIDITY the server gave the fresh mailbox.
func (m *mailbox) adopt(validity uint32) {
	m.mu.Lock()
	m.info.UIDValidity = validity
	m.mu.Unlock()
}

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
	cn, err := m.conn(ctx)
	if err != nil {
		return nil, err
	}
	var opts *goimap.SearchOptions
	if m.s.caps.Has(goimap.CapESearch) || m.s.caps.Has(goimap.CapIMAP4rev2) {
		opts = &goimap.SearchOptions{ReturnAll: true}
	}
	var data *goimap.SearchData
	err = cn.do(ctx, func() error {
		var err error
		data, err = cn.c.UIDSearch(criteria, opts).Wait()
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
	cn, err := m.conn(ctx)
	if err != nil {
		return err
	}
	var fnErr error
	m.readFailed = false
	err = cn.do(ctx, func() error {
		cmd := cn.c.Fetch(set, opts)
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			if fnErr = fn(msg); fnErr != nil {
				m.fail(fnErr)
				if m.readFailed {
					// A literal read failed: go-imap's reader goroutine has
					// gone on, to the dead connection, and is ending. Close
					// reads that literal again to drain it, which would
					// race with the reader unless it is gone.
					<-cn.c.Closed()
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
	cn, err := m.conn(ctx)
	if err != nil {
		return err
	}
	var data *goimap.SearchData
	err = cn.do(ctx, func() error {
		var err error
		data, err = cn.c.UIDSearch(&goimap.SearchCriteria{UID: []goimap.UIDSet{missing}}, nil).Wait()
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
//
// BODY[] is the message as stored, except that a server must not send NUL
// in it (RFC 3501 §4.3): Dovecot sends 0x80 instead. BINARY[] (RFC 3516)
// has the NUL bytes, but decodes base64 and quoted-printable parts, so it
// is the stored message only where it decodes nothing. Where the server
// offers BINARY, a message up to probeMax whose BODY[] holds a 0x80 that is
// not part of UTF-8 is read once more as BINARY[]: if the two are the same
// but for NUL in place of those 0x80, BINARY[] is the message, exactly.
// Such messages come after the others of their FETCH.
func (m *mailbox) Fetch(ctx context.Context, uids []providers.UID, fn func(providers.UID, int64, io.Reader) error) error {
	if uids != nil && len(uids) == 0 {
		return nil
	}
	probe := m.s.caps.Has(goimap.CapBinary) || m.s.caps.Has(goimap.CapIMAP4rev2)
	// One buffer for the messages held whole, large ones too: a body is
	// valid only while fn runs (providers.Mailbox). A fresh one per message
	// cost more CPU (zeroing it) than the scan, and per large message made
	// each a heap's worth of garbage (61 MiB peak for one account, 47 MiB
	// with one buffer).
	var held []byte
	for _, set := range chunks(uids) {
		suspects := map[providers.UID]bodyDigest{}
		err := m.fetchBodies(ctx, set, false, func(uid providers.UID, size int64, lr *literalReader) error {
			if !probe || size > probeMax {
				return fn(uid, size, lr)
			}
			held = grow(held, size, probeMax)
			buf := held
			if _, err := io.ReadFull(lr, buf); err != nil {
				return err
			}
			if !nulStandIn(buf) {
				return fn(uid, size, providers.HeldReader(buf))
			}
			suspects[uid] = digest(buf)
			return nil
		})
		if err != nil || len(suspects) == 0 {
			if err != nil {
				return err
			}
			continue
		}
		if err := m.fetchExact(ctx, suspects, fn); err != nil {
			return err
		}
	}
	return nil
}

// probeMax bounds the messages Fetch holds whole to compare BODY[] and
// BINARY[]; a larger one is passed on as BODY[] serves it.
const probeMax = 4 << 20

// fetchExact serves the suspects of Fetch: BINARY[] where it is the
// message, else BODY[] again, marked as possibly altered where BINARY[]
// shows NUL bytes.
func (m *mailbox) fetchExact(ctx context.Context, suspects map[providers.UID]bodyDigest, fn func(providers.UID, int64, io.Reader) error) error {
	uids := make([]providers.UID, 0, len(suspects))
	for u := range suspects {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	again := map[providers.UID]string{}
	// The suspects of one chunk fit one FETCH: chunks(uids) is one set.
	err := m.fetchBodies(ctx, chunks(uids)[0], true, func(uid providers.UID, size int64, lr *literalReader) error {
		want, ok := suspects[uid]
		if !ok {
			return nil
		}
		delete(suspects, uid)
		if size != want.size {
			// Decoded parts: not the message.
			_, err := io.Copy(io.Discard, lr)
			again[uid] = "possibly altered: the server serves NUL bytes of this message as 0x80 and cannot serve it exactly (BINARY[] decodes its parts)"
			return err
		}
		buf, err := readAll(lr, size)
		if err != nil {
			return err
		}
		if d := digest(buf); d.standIn != want.standIn {
			again[uid] = ""
			if bytes.IndexByte(buf, 0) >= 0 {
				again[uid] = "possibly altered: the server serves NUL bytes of this message as 0x80 and cannot serve it exactly (BINARY[] decodes its parts)"
			}
			return nil
		}
		return fn(uid, size, providers.HeldReader(buf))
	})
	if err != nil {
		return err
	}
	// Gone since, or not BINARY[] after all: as BODY[] serves them.
	for u := range suspects {
		again[u] = ""
	}
	if len(again) == 0 {
		return nil
	}
	uids = uids[:0]
	for u := range again {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	return m.fetchBodies(ctx, chunks(uids)[0], false, func(uid providers.UID, size int64, lr *literalReader) error {
		lr.altered = again[uid]
		return fn(uid, size, lr)
	})
}

// bodyDigest identifies a message's bytes with every 0x80 and NUL as one
// stand-in byte, so BODY[] with 0x80 for NUL matches the BINARY[] that has
// the NUL.
type bodyDigest struct {
	size    int64
	standIn [sha256.Size]byte
}

func digest(b []byte) bodyDigest {
	d := bodyDigest{size: int64(len(b))}
	h := sha256.New()
	var chunk [4096]byte
	for len(b) > 0 {
		n := copy(chunk[:], b)
		for i, c := range chunk[:n] {
			if c == 0 {
				chunk[i] = 0x80
			}
		}
		h.Write(chunk[:n])
		b = b[n:]
	}
	h.Sum(d.standIn[:0])
	return d
}

// nulStandIn reports a 0x80 byte that is not part of UTF-8: where a server
// put it for a NUL, or text in a legacy charset. It runs over every
// message read where the server offers BINARY, so it jumps from 0x80 to
// 0x80 (most mail has none) and decodes only the rune around each: one
// that starts at most three bytes before it, UTF-8 being
// self-synchronising.
func nulStandIn(b []byte) bool {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], 0x80)
		if i < 0 {
			return false
		}
		i += off
		j := i
		for j > off && i-j < utf8.UTFMax-1 && !utf8.RuneStart(b[j]) {
			j--
		}
		r, n := utf8.DecodeRune(b[j:])
		if (r == utf8.RuneError && n == 1) || j+n <= i {
			return true
		}
		off = j + n
	}
}

// readAll reads a literal of size bytes whole.
func readAll(r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// fetchBodies runs one UID FETCH of BODY.PEEK[] (or BINARY.PEEK[]) and
// hands each literal to fn, checking that every message asked for came
// back or is gone.
func (m *mailbox) fetchBodies(ctx context.Context, set goimap.UIDSet, binary bool, fn func(providers.UID, int64, *literalReader) error) error {
	opts := &goimap.FetchOptions{UID: true}
	if binary {
		opts.BinarySection = []*goimap.FetchItemBinarySection{{Peek: true}}
	} else {
		opts.BodySection = []*goimap.FetchItemBodySection{{Peek: true}}
	}
	got := map[providers.UID]bool{}
	err := m.fetch(ctx, set, opts, func(msg *imapclient.FetchMessageData) error {
		var uid providers.UID
		for item := msg.Next(); item != nil; item = msg.Next() {
			var lit goimap.LiteralReader
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = providers.UID(it.UID)
				continue
			case imapclient.FetchItemDataBodySection:
				lit = it.Literal
			case imapclient.FetchItemDataBinarySection:
				lit = it.Literal
			default:
				continue
			}
			if lit == nil {
				continue
			}
			if uid == 0 {
				return providers.WithClass(providers.ClassMailbox, errors.New("server sent a message body before its UID"))
			}
			got[uid] = true
			lr := &literalReader{r: lit, left: lit.Size()}
			err := fn(uid, lit.Size(), lr)
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
		return nil
	})
	if err != nil {
		return err
	}
	return m.checkAllReturned(ctx, set, got)
}

// literalReader remembers a read error from the source, so that a failed
// source read is never mistaken for a destination refusal. It also holds
// the source to its announced size: go-imap reads a literal through an
// io.LimitReader, so a connection that drops mid-literal looks like a clean
// io.EOF, and half a message would be sent as if it were whole.
type literalReader struct {
	r       io.Reader
	left    int64 // bytes announced and not read yet
	err     error
	altered string // see providers.Alterer
}

// Altered implements providers.Alterer.
func (l *literalReader) Altered() string { return l.altered }

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

// Append implements providers.Mailbox through an appender of the store.
// The literal is written at once; the server's verdict comes later, so
// many APPENDs are in flight.
func (m *mailbox) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.brokenErr(); err != nil {
		return err
	}
	if m.app == nil {
		// The read connection goes back first: see mailbox.
		m.release()
		info := m.Info()
		a, err := m.s.getAppender(ctx, info.Name, info.UIDValidity, info.Messages == 0, m.adopt)
		if err != nil {
			return err
		}
		m.app = a
	}
	buf := m.s.buffers.Get().(*[]byte)
	defer m.s.buffers.Put(buf)
	return m.app.Append(ctx, r, size, info, done, *buf)
}

// conn is the connection to read on: the one held, or a pooled one with
// the mailbox EXAMINEd again, which must still have the UIDVALIDITY the
// mailbox was opened with.
func (m *mailbox) conn(ctx context.Context) (*conn, error) {
	if err := m.brokenErr(); err != nil {
		return nil, err
	}
	if m.app != nil {
		// Reading sees what was appended only once it is answered.
		if err := m.Flush(ctx); err != nil {
			return nil, err
		}
	}
	if m.cn != nil {
		return m.cn, nil
	}
	validity := m.Info().UIDValidity
	cn, err := m.s.examined(ctx, m.native, validity, func(got providers.MailboxInfo) error {
		if got.UIDValidity != validity {
			return providers.WithClass(providers.ClassMailbox, fmt.Errorf("examine %q: %w", m.native, providers.ErrUIDValidityChanged))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.cn = cn
	m.mu.Unlock()
	return cn, nil
}

// release gives the read connection back to the pool.
func (m *mailbox) release() {
	m.mu.Lock()
	cn := m.cn
	m.cn = nil
	m.mu.Unlock()
	if cn != nil {
		m.s.put(cn, nil)
	}
}

// Flush implements providers.Mailbox. The appender goes back to the
// store's pool: its slot is only needed while appending.
func (m *mailbox) Flush(ctx context.Context) error {
	if m.app == nil {
		return m.brokenErr()
	}
	a := m.app
	m.app = nil
	err := a.Flush(ctx)
	m.s.putAppender(a)
	if err != nil {
		return err
	}
	return m.brokenErr()
}

// Close implements providers.Mailbox and returns the connections.
func (m *mailbox) Close() error {
	err := m.Flush(context.Background())
	m.mu.Lock()
	cn := m.cn
	m.cn = nil
	m.mu.Unlock()
	if cn != nil {
		m.s.put(cn, err)
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
