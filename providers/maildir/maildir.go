// Package maildir is a providers.Store over a Maildir or Maildir++ tree,
// as Dovecot and Courier-IMAP keep them, for reading and writing.
//
// The root's cur, new and tmp are INBOX; folders are ".Folder.Sub"
// directories of the root (Maildir++) or nested "Folder/Sub" directories
// (Dovecot's LAYOUT=fs). A message is one file, served byte for byte;
// its flags are the letters of its name, its keywords the folder's
// dovecot-keywords (or Courier's courierimapkeywords), its INTERNALDATE
// the file's mtime, and its UID what the folder's dovecot-uidlist (or
// Courier's courierimapuiddb) says. Reading never renames, moves or
// touches a file: a message in new/ stays there. Writing delivers through
// tmp/ into cur/ and keeps dovecot-uidlist and dovecot-keywords the way
// Dovecot does, under Dovecot's own lock, so that a Dovecot pointed at the
// tree serves the same messages with the same UIDs. The rules are in
// docs/providers.md.
package maildir

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailferry/mailferry/providers"
)

// Options tunes a Store.
type Options struct {
	// ReadOnly never creates or changes a file: no folder, no message, no
	// UID list. Use it for a source.
	ReadOnly bool
	// EmptyIfMissing opens a path that does not exist as a store with no
	// mailbox, creating nothing: what a dry run of a copy into a new tree
	// sees. Use it with ReadOnly.
	EmptyIfMissing bool
	// Layout is the folder layout; LayoutAuto reads the tree's, and writes
	// Maildir++ into a tree without folders.
	Layout Layout
	// UTF8Names stores folder names in UTF-8 rather than modified UTF-7
	// (Dovecot's mail_location option UTF-8, Courier-IMAP 5).
	UTF8Names bool
}

// ParseLocation reads a maildir location as Dovecot's mail_location
// writes one, without the "maildir:" scheme: a path, then optional
// ":LAYOUT=fs", ":LAYOUT=maildir++" and ":UTF-8". Anything else after a
// ':' is part of the path.
func ParseLocation(loc string) (string, Options, error) {
	var opts Options
	path := loc
	for {
		i := strings.LastIndexByte(path, ':')
		if i < 0 {
			break
		}
		switch opt := path[i+1:]; strings.ToUpper(opt) {
		case "LAYOUT=FS":
			opts.Layout = LayoutFS
		case "LAYOUT=MAILDIR++":
			opts.Layout = LayoutMaildirPP
		case "UTF-8", "UTF8":
			opts.UTF8Names = true
		default:
			if strings.HasPrefix(strings.ToUpper(opt), "LAYOUT=") {
				return "", Options{}, fmt.Errorf("maildir location %q: unknown %s (want LAYOUT=fs or LAYOUT=maildir++)", loc, opt)
			}
			i = -1
		}
		if i < 0 {
			break
		}
		path = path[:i]
	}
	if path == "" {
		return "", Options{}, fmt.Errorf("maildir location %q: no directory", loc)
	}
	return path, opts, nil
}

// Problem is something in the tree that could not be read as expected:
// a file skipped, a UID list or keyword file ignored. What could be read
// is served all the same.
type Problem struct {
	Path string // the file or directory
	What string
}

func (p Problem) String() string { return p.Path + ": " + p.What }

// Store is a maildir tree. Its methods are safe for concurrent use;
// writers of one folder are serialised, with each other and, through
// Dovecot's lock files, with Dovecot.
type Store struct {
	root    string
	opts    Options
	layout  Layout // the one in use: never LayoutAuto
	missing bool
	names   *namer

	mu       sync.Mutex
	folders  map[string]*folder // by canonical name, as last found
	byDir    map[string]*folder // every folder ever found, so handles share one
	subs     map[string]bool
	problems []Problem // from the last walk
}

var (
	_ providers.Store          = (*Store)(nil)
	_ providers.Remover        = (*Store)(nil)
	_ providers.FlagSetter     = (*Store)(nil)
	_ providers.MailboxDeleter = (*Store)(nil)
	_ providers.Subscriber     = (*Store)(nil)
	_ providers.Warner         = (*Store)(nil)
	_ providers.FlagLister     = (*handle)(nil)
)

