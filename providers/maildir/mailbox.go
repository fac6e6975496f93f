package maildir

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// handle is one open mailbox.
type handle struct {
	f    *folder
	info providers.MailboxInfo

	mu       sync.Mutex
	pending  []func(error) // done calls of appends not yet made durable
	dirty    bool          // files renamed into cur since the last sync
	flushErr error         // a sync that failed inside Append, for Flush to report

	closeOnce sync.Once
	closeErr  error
}

func (h *handle) Info() providers.MailboxInfo { return h.info }

// snapshot returns the folder's messages among uids: as last read, or,
// with rescan, read again. List and Fetch read again only when a file is
// missing (see open), so that copying a large folder batch by batch does
// not read its directory for every batch; UIDs always reads again.
func (h *handle) snapshot(ctx context.Context, uids []providers.UID, rescan bool) ([]msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if rescan || !f.scanned {
		if err := f.scanLocked(ctx); err != nil {
			return nil, err
		}
	}
	return f.pickLocked(uids, h.info.UIDValidity)
}

// UIDs implements providers.Mailbox; it reads the folder again.
func (h *handle) UIDs(ctx context.Context) ([]providers.UID, error) {
	msgs, err := h.snapshot(ctx, nil, true)
	if err != nil {
		return nil, err
	}
	out := make([]providers.UID, len(msgs))
	for i, m := range msgs {
		out[i] = m.uid
	}
	return out, nil
}

// open opens a message's file, finding it again if it was renamed (its
// flags changed) since the folder was read. A message that is gone gives
// nil and no error.
func (h *handle) open(ctx context.Context, m msg) (*os.File, msg, error) {
	f := h.f
	file, err := os.Open(f.path(m))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return file, m, err
	}
	fresh, err := h.snapshot(ctx, []providers.UID{m.uid}, true)
	if err != nil {
		return nil, m, err
	}
	if len(fresh) == 0 {
		return nil, m, nil
	}
	m = fresh[0]
	file, err = os.Open(f.path(m))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, m, nil
	}
	return file, m, err
}

// messageError names the folder and file of a message that cannot be
// read.
func (h *handle) messageError(what string, m msg, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return classify(fmt.Sprintf("%s %q", what, h.f.name), &providers.MessageError{Mailbox: h.f.name, UID: m.uid, Err: fmt.Errorf("%s: %w", h.f.path(m), err)})
}

// List implements providers.Mailbox. It reads each file's header and the
// start of its body for the dedup key.
func (h *handle) List(ctx context.Context, uids []providers.UID, fn func(providers.MessageInfo) error) error {
	br := bufio.NewReaderSize(nil, 32<<10)
	return h.each(ctx, uids, func(m msg) error {
		file, m, err := h.open(ctx, m)
		if err != nil {
			return h.messageError("list", m, err)
		}
		if file == nil {
			return nil // expunged meanwhile
		}
		info, err := h.describe(file, m, br)
		file.Close()
		if err != nil {
			return h.messageError("list", m, err)
		}
		return fn(info)
	})
}

