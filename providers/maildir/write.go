package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// groupCommit is how many appends share one sync of the folder's
// directory and UID list before their done is called.
const groupCommit = 64

// Append implements providers.Mailbox. The message is written to tmp/,
// fsynced, given the INTERNALDATE as mtime and renamed into cur/ with
// its flags in the name and its sizes (",S=", ",W="), under the folder's
// lock, which also records its UID in dovecot-uidlist (and new keywords
// in dovecot-keywords). done is called once the directory and the UID
// list are synced too: every groupCommit appends, and at Flush.
func (h *handle) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f := h.f
	if err := f.s.writable("append to " + f.name); err != nil {
		return err
	}
	if size < 0 {
		return providers.WithClass(providers.ClassMessage, fmt.Errorf("append to %q: negative size %d", f.name, size))
	}
	date := info.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	date = date.Truncate(time.Second)
	unique := f.s.names.next()
	tmp := filepath.Join(f.dir, "tmp", unique)
	bareLF, err := writeMessage(tmp, r, size, date)
	if err != nil {
		os.Remove(tmp)
		var pe *os.PathError
		if !errors.As(err, &pe) {
			// Reading the message failed: the source's error, with its class.
			return fmt.Errorf("append to %q: %w", f.name, err)
		}
		return f.mailboxError("append to", err)
	}
	base := fmt.Sprintf("%s,S=%d,W=%d", unique, size, size+bareLF)
	uid, err := f.deliver(ctx, tmp, base, providers.AppendFlags(info.Flags), h.info.UIDValidity)
	if err != nil {
		os.Remove(tmp)
		if providers.ClassOf(err) == providers.ClassMessage {
			done(0, err)
			return nil
		}
		return err
	}
	h.mu.Lock()
	h.dirty = true
	h.pending = append(h.pending, func(err error) {
		if err != nil {
			done(0, err)
			return
		}
		done(uid, nil)
	})
	full := len(h.pending) >= groupCommit
	h.mu.Unlock()
	if full {
		// done has been called for every pending append, with the error if
		// the sync failed; Flush reports that error.
		if err := h.Flush(ctx); err != nil {
			h.mu.Lock()
			h.flushErr = err
			h.mu.Unlock()
		}
	}
	return nil
}

// writeMessage writes exactly size bytes from r to a new file at path,
// fsyncs it and sets its mtime, and returns how many LFs had no CR
// before them. An error that is not an *os.PathError is r's.
func writeMessage(path string, r io.Reader, size int64, mtime time.Time) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, err
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	cr := &countingReader{r: io.LimitReader(r, size), left: size}
	n, err := io.Copy(&pathWriter{file}, cr)
	if err == nil && n != size {
		err = fmt.Errorf("message ends after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(path, time.Now(), mtime)
	}
	return cr.bareLF, err
}

// pathWriter keeps a file's write errors apart from the source's: they
// are *os.PathError, the source's are not.
type pathWriter struct{ f *os.File }

func (w *pathWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// deliver renames a written message into cur/ and records its UID, under
// the folder's lock, if the folder still has UIDVALIDITY validity.
func (f *folder) deliver(ctx context.Context, tmp, base string, flags []string, validity uint32) (providers.UID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := filepath.Join(f.dir, dovecotUIDList)
	lock, err := takeLock(ctx, path)
	if err != nil {
		return 0, f.mailboxError("lock", err)
	}
	defer lock.release()
	if err := f.refreshListLocked(); err != nil {
		return 0, err
	}
	if f.validity != validity {
		return 0, providers.WithClass(providers.ClassMailbox, fmt.Errorf("append to %q: %w", f.name, providers.ErrUIDValidityChanged))
	}
	info, err := f.infoForLocked(flags, nil)
	if err != nil {
		return 0, err
	}
	name := base + ":2," + info
	if err := os.Rename(tmp, filepath.Join(f.dir, "cur", name)); err != nil {
		return 0, f.mailboxError("append to", err)
	}
	r := f.list.add(base)
	if err := f.list.appendLines(path, []uidRec{r}); err != nil {
		// The file is in cur/ without a UID: the next reading gives it one.
		return 0, f.mailboxError("record UID in", err)
	}
	f.next = f.list.next
	f.msgs = append(f.msgs, msg{uid: providers.UID(r.uid), sub: "cur", fn: parseName(name)})
	return providers.UID(r.uid), nil
}

// refreshListLocked reads dovecot-uidlist again if another writer changed
// it since. The caller holds its lock.
func (f *folder) refreshListLocked() error {
	path := filepath.Join(f.dir, dovecotUIDList)
	fi, err := os.Stat(path)
	if err == nil && f.list != nil && f.list.fi != nil && os.SameFile(fi, f.list.fi) && fi.Size() == f.list.size {
		return nil
	}
	l, err := readUIDList(path)
	if err != nil || l == nil {
		if err == nil {
			err = errors.New("dovecot-uidlist is gone")
		}
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("append to %q: %w (%w)", f.name, providers.ErrUIDValidityChanged, err))
	}
	if l.version != 3 {
		if err := l.rewrite(path); err != nil {
			return f.mailboxError("rewrite UID list of", err)
		}
	}
	f.list, f.validity, f.next = l, l.validity, max(f.next, l.next)
	return nil
}