// Open opens the maildir tree at root. Without ReadOnly a missing root is
// created with an empty INBOX.
func Open(root string, opts Options) (*Store, error) {
	s := &Store{root: root, opts: opts, names: newNamer(), folders: map[string]*folder{}, byDir: map[string]*folder{}}
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opts.EmptyIfMissing:
		s.missing = true
	case errors.Is(err, fs.ErrNotExist) && opts.ReadOnly:
		return nil, providers.WithClass(providers.ClassAccount, fmt.Errorf("open maildir %s: %w", root, err))
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, providers.WithClass(providers.ClassAccount, fmt.Errorf("open maildir: %w", err))
	case err == nil && !fi.IsDir():
		return nil, providers.WithClass(providers.ClassAccount, fmt.Errorf("open maildir %s: not a directory", root))
	}
	s.layout = opts.Layout
	if s.layout == LayoutAuto {
		var both bool
		s.layout, both = detect(root)
		if both {
			s.problems = append(s.problems, Problem{Path: root, What: "holds folders of both layouts; read as Maildir++ (give :LAYOUT=fs to read the other)"})
		}
		if s.layout == LayoutAuto {
			s.layout = LayoutMaildirPP
		}
	}
	if !opts.ReadOnly && !s.missing {
		for _, d := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
				return nil, providers.WithClass(providers.ClassAccount, fmt.Errorf("create maildir %s: %w", root, err))
			}
		}
	}
	return s, nil
}

// Layout is the layout the store reads and writes.
func (s *Store) Layout() Layout { return s.layout }

// Problems returns what could not be read as expected: by the last
// Mailboxes, and by the last reading of each folder.
func (s *Store) Problems() []Problem {
	s.mu.Lock()
	out := slices.Clone(s.problems)
	folders := make([]*folder, 0, len(s.byDir))
	for _, f := range s.byDir {
		folders = append(folders, f)
	}
	s.mu.Unlock()
	for _, f := range folders {
		f.mu.Lock()
		out = append(out, f.problems...)
		f.mu.Unlock()
	}
	slices.SortStableFunc(out, func(a, b Problem) int { return cmp.Compare(a.Path, b.Path) })
	return out
}

// Warnings implements providers.Warner: Problems as text, one line each,
// with bytes a terminal could not show safely written as \xNN.
func (s *Store) Warnings() []string {
	ps := s.Problems()
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = printable(p.String())
	}
	return out
}

func printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1, unicode.IsControl(r) && r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// find walks the tree and updates the folder table and subscriptions.
func (s *Store) find() {
	var list []found
	var problems []Problem
	subs := map[string]bool{}
	if !s.missing {
		list, problems = walk(s.root, s.layout, s.opts.UTF8Names)
		var err error
		if subs, err = s.readSubscriptions(); err != nil {
			problems = append(problems, Problem{Path: s.root, What: fmt.Sprintf("subscriptions not read: %v", err)})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) > 0 && s.problems[0].Path == s.root && strings.HasPrefix(s.problems[0].What, "holds folders of both") {
		problems = append([]Problem{s.problems[0]}, problems...)
	}
	s.problems, s.subs = problems, subs
	s.folders = make(map[string]*folder, len(list))
	for _, fd := range list {
		f := s.byDir[fd.dir]
		if f == nil || f.name != fd.name {
			f = &folder{s: s, name: fd.name, dir: fd.dir}
			s.byDir[fd.dir] = f
		}
		s.folders[fd.name] = f
	}
}

func (s *Store) lookup(name string) *folder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.folders[name]
}

// folderOf finds a folder, walking the tree again if it is not known.
func (s *Store) folderOf(what, name string) (*folder, error) {
	name = canonical(name)
	f := s.lookup(name)
	if f == nil {
		s.find()
		if f = s.lookup(name); f == nil {
			return nil, providers.WithClass(providers.ClassMailbox, fmt.Errorf("%s %q: %w", what, name, providers.ErrMailboxNotFound))
		}
	}
	return f, nil
}

// Mailboxes implements providers.Store. Counts and UIDVALIDITY are left
// unknown: giving them would mean reading every folder.
func (s *Store) Mailboxes(ctx context.Context) ([]providers.MailboxInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.find()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]providers.MailboxInfo, 0, len(s.folders))
	for name := range s.folders {
		out = append(out, providers.MailboxInfo{Name: name, SpecialUse: providers.RoleByName(name), Subscribed: s.subs[name], Messages: -1})
	}
	return out, nil
}

// Mailbox implements providers.Store: it reads the folder's file names and
// UID list (a writable store records the UIDs of new files).
func (s *Store) Mailbox(ctx context.Context, name string) (providers.Mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.folderOf("open", name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.scanLocked(ctx); err != nil {
		return nil, err
	}
	return &handle{f: f, info: f.infoLocked()}, nil
}

// CreateMailbox implements providers.Store: it creates the folder's
// directories, its maildirfolder file (Maildir++) and a dovecot-uidlist
// with a fresh UIDVALIDITY. The role is not kept: a maildir has nowhere
// to keep it, and roles are guessed from names instead.
func (s *Store) CreateMailbox(ctx context.Context, name, role string) error {
	name, err := s.writeName(ctx, "create mailbox", name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return fmt.Errorf("create %q: %w", name, providers.ErrMailboxExists)
	}
	dir, err := folderPath(s.root, name, s.layout, s.opts.UTF8Names)
	if err != nil {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("create %q: %w", name, err))
	}
	s.find()
	if s.lookup(name) != nil || isMaildir(dir) {
		return fmt.Errorf("create %q: %w", name, providers.ErrMailboxExists)
	}
	if err := createFolder(dir, s.layout); err != nil {
		return classify(fmt.Sprintf("create %q", name), err)
	}
	s.find()
	return nil
}

