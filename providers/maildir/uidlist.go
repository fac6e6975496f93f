package maildir

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// UIDs come from the folder's dovecot-uidlist, as Dovecot keeps it:
//
//	3 V1700000000 N5 G<32 hex digits>      header: version, UIDVALIDITY, next UID, mailbox GUID
//	1 :1700000000.M1P2.host,S=123,W=125    "<uid> [<key><value> ...] :<base>"
//
// or from the version 1 form Courier-IMAP's courierimapuiddb shares
// ("1 <uidvalidity> <next uid>", then "<uid> <base>"). A file whose base
// no line names has no UID yet: a writable store gives it the next one
// and appends the line, as Dovecot does when it finds new mail; a
// read-only store only reports what Dovecot would give it (see folder.go).
// Writers hold dovecot-uidlist.lock, Dovecot's own lock, while they
// change the file or the folder's dovecot-keywords.
const (
	dovecotUIDList = "dovecot-uidlist"
	courierUIDDB   = "courierimapuiddb"

	// lockStale is when a lock nobody touches is taken over, as Dovecot's
	// MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT; lockWait is how long a writer
	// waits for a live one.
	lockStale = 2 * time.Minute
	lockWait  = lockStale + 10*time.Second
)

// uidRec is one line of a UID list.
type uidRec struct {
	uid  uint32
	ext  string // v3 extension fields, kept as read
	base string
}

// uidList is a UID list as read.
type uidList struct {
	version  int
	validity uint32
	next     uint32 // the next UID to give: above the header's and every line's
	guid     string
	hdrExt   string // other header fields, kept when the file is rewritten
	recs     []uidRec
	byBase   map[string]uint32
	size     int64 // bytes of the file read, up to the end of its last whole line
	fi       os.FileInfo
}

// errBrokenList is a UID list that cannot be trusted; the caller reports
// why and reads the folder as if there were none.
var errBrokenList = errors.New("broken UID list")

// readUIDList reads a UID list. A missing file gives nil and no error; a
// file that does not parse gives an error wrapping errBrokenList. A last
// line without a newline is an append in progress and is left out.
func readUIDList(path string) (*uidList, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	l, err := parseUIDList(data)
	if err != nil {
		return nil, err
	}
	l.fi = fi
	return l, nil
}

func parseUIDList(data []byte) (*uidList, error) {
	l := &uidList{byBase: map[string]uint32{}}
	end := bytes.LastIndexByte(data, '\n') + 1
	data = data[:end]
	l.size = int64(end)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("%w: empty", errBrokenList)
	}
	hdr := sc.Text()
	var hdrNext uint32
	switch {
	case strings.HasPrefix(hdr, "1 "):
		l.version = 1
		f := strings.Fields(hdr[2:])
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: header %q", errBrokenList, hdr)
		}
		v, err1 := strconv.ParseUint(f[0], 10, 32)
		n, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: header %q", errBrokenList, hdr)
		}
		l.validity, hdrNext = uint32(v), uint32(n)
	case strings.HasPrefix(hdr, "3 ") || hdr == "3":
		l.version = 3
		var ext []string
		for f := range strings.FieldsSeq(strings.TrimPrefix(hdr, "3")) {
			val := f[1:]
			switch f[0] {
			case 'V':
				v, err := strconv.ParseUint(val, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("%w: header %q", errBrokenList, hdr)
				}
				l.validity = uint32(v)
			case 'N':
				n, err := strconv.ParseUint(val, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("%w: header %q", errBrokenList, hdr)
				}
				hdrNext = uint32(n)
			case 'G':
				l.guid = val
			default:
				ext = append(ext, f)
			}
		}
		l.hdrExt = strings.Join(ext, " ")
	default:
		return nil, fmt.Errorf("%w: unknown version in header %q", errBrokenList, hdr)
	}
	if l.validity == 0 || hdrNext == 0 {
		return nil, fmt.Errorf("%w: header %q gives no UIDVALIDITY or next UID", errBrokenList, hdr)
	}
	var prev uint32
	for line := 2; sc.Scan(); line++ {
		r, err := parseUIDLine(sc.Text(), l.version)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", errBrokenList, line, err)
		}
		if r.uid <= prev {
			return nil, fmt.Errorf("%w: line %d: UID %d after %d", errBrokenList, line, r.uid, prev)
		}
		prev = r.uid
		if old, dup := l.byBase[r.base]; dup {
			// A file moved back after an expunge: the later line wins, as
			// in Dovecot.
			l.drop(old)
		}
		l.recs = append(l.recs, r)
		l.byBase[r.base] = r.uid
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", errBrokenList, err)
	}
	l.next = max(hdrNext, prev+1)
	return l, nil
}

