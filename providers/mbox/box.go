package mbox

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// entry is one message in the index of a mailbox.
type entry struct {
	span
	uid  providers.UID
	next int64 // where the next message (or the end of the file) starts
	meta *meta // from the sidecar; nil means the message itself says
}

// meta is what the sidecar says about a message.
type meta struct {
	flags    []string
	hasFlags bool
	date     time.Time // zero when the sidecar gives none
}

// box is one mailbox file. Every handle on it shares its index.
type box struct {
	s    *Store
	name string
	path string

	mu       sync.Mutex
	indexed  bool
	fi       os.FileInfo // the file as indexed (or as last written)
	validity uint32
	msgs     []entry // ascending UID
	uidNext  uint32
	hash     hash.Hash // sha256 of the file as indexed and appended to
	size     int64
	tail     string // what to write before the next From_ line
	stale    bool   // the sidecar does not describe the file: rewrite it before writing
	problems []Problem
	// torn is an append mailferry was interrupted writing, at the end of
	// the file from byte size on: the index leaves it out, and the first
	// writer cuts it off (see tornTail).
	torn struct {
		uid  uint32
		open bool
	}

	refs  int      // open handles
	w     *os.File // the mbox, for appending
	sw    *os.File // the sidecar, for appending
	dirty bool     // written since the last sync
	// Buffers of appendMessage, kept between appends: a message is streamed
	// through them, and allocating them per message dominated the cost of
	// writing small messages.
	rbuf *bufio.Reader
	wbuf *bufio.Writer
}

func (b *box) mailboxError(what string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w: %w", providers.ErrMailboxNotFound, err)
	}
	if providers.ClassOf(err) != providers.ClassUnclassified || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %q: %w", what, b.name, err)
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// The local disk is full for every account of the run.
		return providers.WithClass(providers.ClassRun, fmt.Errorf("%s %q: %w", what, b.name, err))
	}
	return providers.WithClass(providers.ClassMailbox, fmt.Errorf("%s %q: %w", what, b.name, err))
}

// infoLocked describes the mailbox as indexed.
func (b *box) infoLocked() providers.MailboxInfo {
	return providers.MailboxInfo{Name: b.name, SpecialUse: providers.RoleByName(b.name), UIDValidity: b.validity,
		UIDNext: b.uidNext, Messages: len(b.msgs)}
}

// cachedInfo describes the mailbox without reading it: counts are given
// only if the index is current.
func (b *box) cachedInfo() providers.MailboxInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fi, err := os.Stat(b.path); err == nil && b.indexed && sameFile(fi, b.fi) {
		return b.infoLocked()
	}
	return providers.MailboxInfo{Name: b.name, SpecialUse: providers.RoleByName(b.name), Messages: -1}
}

func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// open indexes the mailbox if needed and counts a new handle.
func (b *box) open(ctx context.Context) (providers.MailboxInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.readLocked(ctx)
	if err != nil {
		return providers.MailboxInfo{}, err
	}
	f.Close()
	if err := b.repairLocked(ctx); err != nil {
		return providers.MailboxInfo{}, err
	}
	b.refs++
	return b.infoLocked(), nil
}

// readLocked opens the file for reading and makes sure the index describes
// what that open file holds, re-reading it if it changed. Reading through
// the returned file is then consistent with the index even if the file is
// replaced meanwhile.
func (b *box) readLocked(ctx context.Context) (*os.File, error) {
	f, err := b.openLocked(ctx, false)
	if err != nil {
		return nil, err
	}
	unlock(f)
	return f, nil
}

// openLocked opens the file, takes a flock on it (shared or exclusive) and
// re-indexes it if it changed. The caller unlocks and closes it.
func (b *box) openLocked(ctx context.Context, exclusive bool) (*os.File, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return nil, b.mailboxError("read", err)
	}
	if err := waitLock(ctx, f, exclusive); err != nil {
		f.Close()
		return nil, b.mailboxError("read", err)
	}
	fi, err := f.Stat()
	if err == nil && !(b.indexed && sameFile(fi, b.fi)) {
		err = b.indexLocked(f, fi)
	}
	if err != nil {
		unlock(f)
		f.Close()
		return nil, b.mailboxError("read", err)
	}
	return f, nil
}