// infoForLocked returns the flag letters for flags, giving new keywords
// letters in dovecot-keywords, and keeping of old's letters the ones
// mailferry does not manage (unknown uppercase letters, keyword letters
// without a name). A keyword beyond the 26 a name can hold refuses the
// message.
func (f *folder) infoForLocked(flags []string, old *fileName) (string, error) {
	var system, kws, keep []byte
	changed := false
	kw := f.kw
	if kw == nil {
		kw = &keywords{}
	}
	fresh := *kw
	for _, fl := range flags {
		if c, ok := flagLetter(fl); ok {
			system = append(system, c)
			continue
		}
		if strings.HasPrefix(fl, `\`) {
			continue // \Recent and unknown system flags have no letter
		}
		if strings.ContainsFunc(fl, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			// dovecot-keywords holds one name per line, up to the line end.
			return "", providers.WithClass(providers.ClassMessage, fmt.Errorf("folder %q: keyword %q cannot be stored in a maildir", f.name, fl))
		}
		c, added, err := fresh.add(fl)
		if err != nil {
			return "", providers.WithClass(providers.ClassMessage, fmt.Errorf("folder %q: %w", f.name, err))
		}
		changed = changed || added
		kws = append(kws, c)
	}
	if old != nil {
		hasFwd := slices.ContainsFunc(flags, func(s string) bool { return strings.EqualFold(s, forwarded) })
		for i := 0; i < len(old.info); i++ {
			c := old.info[i]
			_, sys := letterFlag(c)
			switch {
			case c == 'P' && hasFwd:
				keep = append(keep, c)
			case c >= 'A' && c <= 'Z' && !sys && c != 'P':
				keep = append(keep, c)
			case c >= 'a' && c <= 'z' && fresh.name(c) == "":
				keep = append(keep, c)
			}
		}
	}
	if changed {
		if err := fresh.write(filepath.Join(f.dir, dovecotKeywords)); err != nil {
			return "", f.mailboxError("record keywords of", err)
		}
		f.kw = &fresh
	}
	return infoString(system, kws, keep), nil
}

// Flush implements providers.Mailbox: it syncs cur/ and dovecot-uidlist,
// then calls done for every append since the last Flush.
func (h *handle) Flush(ctx context.Context) error {
	h.mu.Lock()
	pending, dirty, failed := h.pending, h.dirty, h.flushErr
	h.pending, h.dirty, h.flushErr = nil, false, nil
	h.mu.Unlock()
	if !dirty {
		return failed
	}
	err := errors.Join(syncDir(filepath.Join(h.f.dir, "cur")), syncFile(filepath.Join(h.f.dir, dovecotUIDList)))
	if err != nil {
		err = h.f.mailboxError("sync", err)
		// The messages may not be durable: say so for each, so that none is
		// recorded as copied; a re-run finds the ones that were.
		for _, d := range pending {
			d(err)
		}
		return err
	}
	for _, d := range pending {
		d(nil)
	}
	return failed
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// change reads the folder again and runs fn on its messages among uids,
// under the folder's mutex and Dovecot's lock on its UID list; what names
// the change in an error.
func (f *folder) change(ctx context.Context, what string, validity uint32, uids []providers.UID, fn func([]msg) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	lock, err := takeLock(ctx, filepath.Join(f.dir, dovecotUIDList))
	if err != nil {
		return f.mailboxError("lock", err)
	}
	defer lock.release()
	if err := f.scanLocked(ctx); err != nil {
		return err
	}
	msgs, err := f.pickLocked(uids, validity)
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, f.name, err)
	}
	return fn(msgs)
}

// remove deletes the files of uids, under the folder's lock.
func (f *folder) remove(ctx context.Context, validity uint32, uids []providers.UID) error {
	return f.change(ctx, "remove from", validity, uids, f.removeLocked)
}

func (f *folder) removeLocked(msgs []msg) error {
	if len(msgs) == 0 {
		return nil
	}
	subs := map[string]bool{}
	for _, m := range msgs {
		if err := os.Remove(f.path(m)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return f.mailboxError("remove from", err)
		}
		subs[m.sub] = true
	}
	for sub := range subs {
		if err := syncDir(filepath.Join(f.dir, sub)); err != nil {
			return f.mailboxError("remove from", err)
		}
	}
	gone := map[providers.UID]bool{}
	for _, m := range msgs {
		gone[m.uid] = true
	}
	f.msgs = slices.DeleteFunc(f.msgs, func(m msg) bool { return gone[m.uid] })
	return nil
}

// setFlags renames the files of the messages in flags to carry exactly
// those flags, under the folder's lock.
func (f *folder) setFlags(ctx context.Context, validity uint32, flags map[providers.UID][]string) error {
	uids := make([]providers.UID, 0, len(flags))
	for u := range flags {
		uids = append(uids, u)
	}
	return f.change(ctx, "set flags in", validity, uids, func(msgs []msg) error {
		return f.setFlagsLocked(ctx, msgs, flags)
	})
}

func (f *folder) setFlagsLocked(ctx context.Context, msgs []msg, flags map[providers.UID][]string) error {
	renamed := false
	for _, m := range msgs {
		info, err := f.infoForLocked(providers.AppendFlags(flags[m.uid]), &m.fn)
		if err != nil {
			return err
		}
		name := m.fn.base + ":2," + info + m.fn.rest
		if m.sub == "cur" && name == m.fn.name {
			continue
		}
		if err := os.Rename(f.path(m), filepath.Join(f.dir, "cur", name)); err != nil {
			return f.mailboxError("set flags in", err)
		}
		renamed = true
	}
	if renamed {
		err := syncDir(filepath.Join(f.dir, "cur"))
		if _, serr := os.Stat(filepath.Join(f.dir, "new")); serr == nil {
			err = errors.Join(err, syncDir(filepath.Join(f.dir, "new")))
		}
		if err != nil {
			return f.mailboxError("set flags in", err)
		}
		return f.scanLocked(ctx)
	}
	return nil
}
