package maildir

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mailferry/mailferry/providers"
)

// msg is one message file of a folder.
type msg struct {
	uid providers.UID
	sub string // "cur" or "new"
	fn  fileName
}

// folder is one maildir: INBOX or a folder of the tree. Every handle on it
// shares its index.
type folder struct {
	s    *Store
	name string // canonical
	dir  string

	mu       sync.Mutex
	scanned  bool
	list     *uidList // the UID list in use; nil when there is none (read-only)
	validity uint32
	next     uint32 // UIDNEXT
	msgs     []msg  // ascending UID
	kw       *keywords
	courier  map[string][]string // Courier keywords by base
	problems []Problem           // found by any reading, once each
	reported map[string]bool     // the problems noted, by text
}

func (f *folder) path(m msg) string { return filepath.Join(f.dir, m.sub, m.fn.name) }

// problem notes what could not be read as expected, once: the same
// problem found by every reading is one line.
func (f *folder) problem(path, format string, args ...any) {
	p := Problem{Path: path, What: fmt.Sprintf(format, args...)}
	if f.reported[p.String()] {
		return
	}
	if f.reported == nil {
		f.reported = map[string]bool{}
	}
	f.reported[p.String()] = true
	f.problems = append(f.problems, p)
}

// mailboxError classifies a file error for the copier: a missing folder is
// ErrMailboxNotFound, a full disk stops the run, anything else this
// mailbox.
func (f *folder) mailboxError(what string, err error) error {
	return classify(fmt.Sprintf("%s %q", what, f.name), err)
}

func classify(what string, err error) error {
	switch {
	case providers.ClassOf(err) != providers.ClassUnclassified, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, fs.ErrNotExist):
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("%s: %w: %w", what, providers.ErrMailboxNotFound, err))
	case isDiskFull(err):
		// The local disk is full for every account of the run.
		return providers.WithClass(providers.ClassRun, fmt.Errorf("%s: %w", what, err))
	}
	return providers.WithClass(providers.ClassMailbox, fmt.Errorf("%s: %w", what, err))
}

// listFiles reads the message files in cur and new. Files whose names
// Dovecot would ignore, or that are not regular files, are skipped and
// reported; a base found twice keeps the first (cur before new).
func (f *folder) listFiles() ([]msg, error) {
	var out []msg
	seen := map[string]string{}
	for _, sub := range []string{"cur", "new"} {
		d := filepath.Join(f.dir, sub)
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) && sub == "new" {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			path := filepath.Join(d, name)
			if strings.ContainsAny(name, "\r\n") {
				f.problem(path, "file name holds a line break; skipped (Dovecot ignores such files too)")
				continue
			}
			if !e.Type().IsRegular() {
				f.problem(path, "not a regular file (symbolic links are not followed); skipped")
				continue
			}
			fn := parseName(name)
			if other, dup := seen[fn.base]; dup {
				f.problem(path, "same unique name as %s; skipped as a duplicate", other)
				continue
			}
			seen[fn.base] = path
			out = append(out, msg{sub: sub, fn: fn})
		}
	}
	return out, nil
}

// loadList reads the UID list in use: dovecot-uidlist, else
// courierimapuiddb. A broken one is reported and taken as none.
func (f *folder) loadList() (*uidList, string) {
	for _, name := range []string{dovecotUIDList, courierUIDDB} {
		path := filepath.Join(f.dir, name)
		l, err := readUIDList(path)
		if err != nil {
			f.problem(path, "%v; UIDs are given as if there were no UID list", err)
			continue
		}
		if l != nil {
			return l, name
		}
	}
	return nil, ""
}

// scanLocked reads the folder again: its files, keywords and UID list. A
// writable store gives files without a UID the next ones and records them
// (as Dovecot does when it finds new mail); a read-only store numbers
// them as Dovecot would, after the listed ones, and then reports a
// UIDVALIDITY of its own (see derivedValidity), so that these UIDs are
// never taken for the ones Dovecot will record.
func (f *folder) scanLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	files, err := f.listFiles()
	if err != nil {
		return f.mailboxError("read", err)
	}
	kwPath := filepath.Join(f.dir, dovecotKeywords)
	if f.kw, err = readKeywords(kwPath); err != nil {
		return f.mailboxError("read", err)
	}
	ckw, cprobs, err := readCourierKeywords(filepath.Join(f.dir, courierKeywords))
	if err != nil {
		f.problem(filepath.Join(f.dir, courierKeywords), "cannot read: %v; Courier keywords ignored", err)
	}
	for _, p := range cprobs {
		f.problem(filepath.Join(f.dir, courierKeywords, ":list"), "%s", p)
	}
	f.courier = ckw

	if f.s.opts.ReadOnly {
		list, _ := f.loadList()
		f.numberReadOnly(files, list)
	} else if err := f.numberWritable(ctx, files); err != nil {
		return err
	}
	f.scanned = true
	return nil
}

// unlisted returns the files list gives no UID, in Dovecot's order, and
// gives the others theirs.
func unlisted(files []msg, list *uidList) ([]msg, []msg) {
	var listed, rest []msg
	for _, m := range files {
		if list != nil {
			if uid, ok := list.byBase[m.fn.base]; ok {
				m.uid = providers.UID(uid)
				listed = append(listed, m)
				continue
			}
		}
		rest = append(rest, m)
	}
	slices.SortFunc(rest, func(a, b msg) int { return sortCompare(a.fn.base, b.fn.base) })
	return listed, rest
}

