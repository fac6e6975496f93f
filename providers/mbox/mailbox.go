package mbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// handle is one open mailbox.
type handle struct {
	b    *box
	info providers.MailboxInfo

	closeOnce sync.Once
	closeErr  error
}

func (h *handle) Info() providers.MailboxInfo { return h.info }

// snapshot returns an open file and the index entries for uids (all when
// nil) in ascending UID order, consistent with each other.
func (h *handle) snapshot(ctx context.Context, uids []providers.UID) (*os.File, []entry, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, time.Time{}, err
	}
	b := h.b
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.readLocked(ctx)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if b.validity != h.info.UIDValidity {
		f.Close()
		return nil, nil, time.Time{}, providers.WithClass(providers.ClassMailbox,
			fmt.Errorf("mailbox %q: %w", b.name, providers.ErrUIDValidityChanged))
	}
	var out []entry
	if uids == nil {
		out = slices.Clone(b.msgs)
	} else {
		want := slices.Clone(uids)
		slices.Sort(want)
		want = slices.Compact(want)
		for _, u := range want {
			if i, ok := slices.BinarySearchFunc(b.msgs, u, func(e entry, u providers.UID) int { return int(e.uid) - int(u) }); ok {
				out = append(out, b.msgs[i])
			}
		}
	}
	return f, out, b.fi.ModTime(), nil
}

// UIDs implements providers.Mailbox.
func (h *handle) UIDs(ctx context.Context) ([]providers.UID, error) {
	f, msgs, _, err := h.snapshot(ctx, nil)
	if err != nil {
		return nil, err
	}
	f.Close()
	out := make([]providers.UID, len(msgs))
	for i, e := range msgs {
		out[i] = e.uid
	}
	return out, nil
}

// reader serves messages of one open file, reusing its buffers.
type reader struct {
	f        *os.File
	raw, out *bufio.Reader
}

func newReader(f *os.File) *reader {
	return &reader{f: f, raw: bufio.NewReaderSize(nil, bufSize), out: bufio.NewReaderSize(nil, bufSize)}
}

// open returns a reader of the message as served: unquoted, exactly
// e.size bytes, failing if the file holds fewer.
func (r *reader) open(e entry) (io.Reader, error) {
	head := make([]byte, len(fromSpace))
	if _, err := r.f.ReadAt(head, e.off+bomLen(e.off, r.f)); err != nil || string(head) != string(fromSpace) {
		return nil, fmt.Errorf("no From_ line at byte %d any more (file changed?)", e.off)
	}
	r.raw.Reset(io.NewSectionReader(r.f, e.data, e.end-e.data))
	return &exact{r: io.LimitReader(newUnquoter(r.raw), e.size), left: e.size}, nil
}

// bomLen is the length of a byte order mark before the From_ line at off.
func bomLen(off int64, f *os.File) int64 {
	if off != 0 {
		return 0
	}
	b := make([]byte, len(bom))
	if n, _ := f.ReadAt(b, 0); n == len(bom) && string(b) == string(bom) {
		return int64(len(bom))
	}
	return 0
}

// exact turns an early end of a message into an error.
type exact struct {
	r    io.Reader
	left int64
}

func (x *exact) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	x.left -= int64(n)
	if err == io.EOF && x.left > 0 {
		err = fmt.Errorf("message ends %d bytes early (file changed?): %w", x.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// List implements providers.Mailbox. It reads each message's header and
// the start of its body from the file for the dedup key, and its flags and
// date when the sidecar does not give them.
func (h *handle) List(ctx context.Context, uids []providers.UID, fn func(providers.MessageInfo) error) error {
	if uids != nil && len(uids) == 0 {
		return nil
	}
	f, msgs, mtime, err := h.snapshot(ctx, uids)
	if err != nil {
		return err
	}
	defer f.Close()
	rd := newReader(f)
	for _, e := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		body, err := rd.open(e)
		if err != nil {
			return h.b.mailboxError("list", &providers.MessageError{Mailbox: h.b.name, UID: e.uid, Err: err})
		}
		rd.out.Reset(body)
		hdr, err := readHeader(rd.out, e.size)
		if err != nil {
			return h.b.mailboxError("list", &providers.MessageError{Mailbox: h.b.name, UID: e.uid, Err: err})
		}
		info := providers.MessageInfo{UID: e.uid, Size: e.size, CRLFSize: e.size + e.bare, Key: hdr.key, Flags: hdr.flags}
		switch {
		case e.meta != nil && !e.meta.date.IsZero():
			info.InternalDate = e.meta.date
		case e.hasDate:
			// The From_ line's, or for one without a date the header's
			// (see scanner.headDate).
			info.InternalDate = time.Unix(e.date, 0).UTC()
		default:
			info.InternalDate = mtime
		}
		if e.meta != nil && e.meta.hasFlags {
			info.Flags = slices.Clone(e.meta.flags)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Fetch implements providers.Mailbox, streaming each message from the file.
func (h *handle) Fetch(ctx context.Context, uids []providers.UID, fn func(providers.UID, int64, io.Reader) error) error {
	if uids != nil && len(uids) == 0 {
		return nil
	}
	f, msgs, _, err := h.snapshot(ctx, uids)
	if err != nil {
		return err
	}
	defer f.Close()
	rd := newReader(f)
	for _, e := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		body, err := rd.open(e)
		if err != nil {
			return h.b.mailboxError("fetch from", &providers.MessageError{Mailbox: h.b.name, UID: e.uid, Err: err})
		}
		if err := fn(e.uid, e.size, body); err != nil {
			return err
		}
	}
	return nil
}

// Append implements providers.Mailbox. The message is written before
// Append returns, and done is called then; Flush and Close sync the files.
func (h *handle) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := h.b.s.writable("append to " + h.b.name); err != nil {
		return err
	}
	if size < 0 {
		return providers.WithClass(providers.ClassMessage, fmt.Errorf("append to %q: negative size %d", h.b.name, size))
	}
	date := info.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	// INTERNALDATE has whole seconds; keeping the zone keeps what IMAP gave.
	date = date.Truncate(time.Second)
	uid, validity, err := h.b.appendMessage(ctx, r, size, providers.AppendFlags(info.Flags), date)
	if err != nil {
		return err
	}
	if validity != h.info.UIDValidity {
		uid = 0 // numbered in a mailbox this handle does not describe
	}
	done(uid, nil)
	return nil
}

// Flush implements providers.Mailbox: every Append is done already; this
// syncs the files to disk.
func (h *handle) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return h.b.syncLocked()
}

// Close implements providers.Mailbox.
func (h *handle) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.b.release() })
	return h.closeErr
}