// each calls fn for each message among uids (nil: all) in the folder as
// last read, and stops at the first error from fn or ctx. An empty,
// non-nil uids calls fn for none.
func (h *handle) each(ctx context.Context, uids []providers.UID, fn func(msg) error) error {
	if uids != nil && len(uids) == 0 {
		return ctx.Err()
	}
	msgs, err := h.snapshot(ctx, uids, false)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// describe reads what List reports about one open message file.
func (h *handle) describe(file *os.File, m msg, br *bufio.Reader) (providers.MessageInfo, error) {
	fi, err := file.Stat()
	if err != nil {
		return providers.MessageInfo{}, err
	}
	size := fi.Size()
	f := h.f
	f.mu.Lock()
	if m.fn.size >= 0 && m.fn.size != size {
		f.problem(f.path(m), "the name says S=%d, the file holds %d bytes; served as the file holds", m.fn.size, size)
	}
	flags := f.flagsLocked(m)
	f.mu.Unlock()
	br.Reset(io.LimitReader(file, size))
	key, err := readKey(br, size)
	if err != nil {
		return providers.MessageInfo{}, err
	}
	return providers.MessageInfo{UID: m.uid, Size: size, Flags: flags, InternalDate: fi.ModTime().Truncate(time.Second).UTC(), Key: key}, nil
}

// Flags implements providers.FlagLister from the file names alone.
func (h *handle) Flags(ctx context.Context, uids []providers.UID, fn func(providers.UID, []string) error) error {
	return h.each(ctx, uids, func(m msg) error {
		h.f.mu.Lock()
		flags := h.f.flagsLocked(m)
		h.f.mu.Unlock()
		return fn(m.uid, flags)
	})
}

// Fetch implements providers.Mailbox, streaming each file as it is. A
// ",W=" size in the name that the bytes contradict is reported.
func (h *handle) Fetch(ctx context.Context, uids []providers.UID, fn func(providers.UID, int64, io.Reader) error) error {
	return h.each(ctx, uids, func(m msg) error {
		file, m, err := h.open(ctx, m)
		if err != nil {
			return h.messageError("fetch from", m, err)
		}
		if file == nil {
			return nil
		}
		err = h.serve(file, m, fn)
		file.Close()
		return err
	})
}

func (h *handle) serve(file *os.File, m msg, fn func(providers.UID, int64, io.Reader) error) error {
	fi, err := file.Stat()
	if err != nil {
		return h.messageError("fetch from", m, err)
	}
	size := fi.Size()
	body := &countingReader{r: io.LimitReader(file, size), left: size}
	err = fn(m.uid, size, body)
	if body.err != nil {
		return h.messageError("fetch from", m, body.err)
	}
	if err == nil && body.left == 0 && m.fn.vsize >= 0 && size+body.bareLF != m.fn.vsize {
		h.f.mu.Lock()
		h.f.problem(h.f.path(m), "the name says W=%d, the file's bytes make %d", m.fn.vsize, size+body.bareLF)
		h.f.mu.Unlock()
	}
	return err
}

// countingReader serves exactly left bytes, counts LFs without a CR
// before them, and turns a file that got shorter into an error.
type countingReader struct {
	r      io.Reader
	left   int64
	bareLF int64
	prev   byte
	err    error // a read error of the file, not of the caller
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	for _, b := range p[:n] {
		if b == '\n' && c.prev != '\r' {
			c.bareLF++
		}
		c.prev = b
	}
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		err = fmt.Errorf("file ends %d bytes early (changed while read?): %w", c.left, io.ErrUnexpectedEOF)
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// readKey computes the message's dedup key as providers.KeyOf does for
// the whole message, keeping only the key fields of the header (and a
// placeholder for every other line, so that continuation lines attach
// where KeyOf attaches them) and the start of the body.
func readKey(br *bufio.Reader, size int64) (providers.Key, error) {
	var hdr bytes.Buffer
	keep := false // the current field is a key field
	start := true // the next piece starts a line
	for {
		piece, err := br.ReadSlice('\n')
		more := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !more && err != io.EOF {
			return providers.Key{}, err
		}
		if len(piece) == 0 {
			break
		}
		if start {
			if string(piece) == "\n" || string(piece) == "\r\n" {
				break // the blank line ends the header
			}
			if piece[0] != ' ' && piece[0] != '\t' {
				keep = false
				if colon := bytes.IndexByte(piece, ':'); colon > 0 {
					keep = isKeyField(string(bytes.TrimRight(piece[:colon], " \t")))
				}
				if !keep {
					hdr.WriteString("X:\n")
				}
			}
		}
		if keep {
			hdr.Write(piece)
		}
		start = piece[len(piece)-1] == '\n'
		if err == io.EOF {
			break
		}
	}
	body := make([]byte, providers.KeyBodyPrefix)
	n, err := io.ReadFull(br, body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return providers.Key{}, err
	}
	return providers.NewKey(hdr.Bytes(), body[:n], size), nil
}

func isKeyField(name string) bool {
	return slices.ContainsFunc(providers.KeyHeaderFields(), func(f string) bool { return strings.EqualFold(f, name) })
}

// Close implements providers.Mailbox: it makes what was appended durable.
func (h *handle) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.Flush(context.Background()) })
	return h.closeErr
}