func (f *folder) numberReadOnly(files []msg, list *uidList) {
	listed, rest := unlisted(files, list)
	next, validity := uint32(1), uint32(0)
	if list != nil {
		next, validity = list.next, list.validity
	}
	if len(rest) > 0 || list == nil {
		validity = derivedValidity(validity, rest)
	}
	for i := range rest {
		rest[i].uid = providers.UID(next)
		next++
	}
	f.list, f.validity, f.next = list, validity, next
	f.setMsgs(append(listed, rest...))
}

// derivedValidity is the UIDVALIDITY of a folder read with files its UID
// list does not number (or without a list): derived from the list's and
// the names of those files, so that it is the same on every reading
// while they are, and another as soon as they change.
func derivedValidity(listed uint32, rest []msg) uint32 {
	h := sha256.New()
	fmt.Fprintf(h, "mailferry-maildir-v1 %d\n", listed)
	for _, m := range rest {
		h.Write([]byte(m.fn.base))
		h.Write([]byte{'\n'})
	}
	v := binary.BigEndian.Uint32(h.Sum(nil)) | 1
	if v == listed {
		v ^= 2
	}
	return v
}

// numberWritable gives every file a UID that the folder's dovecot-uidlist
// records, under its lock, creating the list if there is none (from
// courierimapuiddb's UIDs when there is one).
func (f *folder) numberWritable(ctx context.Context, files []msg) error {
	list, from := f.loadList()
	listed, rest := unlisted(files, list)
	if list != nil && from == dovecotUIDList && list.version == 3 && len(rest) == 0 {
		f.list, f.validity, f.next = list, list.validity, list.next
		f.setMsgs(listed)
		return nil
	}
	path := filepath.Join(f.dir, dovecotUIDList)
	lock, err := takeLock(ctx, path)
	if err != nil {
		return f.mailboxError("lock", err)
	}
	defer lock.release()
	// Under the lock the list may have changed, or appeared.
	list, from = f.loadList()
	rewrite := list == nil || from != dovecotUIDList || list.version != 3
	if list == nil {
		list = newUIDList()
	}
	listed, rest = unlisted(files, list)
	var added []uidRec
	for i := range rest {
		r := list.add(rest[i].fn.base)
		rest[i].uid = providers.UID(r.uid)
		added = append(added, r)
	}
	if rewrite {
		err = list.rewrite(path)
	} else {
		err = list.appendLines(path, added)
	}
	if err != nil {
		return f.mailboxError("record UIDs of", err)
	}
	f.list, f.validity, f.next = list, list.validity, list.next
	f.setMsgs(append(listed, rest...))
	return nil
}

func (f *folder) setMsgs(ms []msg) {
	slices.SortFunc(ms, func(a, b msg) int { return cmp.Compare(a.uid, b.uid) })
	f.msgs = ms
}

// info describes the folder as indexed.
func (f *folder) infoLocked() providers.MailboxInfo {
	return providers.MailboxInfo{Name: f.name, SpecialUse: providers.RoleByName(f.name), Subscribed: f.s.subscribed(f.name),
		UIDValidity: f.validity, UIDNext: f.next, Messages: len(f.msgs)}
}

// pick returns the messages among uids (all when nil), ascending, after
// checking the folder still has UIDVALIDITY validity.
func (f *folder) pickLocked(uids []providers.UID, validity uint32) ([]msg, error) {
	if f.validity != validity {
		return nil, providers.WithClass(providers.ClassMailbox, fmt.Errorf("mailbox %q: %w", f.name, providers.ErrUIDValidityChanged))
	}
	if uids == nil {
		return slices.Clone(f.msgs), nil
	}
	want := slices.Clone(uids)
	slices.Sort(want)
	want = slices.Compact(want)
	var out []msg
	for _, u := range want {
		if i, ok := slices.BinarySearchFunc(f.msgs, u, func(m msg, u providers.UID) int { return cmp.Compare(m.uid, u) }); ok {
			out = append(out, f.msgs[i])
		}
	}
	return out, nil
}

// flagsLocked returns a message's flags: the letters of its name (P as
// $Forwarded), its keywords by dovecot-keywords, and Courier's keywords
// for its base.
func (f *folder) flagsLocked(m msg) []string {
	var out []string
	addFlag := func(fl string) {
		if !slices.ContainsFunc(out, func(g string) bool { return strings.EqualFold(g, fl) }) {
			out = append(out, fl)
		}
	}
	for i := 0; i < len(m.fn.info); i++ {
		c := m.fn.info[i]
		switch {
		case c == 'P':
			addFlag(forwarded)
		case c >= 'a' && c <= 'z':
			if k := f.kw.name(c); k != "" {
				addFlag(k)
			} else {
				f.problem(filepath.Join(f.dir, dovecotKeywords), "keyword letter %q is used in file names but has no name here; not reported as a flag", c)
			}
		default:
			if fl, ok := letterFlag(c); ok {
				addFlag(fl)
			}
		}
	}
	for _, k := range f.courier[m.fn.base] {
		addFlag(k)
	}
	return out
}
