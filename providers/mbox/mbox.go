// Package mbox is a providers.Store over a directory tree of mbox files, or
// over a single mbox file holding one mailbox, for reading and writing.
//
// Files are mboxrd: a message starts with a From_ line, and every line of
// the message that matches ^>*From is stored with one more '>'. Reading is
// a streaming pass per file that keeps an index of offsets and sizes, never
// the messages; Fetch streams a message from the file. Messages are served
// exactly as stored, unquoted, with the line ends they have in the file.
// Flags, internal dates, UIDs and the exact size of the messages mailferry
// writes are kept beside each file in a sidecar (see sidecar.go), so the
// message bytes are never touched. The rules for names, dates and flags are
// in docs/providers.md.
//
// What cannot be parsed is reported through Store.Problems (as text by
// Store.Warnings, which migrate puts in the account's summary) and the rest
// is imported. Problems that leave a file's message count in doubt (a line
// another reader may split at, a Content-Length that disagrees) are also
// given by Store.Doubts, which makes migrate end the mailbox as "warn". The package does not use github.com/emersion/go-mbox: its
// quoting is mboxo and not symmetric, its reader rewrites line ends and adds
// blank lines to the last message, and it discards the From_ line.
package mbox

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/mailferry/mailferry/providers"
)

// Options tunes a Store.
type Options struct {
	// ReadOnly never creates or changes a file: no mailbox, no message, no
	// sidecar. Use it for a source. Without it, Open creates a missing
	// directory.
	ReadOnly bool
	// EmptyIfMissing opens a path that does not exist as a store with no
	// mailbox, creating nothing: what a dry run of an export to a new
	// directory sees. Use it with ReadOnly.
	EmptyIfMissing bool
}

// Problem is something in the files that could not be read as expected.
// What could be read is imported all the same.
type Problem struct {
	Path   string // the file
	Offset int64  // byte offset in it, -1 when not about one place
	Line   int64  // 1-based line number, 0 when unknown
	What   string
	// Doubt says the problem leaves the file's message count in doubt.
	Doubt bool
}

func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Offset >= 0:
		return fmt.Sprintf("%s:%d (byte %d): %s", p.Path, p.Line, p.Offset, p.What)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.Path, p.Line, p.What)
	case p.Offset >= 0:
		return fmt.Sprintf("%s (byte %d): %s", p.Path, p.Offset, p.What)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.What)
}

// Store is a directory of mbox files, or one mbox file. Its methods are safe
// for concurrent use; writers of one file are serialised.
type Store struct {
	root    string
	single  bool // root is one mbox file, the mailbox INBOX
	missing bool // root does not exist (EmptyIfMissing)
	opts    Options

	mu       sync.Mutex
	boxes    map[string]*box // by canonical name, as last found
	byPath   map[string]*box // every box ever found, so handles share one
	problems []Problem       // from the last walk
}

var (
	_ providers.Store   = (*Store)(nil)
	_ providers.Remover = (*Store)(nil)
	_ providers.Warner  = (*Store)(nil)
	_ providers.Doubter = (*Store)(nil)
)

// Open opens the mbox directory, or the single mbox file, at path.
func Open(path string, opts Options) (*Store, error) {
	s := &Store{root: path, opts: opts, boxes: map[string]*box{}, byPath: map[string]*box{}}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opts.EmptyIfMissing:
		s.missing = true
	case errors.Is(err, fs.ErrNotExist) && !opts.ReadOnly:
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, providers.WithClass(providers.ClassAccount, fmt.Errorf("create mbox directory: %w", err))
		}
	case err != nil:
		return nil, providers.WithClass(providers.ClassAccount, fmt.Errorf("open mbox store: %w", err))
	case fi.Mode().IsRegular():
		s.single = true
	case !fi.IsDir():
		return nil, providers.WithClass(providers.ClassAccount, fmt.Errorf("open mbox store %s: neither a directory nor a file", path))
	}
	return s, nil
}