// waitLock takes a flock on f, waiting for other processes while ctx lasts.
func waitLock(ctx context.Context, f *os.File, exclusive bool) error {
	for {
		ok, err := tryLock(f, exclusive)
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// indexLocked reads the whole file once and rebuilds the index, checking
// the sidecar against it.
func (b *box) indexLocked(f *os.File, fi os.FileInfo) error {
	sc, problems, err := readSidecar(b.path + sidecarExt)
	if err != nil {
		return err
	}
	var at []int64
	if sc != nil {
		for _, c := range sc.checkpoints {
			at = append(at, c.end)
		}
	}
	res, err := scan(io.NewSectionReader(f, 0, fi.Size()), b.path, at)
	if err != nil {
		return err
	}
	b.torn.open = false
	// Only the checkpoints need to hold here, not cover mail: the first
	// append into a new mailbox, killed, leaves a file whose one
	// checkpoint is the empty one; tornTail's own checks (the record's
	// offset and From_ line, a shorter message, nothing else) say that
	// the bytes are that append's.
	if sc != nil && holds(sc, res) {
		if cut, uid, ok := tornTail(f, sc, res); ok {
			// Read the file as it was before that append began.
			if res, err = scan(io.NewSectionReader(f, 0, cut), b.path, at); err != nil {
				return err
			}
			b.torn.uid, b.torn.open = uid, true
		}
	}
	b.problems = append(res.problems, problems...)
	b.fi, b.hash, b.size, b.tail = fi, res.hash, res.size, res.tail
	b.msgs, b.uidNext, b.stale = nil, 0, true
	b.validity = derivedValidity(res.hash.Sum(nil), sc)
	if b.torn.open {
		b.problem(b.size, "an append mailferry was interrupted writing (UID %d, bytes %d to %d) is left out; "+
			"other mail readers may see it as a message until mailferry next writes to this mailbox, which cuts it off",
			b.torn.uid, b.size, fi.Size())
	}
	if sc != nil && b.trust(sc, res) && b.apply(sc, res.spans) {
		// A torn last line in the sidecar: appending after it would
		// hide what follows from the next reading.
		b.validity, b.stale = sc.validity, len(problems) > 0
	} else {
		if sc != nil && (len(sc.records) > 0 || len(sc.checkpoints) > 0 && res.size > 0) {
			b.problem(-1, "the file no longer matches its sidecar (changed by another program?): UIDVALIDITY changes, flags and dates come from the messages")
		}
		b.msgs = make([]entry, len(res.spans))
		for i, sp := range res.spans {
			b.msgs[i] = entry{span: sp, uid: providers.UID(i + 1), next: nextStart(res, i)}
		}
		b.uidNext = uint32(len(b.msgs) + 1)
	}
	b.indexed = true
	return nil
}

// tornTail finds an append mailferry was interrupted writing (killed) at
// the end of a file its sidecar describes: after the last checkpoint, the
// sidecar's last record announces a message of which the file holds only
// the start (perhaps not even a whole From_ line), and nothing else. It
// returns where the file ends without it (the last checkpoint) and its UID.
// Bytes another program appended are never taken for one.
func tornTail(f *os.File, sc *sidecar, res *scanResult) (int64, uint32, bool) {
	if len(sc.checkpoints) == 0 || len(sc.records) == 0 {
		return 0, 0, false
	}
	end := sc.checkpoints[len(sc.checkpoints)-1].end
	rec := sc.records[len(sc.records)-1]
	// The append wrote at most "\n\n" before its From_ line, which holds
	// the date of the record.
	if res.size <= end || rec.off < end || rec.off > end+2 || !rec.has.date {
		return 0, 0, false
	}
	for _, sp := range res.spans {
		if sp.off < end {
			continue
		}
		if sp.off != rec.off || sp.size >= rec.size {
			return 0, 0, false // another message, or the whole one
		}
	}
	// What follows the checkpoint is the start of what that append writes.
	from := fromLine(rec.date)
	head := make([]byte, min(res.size, rec.off+int64(len(from)))-end)
	if _, err := f.ReadAt(head, end); err != nil {
		return 0, 0, false
	}
	sep := min(int(rec.off-end), len(head))
	if strings.Trim(string(head[:sep]), "\n") != "" || !bytes.HasPrefix(from, head[sep:]) {
		return 0, 0, false
	}
	return end, rec.uid, true
}

// cutTornLocked cuts off the interrupted append the index leaves out, so
// that no other reader sees it as a message. The caller holds the file's
// exclusive lock.
func (b *box) cutTornLocked() error {
	if !b.torn.open {
		return nil
	}
	w, err := os.OpenFile(b.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = w.Truncate(b.size)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fi, err := os.Stat(b.path)
	if err != nil {
		return err
	}
	old := b.fi.Size()
	b.fi, b.torn.open = fi, false
	b.problems = slices.DeleteFunc(b.problems, func(p Problem) bool { return strings.HasPrefix(p.What, "an append mailferry was interrupted") })
	b.problem(b.size, "an append mailferry was interrupted writing (UID %d) was cut off: the file is cut back from %d to %d bytes, "+
		"where the last complete message ends", b.torn.uid, old, b.size)
	return nil
}

// repair cuts off an interrupted append when the store may write.
func (b *box) repairLocked(ctx context.Context) error {
	if !b.torn.open || b.s.opts.ReadOnly {
		return nil
	}
	f, err := b.openLocked(ctx, true)
	if err != nil {
		return err
	}
	defer f.Close()
	defer unlock(f)
	if err := b.cutTornLocked(); err != nil {
		return b.mailboxError("repair", err)
	}
	return nil
}

func nextStart(res *scanResult, i int) int64 {
	if i+1 < len(res.spans) {
		return res.spans[i+1].off
	}
	return res.size
}

func (b *box) problem(off int64, format string, args ...any) {
	b.problems = append(b.problems, Problem{Path: b.path, Offset: off, What: fmt.Sprintf(format, args...)})
}

// derivedValidity makes a UIDVALIDITY from the file's content, for files
// the sidecar does not describe: the same content gives the same value on
// every reading, any change a new one.
func derivedValidity(sum []byte, sc *sidecar) uint32 {
	v := binary.BigEndian.Uint32(sum) | 1
	if sc != nil && v == sc.validity {
		v ^= 2
	}
	return v
}

// trust reports whether the sidecar describes the file: every checkpoint
// holds, and one covers more than an empty file, or the file is empty.
func (b *box) trust(sc *sidecar, res *scanResult) bool {
	if !holds(sc, res) {
		return false
	}
	covered := res.size == 0
	for _, c := range sc.checkpoints {
		covered = covered || c.end > 0
	}
	return covered
}

// holds reports whether every checkpoint of the sidecar holds for the file.
func holds(sc *sidecar, res *scanResult) bool {
	for _, c := range sc.checkpoints {
		sum, ok := res.sums[c.end]
		if !ok || c.end > res.size || !bytes.Equal(sum, c.sum) {
			return false
		}
	}
	return true
}

// apply numbers the messages with the sidecar's records: a message whose
// From_ line is at a record's offset gets its UID, size, flags and date;
// others get the next UID after the one before. It returns false if the
// records contradict the file.
func (b *box) apply(sc *sidecar, spans []span) bool {
	recs := slices.Clone(sc.records)
	slices.SortStableFunc(recs, func(x, y sideRecord) int { return cmp.Compare(x.off, y.off) })
	var prev, maxRec uint32
	msgs := make([]entry, 0, len(spans))
	r := 0
	for i, sp := range spans {
		next := b.size
		if i+1 < len(spans) {
			next = spans[i+1].off
		}
		var rec *sideRecord
		for r < len(recs) && recs[r].off <= sp.off {
			maxRec = max(maxRec, recs[r].uid)
			if recs[r].off == sp.off {
				rec = &recs[r] // the last one for an offset wins
			}
			r++
		}
		if rec != nil && rec.has.date && sp.hasDate && sp.date != rec.date.Unix() {
			// Not the From_ line mailferry writes for that record: another
			// program's message where an interrupted append was to go.
			rec = nil
		}
		e := entry{span: sp, next: next}
		if rec == nil {
			prev = max(prev, maxRec) + 1
			e.uid = providers.UID(prev)
			msgs = append(msgs, e)
			continue
		}
		if rec.size != sp.size && rec.size != sp.size-1 {
			b.problem(sp.off, "message of an interrupted append (%d of %d bytes); skipped", sp.size, rec.size)
			continue
		}
		if rec.uid <= prev {
			b.problem(sp.off, "sidecar gives UID %d after UID %d", rec.uid, prev)
			return false
		}
		prev = rec.uid
		if rec.size == sp.size-1 && sp.lastBare {
			e.bare-- // the newline written after a message without one
		}
		e.uid, e.size = providers.UID(rec.uid), rec.size
		if rec.has.flags || rec.has.date {
			e.meta = &meta{flags: rec.flags, hasFlags: rec.has.flags, date: rec.date}
		}
		msgs = append(msgs, e)
	}
	for _, rec := range recs[r:] {
		maxRec = max(maxRec, rec.uid)
	}
	b.msgs, b.uidNext = msgs, max(prev, maxRec)+1
	return true
}

// release syncs, and closes the files for appending with the last handle.
func (b *box) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.syncLocked()
	b.refs--
	if b.refs == 0 {
		err = errors.Join(err, b.closeWritersLocked())
	}
	return err
}

func (b *box) closeWritersLocked() error {
	var err error
	if b.w != nil {
		err = b.w.Close()
		b.w = nil
	}
	if b.sw != nil {
		err = errors.Join(err, b.sw.Close())
		b.sw = nil
	}
	return err
}

func (b *box) syncLocked() error {
	if !b.dirty {
		return nil
	}
	var err error
	if b.w != nil {
		err = b.w.Sync()
	}
	if b.sw != nil {
		err = errors.Join(err, b.sw.Sync())
	}
	if err != nil {
		return b.mailboxError("sync", err)
	}
	b.dirty = false
	return nil
}

// writersLocked opens the files for appending, again if the mbox was
// replaced since they were opened.
func (b *box) writersLocked() error {
	if b.w != nil {
		if fi, err := b.w.Stat(); err != nil || !os.SameFile(fi, b.fi) {
			b.closeWritersLocked()
		}
	}
	var err error
	if b.w == nil {
		if b.w, err = os.OpenFile(b.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
			return err
		}
	}
	if b.sw == nil {
		if b.sw, err = os.OpenFile(b.path+sidecarExt, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// rewriteSidecarLocked writes a sidecar that describes the file as indexed:
// the UIDVALIDITY in use, every message's UID, and a checkpoint.
func (b *box) rewriteSidecarLocked() error {
	if b.sw != nil {
		b.sw.Close()
		b.sw = nil
	}
	err := writeFileAtomic(b.path+sidecarExt, func(w io.Writer) error {
		if _, err := w.Write(headerLine(b.validity)); err != nil {
			return err
		}
		for _, e := range b.msgs {
			var l []byte
			if e.meta != nil {
				l = recordLine(uint32(e.uid), e.off, e.size, e.meta.flags, e.meta.date, true)
			} else {
				l = recordLine(uint32(e.uid), e.off, e.size, nil, time.Time{}, false)
			}
			if _, err := w.Write(l); err != nil {
				return err
			}
		}
		_, err := w.Write(checkpointLine(b.size, b.hash.Sum(nil)))
		return err
	})
	if err != nil {
		return err
	}
	b.stale = false
	return nil
}

// fromLine is the From_ line mailferry writes: the sender is not known
// from the bytes alone, so it is the conventional MAILER-DAEMON.
func fromLine(date time.Time) []byte {
	return []byte(fromMailerDaemon + date.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n")
}

const fromMailerDaemon = "From MAILER-DAEMON "

// appendMessage writes one message at the end of the file: a sidecar line
// first, then the From_ line, the quoted message and a blank line, then a
// checkpoint. On failure the file is cut back to where it was.
func (b *box) appendMessage(ctx context.Context, r io.Reader, size int64, flags []string, date time.Time) (providers.UID, uint32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.openLocked(ctx, true)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	defer unlock(f)
	if err := b.cutTornLocked(); err != nil {
		return 0, 0, b.mailboxError("append to", err)
	}
	if b.stale {
		if err := b.rewriteSidecarLocked(); err != nil {
			return 0, 0, b.mailboxError("append to", err)
		}
	}
	if err := b.writersLocked(); err != nil {
		return 0, 0, b.mailboxError("append to", err)
	}
	uid := b.uidNext
	b.uidNext++
	off := b.size + int64(len(b.tail))
	b.dirty = true
	if _, err := b.sw.Write(recordLine(uid, off, size, flags, date, true)); err != nil {
		return 0, 0, b.mailboxError("append to", err)
	}

	sum, err := b.hash.(hash.Cloner).Clone()
	if err != nil {
		return 0, 0, b.mailboxError("append to", err)
	}
	from := fromLine(date)
	cw := &countWriter{w: io.MultiWriter(b.w, sum)}
	if b.wbuf == nil {
		b.rbuf, b.wbuf = bufio.NewReaderSize(nil, bufSize), bufio.NewWriterSize(nil, bufSize)
	}
	bw := b.wbuf
	bw.Reset(cw)
	defer bw.Reset(nil)
	bw.WriteString(b.tail)
	bw.Write(from)
	c, err := copyQuoted(bw, b.rbuf, r, size)
	if err == nil {
		extra := "\n"
		if size > 0 && c.last != '\n' {
			extra = "\n\n"
		}
		bw.WriteString(extra)
		err = bw.Flush()
	}
	if err != nil {
		if terr := b.w.Truncate(b.size); terr != nil {
			b.problem(off, "cannot cut back an append that failed: %v", terr)
			b.indexed = false
		} else if fi, serr := b.w.Stat(); serr == nil {
			b.fi = fi // as indexed again: no need to read it all
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			// Reading the message failed: the source's error, with its class.
			return 0, 0, fmt.Errorf("append to %q: %w", b.name, err)
		}
		return 0, 0, b.mailboxError("append to", err)
	}
	end := b.size + cw.n
	if _, err := b.sw.Write(checkpointLine(end, sum.Sum(nil))); err != nil {
		return 0, 0, b.mailboxError("append to", err)
	}
	data := off + int64(len(from))
	e := entry{uid: providers.UID(uid), next: end, meta: &meta{flags: flags, hasFlags: true, date: date},
		span: span{off: off, data: data, end: data + c.stored, size: size, date: date.Unix(), hasDate: true, bare: c.bare}}
	if size > 0 && c.last != '\n' {
		e.end++
	}
	if n := len(b.msgs); n > 0 {
		b.msgs[n-1].next = off
	}
	b.msgs = append(b.msgs, e)
	b.hash, b.size, b.tail = sum, end, ""
	if fi, err := b.w.Stat(); err == nil {
		b.fi = fi
	} else {
		b.indexed = false
	}
	return providers.UID(uid), b.validity, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// remove rewrites the file without the messages uids, keeping everything
// else byte for byte, and a sidecar that keeps the others' UIDs.
func (b *box) remove(ctx context.Context, validity uint32, uids []providers.UID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.openLocked(ctx, true)
	if err != nil {
		return err
	}
	defer f.Close()
	defer unlock(f)
	if b.validity != validity {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("remove from %q: %w", b.name, providers.ErrUIDValidityChanged))
	}
	drop := map[providers.UID]bool{}
	for _, u := range uids {
		drop[u] = true
	}
	var keep []entry
	for _, e := range b.msgs {
		if !drop[e.uid] {
			keep = append(keep, e)
		}
	}
	if len(keep) == len(b.msgs) {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return b.mailboxError("remove from", err)
	}
	// The new file: what lies before the first message, then each kept
	// message up to where the next one starts.
	var moved []entry
	hsum := sha256.New()
	var size int64
	err = writeFileAtomic(b.path, func(w io.Writer) error {
		cw := &countWriter{w: io.MultiWriter(w, hsum)}
		first := b.size
		if len(b.msgs) > 0 {
			first = b.msgs[0].off
		}
		if _, err := io.Copy(cw, io.NewSectionReader(f, 0, first)); err != nil {
			return err
		}
		for _, e := range keep {
			delta := cw.n - e.off
			if _, err := io.Copy(cw, io.NewSectionReader(f, e.off, e.next-e.off)); err != nil {
				return err
			}
			e.off, e.data, e.end, e.next = e.off+delta, e.data+delta, e.end+delta, e.next+delta
			moved = append(moved, e)
		}
		size = cw.n
		return nil
	})
	if err != nil {
		return b.mailboxError("remove from", err)
	}
	os.Chmod(b.path, fi.Mode().Perm())
	b.closeWritersLocked()
	b.msgs, b.hash, b.size = moved, hsum, size
	err = b.rewriteSidecarLocked()
	// The next use reads the new file again (finding the sidecar true to
	// it); if the sidecar could not be written, that reading sees the
	// mismatch and changes UIDVALIDITY, which is safe.
	b.indexed = false
	if err != nil {
		return b.mailboxError("remove from", err)
	}
	return nil
}