func createFolder(dir string, layout Layout) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	for _, d := range []string{"tmp", "new"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if layout == LayoutMaildirPP {
		if err := writeSynced(filepath.Join(dir, "maildirfolder"), nil, time.Time{}); err != nil {
			return err
		}
	}
	if err := newUIDList().rewrite(filepath.Join(dir, dovecotUIDList)); err != nil {
		return err
	}
	// cur last: a folder is a mailbox once cur is there, and then it has
	// its UID list already.
	if err := os.Mkdir(filepath.Join(dir, "cur"), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return errors.Join(syncDir(dir), syncDir(filepath.Dir(dir)))
}

// DeleteMailbox implements providers.MailboxDeleter for a folder that
// holds no message: it removes the folder's maildir and the files Dovecot
// and Courier keep in it; a directory that still holds child folders (fs
// layout) or unknown files stays. A folder with messages is refused.
func (s *Store) DeleteMailbox(ctx context.Context, name string) error {
	name, err := s.writeName(ctx, "delete mailbox", name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("delete %q: INBOX cannot be deleted", name))
	}
	f, err := s.folderOf("delete", name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	files, err := f.listFiles()
	if err != nil {
		return f.mailboxError("delete", err)
	}
	if len(files) > 0 {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("delete %q: it holds %d messages", name, len(files)))
	}
	// cur first: without it the folder is no mailbox any more, whatever
	// is left.
	var errs []error
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.RemoveAll(filepath.Join(f.dir, d)); err != nil {
			errs = append(errs, err)
		}
	}
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		n := e.Name()
		if n == dovecotUIDList || n == dovecotKeywords || n == courierUIDDB || n == "maildirfolder" || n == courierKeywords ||
			strings.HasPrefix(n, "dovecot.") || strings.HasPrefix(n, dovecotUIDList+".") || strings.HasPrefix(n, dovecotKeywords+".") {
			if err := os.RemoveAll(filepath.Join(f.dir, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return f.mailboxError("delete", err)
	}
	if err := os.Remove(f.dir); err != nil && !errors.Is(err, fs.ErrExist) && !isNotEmpty(err) {
		return f.mailboxError("delete", err)
	}
	syncDir(filepath.Dir(f.dir))
	f.scanned, f.msgs, f.validity = false, nil, 0
	s.mu.Lock()
	delete(s.folders, name)
	delete(s.byDir, f.dir)
	s.mu.Unlock()
	return nil
}

// Remove implements providers.Remover: it deletes the files of exactly
// uids, under the folder's lock. The other messages keep their UIDs and
// the UIDVALIDITY stays.
func (s *Store) Remove(ctx context.Context, name string, uidValidity uint32, uids []providers.UID) error {
	name, err := s.writeName(ctx, "remove from", name)
	if err != nil {
		return err
	}
	f, err := s.folderOf("remove from", name)
	if err != nil || len(uids) == 0 {
		return err
	}
	return f.remove(ctx, uidValidity, uids)
}

// SetFlags implements providers.FlagSetter by renaming each message's
// file to carry the new flags (a message in new/ moves to cur/, as any
// maildir reader does once it sets a flag). Unknown letters in the old
// name are kept.
func (s *Store) SetFlags(ctx context.Context, name string, uidValidity uint32, flags map[providers.UID][]string) error {
	name, err := s.writeName(ctx, "set flags in", name)
	if err != nil {
		return err
	}
	f, err := s.folderOf("set flags in", name)
	if err != nil || len(flags) == 0 {
		return err
	}
	return f.setFlags(ctx, uidValidity, flags)
}

// writeName checks ctx and that the store takes writes, and returns name
// as canonical spells it; what names the operation in an error.
func (s *Store) writeName(ctx context.Context, what, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	name = canonical(name)
	return name, s.writable(what + " " + name)
}

func (s *Store) writable(what string) error {
	if s.opts.ReadOnly {
		return providers.WithClass(providers.ClassAccount, fmt.Errorf("%s: the maildir %s is read-only", what, s.root))
	}
	return nil
}

// Close implements providers.Store. Handles close their own files.
func (s *Store) Close() error { return nil }