// Problems returns what could not be read as expected in the files looked
// at so far: by the last Mailboxes, and by the last reading of each
// mailbox.
func (s *Store) Problems() []Problem {
	s.mu.Lock()
	out := slices.Clone(s.problems)
	boxes := make([]*box, 0, len(s.byPath))
	for _, b := range s.byPath {
		boxes = append(boxes, b)
	}
	s.mu.Unlock()
	for _, b := range boxes {
		b.mu.Lock()
		out = append(out, b.problems...)
		b.mu.Unlock()
	}
	slices.SortStableFunc(out, func(a, b Problem) int {
		if c := cmp.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	return out
}

// Warnings implements providers.Warner: Problems as text, one line each,
// with what a terminal or a log could not show safely (bytes of a file name
// that are not UTF-8, control characters such as a newline in a name)
// written as \xNN or \uNNNN.
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

// Doubts implements providers.Doubter: the problems of the mailbox's file,
// as last read, that leave its message count in doubt, as Warnings words
// them.
func (s *Store) Doubts(mailbox string) []string {
	b := s.lookup(canonical(mailbox))
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, p := range b.problems {
		if p.Doubt {
			out = append(out, printable(p.String()))
		}
	}
	return out
}

// printable escapes invalid UTF-8 and control characters in s.
func printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) && r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// find walks the files and updates the mailbox table.
func (s *Store) find() {
	var list []found
	var problems []Problem
	switch {
	case s.missing:
	case s.single:
		list = []found{{name: "INBOX", path: s.root}}
	default:
		list, problems = walk(s.root)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = problems
	s.boxes = make(map[string]*box, len(list))
	for _, f := range list {
		b := s.byPath[f.path]
		if b == nil || b.name != f.name {
			b = &box{s: s, name: f.name, path: f.path}
			s.byPath[f.path] = b
		}
		s.boxes[f.name] = b
	}
}

func (s *Store) lookup(name string) *box {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.boxes[name]
}

// Mailboxes implements providers.Store. UIDVALIDITY and counts are given
// for mailboxes already read and unchanged since, else they are unknown.
func (s *Store) Mailboxes(ctx context.Context) ([]providers.MailboxInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.find()
	s.mu.Lock()
	boxes := make([]*box, 0, len(s.boxes))
	for _, b := range s.boxes {
		boxes = append(boxes, b)
	}
	s.mu.Unlock()
	out := make([]providers.MailboxInfo, 0, len(boxes))
	for _, b := range boxes {
		out = append(out, b.cachedInfo())
	}
	return out, nil
}

// Mailbox implements providers.Store. Opening reads the file once to index
// it, unless it is unchanged since it was last read.
func (s *Store) Mailbox(ctx context.Context, name string) (providers.Mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name = canonical(name)
	b := s.lookup(name)
	if b == nil {
		s.find()
		if b = s.lookup(name); b == nil {
			return nil, providers.WithClass(providers.ClassMailbox, fmt.Errorf("open %q: %w", name, providers.ErrMailboxNotFound))
		}
	}
	info, err := b.open(ctx)
	if err != nil {
		return nil, err
	}
	return &handle{b: b, info: info}, nil
}

// CreateMailbox implements providers.Store: it creates NAME.mbox, its
// directories and its sidecar. The role is not kept: an mbox file has
// nowhere to keep it, and roles are guessed from names instead.
func (s *Store) CreateMailbox(ctx context.Context, name, role string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name = canonical(name)
	if err := s.writable("create mailbox " + name); err != nil {
		return err
	}
	if s.single {
		if name == "INBOX" {
			return fmt.Errorf("create %q: %w", name, providers.ErrMailboxExists)
		}
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("create %q: %s is a single mbox file holding only INBOX", name, s.root))
	}
	s.find()
	if s.lookup(name) != nil {
		return fmt.Errorf("create %q: %w", name, providers.ErrMailboxExists)
	}
	path, err := mailboxPath(s.root, name)
	if err != nil {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("create %q: %w", name, err))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("create %q: %w", name, err))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %q: %s: %w", name, path, providers.ErrMailboxExists)
	}
	if err != nil {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("create %q: %w", name, err))
	}
	if err := f.Close(); err != nil {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("create %q: %w", name, err))
	}
	// A fresh UIDVALIDITY, so a mailbox deleted and created again does not
	// pass for the old one.
	validity := rand.Uint32() | 1
	empty := sha256.Sum256(nil)
	sidecar := append(headerLine(validity), checkpointLine(0, empty[:])...)
	if err := os.WriteFile(path+sidecarExt, sidecar, 0o600); err != nil {
		return providers.WithClass(providers.ClassMailbox, fmt.Errorf("create %q: %w", name, err))
	}
	s.find()
	return nil
}

// Remove implements providers.Remover by rewriting the file without the
// messages. The other messages keep their UIDs and the UIDVALIDITY stays.
func (s *Store) Remove(ctx context.Context, name string, uidValidity uint32, uids []providers.UID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name = canonical(name)
	if err := s.writable("remove from " + name); err != nil {
		return err
	}
	b := s.lookup(name)
	if b == nil {
		s.find()
		if b = s.lookup(name); b == nil {
			return providers.WithClass(providers.ClassMailbox, fmt.Errorf("remove from %q: %w", name, providers.ErrMailboxNotFound))
		}
	}
	if len(uids) == 0 {
		return nil
	}
	return b.remove(ctx, uidValidity, uids)
}

func (s *Store) writable(what string) error {
	if s.opts.ReadOnly {
		return providers.WithClass(providers.ClassAccount, fmt.Errorf("%s: the mbox store %s is read-only", what, s.root))
	}
	return nil
}

// Close implements providers.Store. Open mailboxes close their own files.
func (s *Store) Close() error { return nil }