func parseUIDLine(s string, version int) (uidRec, error) {
	num, rest, ok := strings.Cut(s, " ")
	uid, err := strconv.ParseUint(num, 10, 32)
	if !ok || err != nil || uid == 0 || uid == 1<<32-1 {
		return uidRec{}, fmt.Errorf("%q is not \"<uid> <file>\"", s)
	}
	r := uidRec{uid: uint32(uid)}
	if version == 3 {
		ext, name, ok := strings.Cut(rest, ":")
		if !ok {
			return uidRec{}, fmt.Errorf("%q has no \":<file>\"", s)
		}
		r.ext, rest = strings.TrimSpace(ext), name
	}
	r.base = baseOf(rest)
	if r.base == "" || strings.ContainsRune(r.base, '/') {
		return uidRec{}, fmt.Errorf("%q: bad file name", s)
	}
	return r, nil
}

func (l *uidList) drop(uid uint32) {
	for i, r := range l.recs {
		if r.uid == uid {
			l.recs = append(l.recs[:i], l.recs[i+1:]...)
			return
		}
	}
}

// newUIDList is the list of a folder that has none yet: a fresh
// UIDVALIDITY (so that a folder deleted and created again does not pass
// for the old one) and a fresh GUID.
func newUIDList() *uidList {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	v := (uint32(b[16])<<24 | uint32(b[17])<<16 | uint32(b[18])<<8 | uint32(b[19])) & 0x7fffffff
	if v == 0 {
		v = 1
	}
	return &uidList{version: 3, validity: v, next: 1, guid: hex.EncodeToString(b[:16]), byBase: map[string]uint32{}}
}

func (l *uidList) line(r uidRec) string {
	if l.version == 1 {
		return fmt.Sprintf("%d %s\n", r.uid, r.base)
	}
	if r.ext != "" {
		return fmt.Sprintf("%d %s :%s\n", r.uid, r.ext, r.base)
	}
	return fmt.Sprintf("%d :%s\n", r.uid, r.base)
}

// rewrite writes the whole list, as version 3, to path through path.tmp.
func (l *uidList) rewrite(path string) error {
	l.version = 3
	if l.guid == "" {
		l.guid = newUIDList().guid
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "3 V%d N%d G%s", l.validity, l.next, l.guid)
	if l.hdrExt != "" {
		b.WriteString(" " + l.hdrExt)
	}
	b.WriteByte('\n')
	for _, r := range l.recs {
		b.WriteString(l.line(r))
	}
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b.Bytes(), time.Time{}); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	l.fi, l.size = fi, int64(b.Len())
	return nil
}

// appendLines adds recs at the end of the version 3 file at path, which
// must be the file l was read from.
func (l *uidList) appendLines(path string, recs []uidRec) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, r := range recs {
		b.WriteString(l.line(r))
	}
	_, err = f.Write(b.Bytes())
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	l.fi, l.size = fi, fi.Size()
	return nil
}

// add records a new UID for base.
func (l *uidList) add(base string) uidRec {
	r := uidRec{uid: l.next, base: base}
	l.next++
	l.recs = append(l.recs, r)
	l.byBase[base] = r.uid
	return r
}

// dotlock is a lock file PATH.lock created exclusively, as Dovecot's
// file_dotlock_create makes them; it holds "<pid>:<host>".
type dotlock struct{ path string }

// takeLock creates path.lock, waiting while another live process holds
// it. A lock left by a process of this host that is gone, or untouched
// for lockStale, is taken over, as Dovecot does.
func takeLock(ctx context.Context, path string) (*dotlock, error) {
	lock := path + ".lock"
	host, _ := os.Hostname()
	content := fmt.Sprintf("%d:%s", os.Getpid(), host)
	deadline := time.Now().Add(lockWait)
	backoff := lockPacer.Start()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := f.WriteString(content)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(lock)
				return nil, werr
			}
			return &dotlock{path: lock}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if staleLock(lock, host) {
			os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s is held by another process for more than %v", lock, lockWait)
		}
		if err := lockPacer.Wait(ctx, backoff.Next(0)); err != nil {
			return nil, err
		}
	}
}

// lockPacer spaces the attempts at a lock another process holds: 5 ms
// doubling to 200 ms, with jitter so that two writers do not retry in
// step.
var lockPacer = providers.Pacer{Min: 5 * time.Millisecond, Max: 200 * time.Millisecond}

// staleLock reports whether a lock file may be taken over.
func staleLock(lock, host string) bool {
	fi, err := os.Stat(lock)
	if err != nil {
		return false // gone already: the next try creates it
	}
	if time.Since(fi.ModTime()) > lockStale {
		return true
	}
	b, err := os.ReadFile(lock)
	if err != nil {
		return false
	}
	pid, h, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	n, err := strconv.Atoi(pid)
	return ok && err == nil && h == host && n > 0 && n != os.Getpid() && !processAlive(n)
}

func (d *dotlock) release() error {
	if err := os.Remove(d.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
