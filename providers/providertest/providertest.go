// Package providertest is the conformance suite every providers.Store passes,
// modelled on rclone's fstests and restic's backend test suite.
//
// A provider registers in a few lines:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, providertest.Options{
//			NewStore: func(t *testing.T) providers.Store { ... },
//		})
//	}
//
// The subtests build on each other (mailboxes are created, then filled, then
// listed, fetched, reopened and removed from), so run the whole suite, not
// a single subtest. What a provider cannot do it declares in Options; the
// suite then skips those checks on purpose and says so, and it checks that
// a declaration matches the interfaces the store implements. Every
// optional interface the store implements is exercised by a step of its
// own; one it lacks is named in the Declarations step's log and in the
// skip of its step, never passed over in silence.
//
// The end-to-end check through the engine (RoundTrip) is run by the
// engine's tests (migrate), so that this package depends on nothing but
// providers.
package providertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// Options describes a provider to the suite.
type Options struct {
	// NewStore returns a new, empty store that shares nothing with any other
	// store it returned: no mailbox except, optionally, INBOX. It registers
	// its own cleanup with t.Cleanup. The suite calls it three times.
	NewStore func(t *testing.T) providers.Store
	// Reopen returns a second Store on the same account as s, as another
	// process would see it. If nil, reopening is checked on s only (right
	// for stores that live in memory).
	Reopen func(t *testing.T, s providers.Store) providers.Store

	// NoRemove: the store does not implement providers.Remover.
	NoRemove bool
	// NoSubscribe: the store does not implement providers.Subscriber.
	NoSubscribe bool
	// NoSpecialUse: CreateMailbox may drop the special-use role, and
	// Mailboxes need not report it (imapmemserver has no SPECIAL-USE; an mbox
	// directory has nowhere to keep it).
	NoSpecialUse bool
	// FoldsKeywordCase: keywords may come back in another case
	// (imapmemserver lowercases them). System flags must still match.
	FoldsKeywordCase bool
	// NormalisesLineEndings: a bare LF is served back as CRLF, as IMAP
	// servers that store CRLF (Dovecot) do. Everything else must be
	// byte-exact.
	NormalisesLineEndings bool
	// NoEmptyMessage: the store refuses a 0-byte message (IMAP servers
	// commonly do); the suite then does not append one.
	NoEmptyMessage bool
	// RewritesMessages: the store serves a message re-serialised by a MIME
	// parser rather than as appended, so only well-formed CRLF messages come
	// back byte-exact (imapmemserver builds BODY[] with go-message: bare LF
	// becomes CRLF, a message without a blank line gains one, a first line
	// that is not a header field empties the header, and RFC822.SIZE still
	// counts the bytes appended). The suite then appends only well-formed
	// messages. No store that keeps mail should need this.
	RewritesMessages bool
	// NoAppendUID: Append's done may be given UID 0 (no UIDPLUS).
	NoAppendUID bool
	// MoveRefused: the store is a providers.Mover that cannot move here
	// (an IMAP server with neither MOVE nor UIDPLUS): Move must refuse with
	// a ClassMailbox error and move nothing.
	MoveRefused bool
	// MaxMessageBytes is the largest message the store accepts; the suite's
	// large message is that big, or 25 MB when 0.
	MaxMessageBytes int64
	// StreamsMessages: Append and Fetch stream a message instead of holding
	// it, so the suite asserts that copying the large message allocates less
	// than a quarter of its size. Leave it false for stores that buffer
	// (mem) or whose server runs in the test process (its buffers would be
	// counted).
	StreamsMessages bool
}

// largeDefault is the size of the large message when MaxMessageBytes is 0.
const largeDefault = 25 << 20

// Mailbox names the suite creates. They are hard for someone: a space, a
// hierarchy, a '.' that is another server's separator, '&' that starts a
// modified UTF-7 escape, and non-ASCII at two levels.
var (
	boxWork     = "Work"
	boxDeep     = "Work/Projects/2024"
	boxSpace    = "with space"
	boxDot      = "v1.2 release"
	boxAmp      = "Q&A"
	boxNonASCII = "Entwürfe/日本"
	oddNames    = []string{boxWork, boxDeep, boxSpace, boxDot, boxAmp, boxNonASCII}
)

// suite holds what one step leaves for the next.
type suite struct {
	opt   Options
	st    providers.Store
	ok    map[string]bool // steps that passed; steps run one at a time
	inbox bool            // the empty store had an INBOX

	appended []appended // the Append step's messages, in append order
}

type appended struct {
	fixture
	want []byte // the bytes the store must serve
	uid  providers.UID
}

// Run runs the suite against the provider described by opt.
func Run(t *testing.T, opt Options) {
	t.Helper()
	if opt.NewStore == nil {
		t.Fatal("providertest: Options.NewStore is required")
	}
	s := &suite{opt: opt, ok: map[string]bool{}}
	s.st = opt.NewStore(t)
	steps := []struct {
		name  string
		needs []string
		fn    func(t *testing.T)
	}{
		{"Declarations", nil, s.testDeclarations},
		{"Empty", nil, s.testEmpty},
		{"CreateMailbox", []string{"Empty"}, s.testCreateMailbox},
		{"InboxCase", []string{"CreateMailbox"}, s.testInboxCase},
		{"MailboxNotFound", nil, s.testMailboxNotFound},
		{"SpecialUse", nil, s.testSpecialUse},
		{"Append", []string{"CreateMailbox"}, s.testAppend},
		{"List", []string{"Append"}, s.testList},
		{"Fetch", []string{"Append"}, s.testFetch},
		{"Subset", []string{"Append"}, s.testSubset},
		{"Filter", []string{"Append"}, s.testFilter},
		{"Reopen", []string{"Append"}, s.testReopen},
		{"Large", []string{"CreateMailbox"}, s.testLarge},
		{"Concurrent", []string{"CreateMailbox"}, s.testConcurrent},
		{"Cancel", []string{"Append"}, s.testCancel},
		{"Remove", []string{"CreateMailbox"}, s.testRemove},
		{"Move", []string{"CreateMailbox"}, s.testMove},
		{"Subscribe", []string{"CreateMailbox"}, s.testSubscribe},
		// Steps of optional.go.
		{"FlagSetter", []string{"CreateMailbox"}, s.testFlagSetter},
		{"FlagLister", []string{"Append"}, s.testFlagLister},
		{"MailboxDeleter", []string{"CreateMailbox"}, s.testMailboxDeleter},
		{"ChangeTracker", []string{"CreateMailbox"}, s.testChangeTracker},
		{"AppendLimiter", []string{"CreateMailbox"}, s.testAppendLimiter},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			// A skipped step did not pass either: what needs it has nothing
			// to build on.
			defer func() { s.ok[step.name] = !t.Failed() && !t.Skipped() }()
			for _, need := range step.needs {
				if !s.ok[need] {
					// The suite has already failed; this only avoids a
					// cascade of errors that say nothing new.
					t.Skipf("needs step %s, which did not pass", need)
				}
			}
			step.fn(t)
		})
	}
}

// ctx returns a context that ends with the test.
func ctx(t *testing.T) context.Context { return t.Context() }

// open opens a mailbox and closes it at the end of the test.
func open(t *testing.T, st providers.Store, name string) providers.Mailbox {
	t.Helper()
	mb, err := st.Mailbox(ctx(t), name)
	if err != nil {
		t.Fatalf("Mailbox(%q): %v", name, err)
	}
	t.Cleanup(func() {
		if err := mb.Close(); err != nil {
			t.Errorf("Close mailbox %q: %v", name, err)
		}
	})
	return mb
}

// mailboxes returns the store's mailboxes by name, failing on duplicates.
func mailboxes(t *testing.T, st providers.Store) map[string]providers.MailboxInfo {
	t.Helper()
	list, err := st.Mailboxes(ctx(t))
	if err != nil {
		t.Fatalf("Mailboxes: %v", err)
	}
	out := map[string]providers.MailboxInfo{}
	for _, m := range list {
		if _, dup := out[m.Name]; dup {
			t.Errorf("Mailboxes lists %q twice", m.Name)
		}
		out[m.Name] = m
	}
	return out
}

// listAll runs List and checks the order contract.
func listAll(t *testing.T, mb providers.Mailbox, uids []providers.UID) []providers.MessageInfo {
	t.Helper()
	var out []providers.MessageInfo
	if err := mb.List(ctx(t), uids, func(m providers.MessageInfo) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatalf("List(%v): %v", uids, err)
	}
	for i := 1; i < len(out); i++ {
		if out[i].UID <= out[i-1].UID {
			t.Errorf("List: UID %d after %d, want strictly ascending", out[i].UID, out[i-1].UID)
		}
	}
	return out
}

type fetched struct {
	uid  providers.UID
	size int64
	raw  []byte
}

// fetchAll runs Fetch, reads every body whole and checks the size promise.
func fetchAll(t *testing.T, mb providers.Mailbox, uids []providers.UID) []fetched {
	t.Helper()
	var out []fetched
	if err := mb.Fetch(ctx(t), uids, func(uid providers.UID, size int64, body io.Reader) error {
		raw, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("read body of uid %d: %w", uid, err)
		}
		if int64(len(raw)) != size {
			t.Errorf("Fetch uid %d: announced %d bytes, body has %d", uid, size, len(raw))
		}
		out = append(out, fetched{uid, size, raw})
		return nil
	}); err != nil {
		t.Fatalf("Fetch(%v): %v", uids, err)
	}
	for i := 1; i < len(out); i++ {
		if out[i].uid <= out[i-1].uid {
			t.Errorf("Fetch: UID %d after %d, want strictly ascending", out[i].uid, out[i-1].uid)
		}
	}
	return out
}

// appendAll appends msgs through mb and returns the UIDs done reported,
// checking that done is called exactly once per message.
func appendAll(t *testing.T, opt Options, mb providers.Mailbox, msgs []fixture) []providers.UID {
	t.Helper()
	uids := make([]providers.UID, len(msgs))
	calls := make([]int, len(msgs))
	errs := make([]error, len(msgs))
	var mu sync.Mutex
	for i, m := range msgs {
		info := providers.MessageInfo{Flags: slices.Clone(m.flags), InternalDate: m.date}
		err := mb.Append(ctx(t), bytes.NewReader(m.raw), int64(len(m.raw)), info, func(uid providers.UID, err error) {
			mu.Lock()
			defer mu.Unlock()
			calls[i]++
			uids[i], errs[i] = uid, err
		})
		if err != nil {
			t.Fatalf("Append %s: %v", m.name, err)
		}
	}
	if err := mb.Flush(ctx(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, m := range msgs {
		switch {
		case calls[i] != 1:
			t.Errorf("Append %s: done called %d times before Flush returned, want exactly once", m.name, calls[i])
		case errs[i] != nil:
			t.Errorf("Append %s: refused: %v", m.name, errs[i])
		case uids[i] == 0 && !opt.NoAppendUID:
			t.Errorf("Append %s: done got UID 0; declare NoAppendUID if the store cannot report UIDs", m.name)
		}
	}
	t.Cleanup(func() {
		// A late second call would be just as wrong as a missing one.
		mu.Lock()
		defer mu.Unlock()
		for i, m := range msgs {
			if calls[i] != 1 {
				t.Errorf("Append %s: done called %d times in all", m.name, calls[i])
			}
		}
	})
	return slices.Clone(uids)
}

// checkClass asserts the class of an error the copier must treat as "this
// mailbox, not the connection, not the account": Mailbox or unclassified.
func checkClass(t *testing.T, what string, err error) {
	t.Helper()
	switch c := providers.ClassOf(err); c {
	case providers.ClassMailbox, providers.ClassUnclassified:
	default:
		t.Errorf("%s: error %q has class %v; a missing or existing mailbox must stop only that mailbox (class mailbox or unclassified)", what, err, c)
	}
}

// sameFlags compares flag sets: system flags exactly, keywords folded if
// the store folds them.
func (o Options) sameFlags(got, want []string) bool {
	return slices.Equal(o.normFlags(got), o.normFlags(want))
}

func (o Options) normFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if o.FoldsKeywordCase && !strings.HasPrefix(f, `\`) {
			f = strings.ToLower(f)
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sameSecond(a, b time.Time) bool { return a.Unix() == b.Unix() }

// optionals are the optional interfaces of a store or of its mailboxes,
// by name: each has a step, and the Declarations step says which the
// store lacks.
var optionals = []struct {
	name    string
	mailbox bool // implemented by the store's mailboxes, not the store
	has     func(any) bool
}{
	{"providers.Remover", false, func(v any) bool { _, ok := v.(providers.Remover); return ok }},
	{"providers.Subscriber", false, func(v any) bool { _, ok := v.(providers.Subscriber); return ok }},
	{"providers.Mover", false, func(v any) bool { _, ok := v.(providers.Mover); return ok }},
	{"providers.FlagSetter", false, func(v any) bool { _, ok := v.(providers.FlagSetter); return ok }},
	{"providers.FlagLister", true, func(v any) bool { _, ok := v.(providers.FlagLister); return ok }},
	{"providers.MailboxDeleter", false, func(v any) bool { _, ok := v.(providers.MailboxDeleter); return ok }},
	{"providers.ChangeTracker", false, func(v any) bool { _, ok := v.(providers.ChangeTracker); return ok }},
	{"providers.AppendLimiter", false, func(v any) bool { _, ok := v.(providers.AppendLimiter); return ok }},
}

func (s *suite) testDeclarations(t *testing.T) {
	var has, lacks []string
	for _, o := range optionals {
		if o.mailbox {
			has = append(has, o.name+" (on mailboxes: see its step)")
			continue
		}
		if o.has(s.st) {
			has = append(has, o.name)
		} else {
			lacks = append(lacks, o.name)
		}
	}
	t.Logf("optional interfaces the store implements: %s", strings.Join(has, ", "))
	if len(lacks) > 0 {
		t.Logf("optional interfaces the store does not implement (their steps skip): %s", strings.Join(lacks, ", "))
	}
	if _, ok := s.st.(providers.Remover); ok == s.opt.NoRemove {
		t.Errorf("store implements providers.Remover: %v, but Options.NoRemove is %v", ok, s.opt.NoRemove)
	}
	if _, ok := s.st.(providers.Subscriber); ok == s.opt.NoSubscribe {
		t.Errorf("store implements providers.Subscriber: %v, but Options.NoSubscribe is %v", ok, s.opt.NoSubscribe)
	}
}

func (s *suite) testEmpty(t *testing.T) {
	boxes := mailboxes(t, s.st)
	for name, info := range boxes {
		if name != "INBOX" {
			t.Errorf("new store has mailbox %q; want none, or INBOX only", name)
			continue
		}
		s.inbox = true
		if info.Messages > 0 {
			t.Errorf("new store's INBOX reports %d messages", info.Messages)
		}
	}
	if !s.inbox {
		return
	}
	mb := open(t, s.st, "INBOX")
	if n := mb.Info().Messages; n != 0 {
		t.Errorf("INBOX Info().Messages = %d, want 0", n)
	}
	uids, err := mb.UIDs(ctx(t))
	if err != nil || len(uids) != 0 {
		t.Errorf("INBOX UIDs = %v, %v; want none", uids, err)
	}
	if got := listAll(t, mb, nil); len(got) != 0 {
		t.Errorf("INBOX List gave %d messages", len(got))
	}
	if got := fetchAll(t, mb, nil); len(got) != 0 {
		t.Errorf("INBOX Fetch gave %d messages", len(got))
	}
}

func (s *suite) testCreateMailbox(t *testing.T) {
	t.Run("INBOX", func(t *testing.T) {
		err := s.st.CreateMailbox(ctx(t), "INBOX", "")
		switch {
		case s.inbox && !errors.Is(err, providers.ErrMailboxExists):
			t.Fatalf("CreateMailbox(INBOX) with INBOX present: %v, want ErrMailboxExists", err)
		case !s.inbox && err != nil:
			t.Fatalf("CreateMailbox(INBOX): %v", err)
		}
		err = s.st.CreateMailbox(ctx(t), "INBOX", "")
		if !errors.Is(err, providers.ErrMailboxExists) {
			t.Fatalf("CreateMailbox(INBOX) again: %v, want ErrMailboxExists", err)
		}
		checkClass(t, "CreateMailbox(INBOX) again", err)
	})
	for _, name := range oddNames {
		t.Run(name, func(t *testing.T) {
			if err := s.st.CreateMailbox(ctx(t), name, ""); err != nil {
				t.Fatalf("CreateMailbox(%q): %v", name, err)
			}
			mb := open(t, s.st, name)
			info := mb.Info()
			if info.Name != name {
				t.Errorf("Info().Name = %q, want %q", info.Name, name)
			}
			if info.UIDValidity == 0 {
				t.Errorf("Info().UIDValidity = 0 for an open mailbox")
			}
			if info.Messages != 0 {
				t.Errorf("new mailbox reports %d messages", info.Messages)
			}
		})
	}
	t.Run("Listed", func(t *testing.T) {
		boxes := mailboxes(t, s.st)
		for _, name := range oddNames {
			if _, ok := boxes[name]; !ok {
				t.Errorf("Mailboxes lacks %q; got %v", name, keys(boxes))
			}
		}
	})
	t.Run("Exists", func(t *testing.T) {
		for _, name := range oddNames {
			err := s.st.CreateMailbox(ctx(t), name, "")
			if !errors.Is(err, providers.ErrMailboxExists) {
				t.Errorf("CreateMailbox(%q) again: %v, want an error wrapping ErrMailboxExists", name, err)
				continue
			}
			checkClass(t, "CreateMailbox("+name+") again", err)
		}
	})
}

// testInboxCase checks that INBOX is one mailbox whatever its case, as in
// IMAP (RFC 3501 5.1): creating "Inbox" must not make a second inbox next
// to "INBOX". Nothing builds on this step.
func (s *suite) testInboxCase(t *testing.T) {
	for _, alias := range []string{"Inbox", "inbox"} {
		err := s.st.CreateMailbox(ctx(t), alias, "")
		if !errors.Is(err, providers.ErrMailboxExists) {
			t.Errorf("CreateMailbox(%q) with INBOX present: %v, want ErrMailboxExists", alias, err)
			continue
		}
		checkClass(t, "CreateMailbox("+alias+")", err)
	}
	boxes := mailboxes(t, s.st)
	if _, ok := boxes["INBOX"]; !ok {
		t.Errorf("Mailboxes lacks INBOX: %v", keys(boxes))
	}
	for name := range boxes {
		if strings.EqualFold(name, "INBOX") && name != "INBOX" {
			t.Errorf("Mailboxes lists %q: the inbox must be spelled INBOX, once", name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (s *suite) testMailboxNotFound(t *testing.T) {
	for _, name := range []string{"Does not exist", "Work/Nope", "Fehlt/ü"} {
		_, err := s.st.Mailbox(ctx(t), name)
		if !errors.Is(err, providers.ErrMailboxNotFound) {
			t.Errorf("Mailbox(%q): %v, want an error wrapping ErrMailboxNotFound", name, err)
			continue
		}
		checkClass(t, "Mailbox("+name+")", err)
	}
}

func (s *suite) testSpecialUse(t *testing.T) {
	const name = "Gesendete Objekte"
	if err := s.st.CreateMailbox(ctx(t), name, providers.RoleSent); err != nil {
		t.Fatalf("CreateMailbox(%q, \\Sent): %v", name, err)
	}
	info, ok := mailboxes(t, s.st)[name]
	if !ok {
		t.Fatalf("Mailboxes lacks %q", name)
	}
	if s.opt.NoSpecialUse {
		t.Logf("NoSpecialUse: role not checked (reported %q)", info.SpecialUse)
		return
	}
	if info.SpecialUse != providers.RoleSent {
		t.Errorf("%q has role %q, want \\Sent", name, info.SpecialUse)
	}
}

// target is the mailbox the Append step fills: non-ASCII and nested, so
// every later step exercises the name encoding too.
var target = boxNonASCII

func (s *suite) testAppend(t *testing.T) {
	fx := fixtures(s.opt)
	mb := open(t, s.st, target)
	uids := appendAll(t, s.opt, mb, fx)
	for i := 1; i < len(uids); i++ {
		if uids[i] != 0 && uids[i-1] != 0 && uids[i] <= uids[i-1] {
			t.Errorf("Append: UID %d after %d, want ascending", uids[i], uids[i-1])
		}
	}
	for i, f := range fx {
		s.appended = append(s.appended, appended{fixture: f, want: s.opt.expect(f.raw), uid: uids[i]})
	}
}

// checkListed compares a listing with the appended messages, in order.
func (s *suite) checkListed(t *testing.T, got []providers.MessageInfo) {
	t.Helper()
	if len(got) != len(s.appended) {
		t.Fatalf("List gave %d messages, want %d", len(got), len(s.appended))
	}
	for i, a := range s.appended {
		m := got[i]
		if a.uid != 0 && m.UID != a.uid {
			t.Errorf("%s: listed as UID %d, Append reported %d", a.name, m.UID, a.uid)
		}
		if m.Size != int64(len(a.want)) {
			t.Errorf("%s: Size %d, want %d", a.name, m.Size, len(a.want))
		}
		if !s.opt.sameFlags(m.Flags, a.flags) {
			t.Errorf("%s: flags %q, want %q", a.name, m.Flags, a.flags)
		}
		if slices.Contains(m.Flags, `\Recent`) {
			t.Errorf("%s: List reports \\Recent", a.name)
		}
		if !sameSecond(m.InternalDate, a.date) {
			t.Errorf("%s: InternalDate %v, want %v", a.name, m.InternalDate, a.date)
		}
		if want := providers.KeyOf(a.want); m.Key != want {
			t.Errorf("%s: Key %+v, want KeyOf(bytes) %+v", a.name, m.Key, want)
		}
	}
}

func (s *suite) testList(t *testing.T) {
	mb := open(t, s.st, target)
	info := mb.Info()
	if info.Messages != len(s.appended) {
		t.Errorf("Info().Messages = %d, want %d", info.Messages, len(s.appended))
	}
	got := listAll(t, mb, nil)
	s.checkListed(t, got)
	uids, err := mb.UIDs(ctx(t))
	if err != nil {
		t.Fatalf("UIDs: %v", err)
	}
	var listed []providers.UID
	for _, m := range got {
		listed = append(listed, m.UID)
	}
	if !slices.Equal(uids, listed) {
		t.Errorf("UIDs() = %v, List gave %v", uids, listed)
	}
	if info.UIDNext != 0 && len(uids) > 0 && info.UIDNext <= uint32(uids[len(uids)-1]) {
		t.Errorf("Info().UIDNext = %d, not above the largest UID %d", info.UIDNext, uids[len(uids)-1])
	}
}

func (s *suite) testFetch(t *testing.T) {
	mb := open(t, s.st, target)
	got := fetchAll(t, mb, nil)
	if len(got) != len(s.appended) {
		t.Fatalf("Fetch gave %d messages, want %d", len(got), len(s.appended))
	}
	listed := listAll(t, mb, nil)
	for i, a := range s.appended {
		f := got[i]
		if !bytes.Equal(f.raw, a.want) {
			t.Errorf("%s: fetched bytes differ from appended (%s)", a.name, diffAt(f.raw, a.want))
		}
		if i < len(listed) {
			if f.uid != listed[i].UID {
				t.Errorf("%s: fetched as UID %d, listed as %d", a.name, f.uid, listed[i].UID)
			}
			if k := providers.KeyOf(f.raw); listed[i].Key != k {
				t.Errorf("%s: listed Key %+v != KeyOf(fetched bytes) %+v", a.name, listed[i].Key, k)
			}
		}
	}
}

// diffAt describes where two byte slices first differ.
func diffAt(got, want []byte) string {
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	ctxOf := func(b []byte) string { return fmt.Sprintf("%q", b[i:min(len(b), i+24)]) }
	return fmt.Sprintf("got %d bytes, want %d; first difference at byte %d: got %s, want %s", len(got), len(want), i, ctxOf(got), ctxOf(want))
}

func (s *suite) testSubset(t *testing.T) {
	mb := open(t, s.st, target)
	all, err := mb.UIDs(ctx(t))
	if err != nil || len(all) < 4 {
		t.Fatalf("UIDs: %v, %v", all, err)
	}
	missing := all[len(all)-1] + 1000
	pick := []providers.UID{all[0], all[2], all[len(all)-1], missing}
	want := pick[:3]
	var listed []providers.UID
	for _, m := range listAll(t, mb, pick) {
		listed = append(listed, m.UID)
	}
	if !slices.Equal(listed, want) {
		t.Errorf("List(%v) gave %v, want %v (a missing UID is left out)", pick, listed, want)
	}
	var got []providers.UID
	for _, f := range fetchAll(t, mb, pick) {
		got = append(got, f.uid)
		if i := slices.Index(all, f.uid); i >= 0 && i < len(s.appended) && !bytes.Equal(f.raw, s.appended[i].want) {
			t.Errorf("Fetch subset: uid %d bytes differ", f.uid)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Fetch(%v) gave %v, want %v", pick, got, want)
	}
	if n := len(listAll(t, mb, []providers.UID{})); n != 0 {
		t.Errorf("List with an empty, non-nil UID list gave %d messages, want none", n)
	}
	if n := len(fetchAll(t, mb, []providers.UID{})); n != 0 {
		t.Errorf("Fetch with an empty, non-nil UID list gave %d messages, want none", n)
	}
}

// testFilter: providers.Select gives, for each filter, exactly the
// messages Filter.Match selects from what List reports, whether the store
// searches itself (IMAP SEARCH) or is listed.
func (s *suite) testFilter(t *testing.T) {
	mb := open(t, s.st, target)
	listed := listAll(t, mb, nil)
	if len(listed) < 4 {
		t.Fatalf("List gave %d messages", len(listed))
	}
	days := make([]time.Time, len(listed))
	sizes := make([]int64, len(listed))
	for i, m := range listed {
		y, mo, d := m.InternalDate.Date()
		days[i] = time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
		sizes[i] = m.Size
	}
	slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
	slices.Sort(sizes)
	mid, late := days[len(days)/2], days[len(days)*3/4]
	filters := map[string]providers.Filter{
		"since":          {Since: mid},
		"before":         {Before: mid},
		"since-before":   {Since: days[len(days)/4], Before: late},
		"one-day":        {Since: mid, Before: mid.AddDate(0, 0, 1)},
		"max-size":       {MaxSize: sizes[len(sizes)/2]},
		"size-and-dates": {Since: days[len(days)/4], MaxSize: sizes[len(sizes)*3/4]},
	}
	for name, f := range filters {
		var want []providers.UID
		for _, m := range listed {
			if f.Match(m) {
				want = append(want, m.UID)
			}
		}
		got, err := providers.Select(ctx(t), mb, f)
		if err != nil {
			t.Fatalf("%s: Select: %v", name, err)
		}
		if len(want) == 0 || len(want) == len(listed) {
			t.Errorf("%s: the filter selects %d of %d messages; the suite needs one that selects some", name, len(want), len(listed))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s (%+v): Select gave %v, Match on List gives %v", name, f, got, want)
		}
	}
}

func (s *suite) testReopen(t *testing.T) {
	first := open(t, s.st, target)
	before := first.Info()
	st := s.st
	if s.opt.Reopen != nil {
		st = s.opt.Reopen(t, s.st)
	} else {
		t.Log("no Options.Reopen: reopening the mailbox on the same store")
	}
	mb := open(t, st, target)
	if got := mb.Info().UIDValidity; got != before.UIDValidity {
		t.Errorf("UIDValidity changed across reopen: %d, then %d", before.UIDValidity, got)
	}
	s.checkListed(t, listAll(t, mb, nil))
	for _, f := range fetchAll(t, mb, nil) {
		i := slices.IndexFunc(s.appended, func(a appended) bool { return a.uid == f.uid })
		if i >= 0 && !bytes.Equal(f.raw, s.appended[i].want) {
			t.Errorf("after reopen, uid %d bytes differ (%s)", f.uid, diffAt(f.raw, s.appended[i].want))
		}
	}
	info, ok := mailboxes(t, st)[target]
	if !ok {
		t.Fatalf("Mailboxes lacks %q after reopen", target)
	}
	if info.UIDValidity != 0 && info.UIDValidity != before.UIDValidity {
		t.Errorf("Mailboxes reports UIDValidity %d, the open mailbox %d", info.UIDValidity, before.UIDValidity)
	}
	if info.Messages != -1 && info.Messages != len(s.appended) {
		t.Errorf("Mailboxes reports %d messages, want %d (or -1 for unknown)", info.Messages, len(s.appended))
	}
}

// heapUse samples the heap while fn runs and returns the bytes allocated
// and the peak HeapInuse above the level before.
func heapUse(fn func()) (alloc, peak uint64) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		var high uint64
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			high = max(high, ms.HeapInuse)
			select {
			case <-stop:
				done <- high
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(stop)
	high := <-done
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if high > before.HeapInuse {
		peak = high - before.HeapInuse
	}
	return after.TotalAlloc - before.TotalAlloc, peak
}

func (s *suite) testLarge(t *testing.T) {
	size := s.opt.MaxMessageBytes
	if size <= 0 {
		size = largeDefault
	}
	mb := open(t, s.st, boxWork)
	want := sha256.New()
	var (
		uid   providers.UID
		calls int
		derr  error
		mu    sync.Mutex
	)
	alloc, peak := heapUse(func() {
		src := io.TeeReader(newBigMessage(size), want)
		err := mb.Append(ctx(t), src, size, providers.MessageInfo{Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)},
			func(u providers.UID, err error) {
				mu.Lock()
				defer mu.Unlock()
				uid, derr = u, err
				calls++
			})
		if err == nil {
			err = mb.Flush(ctx(t))
		}
		if err != nil {
			t.Fatalf("Append of %d bytes: %v", size, err)
		}
	})
	t.Logf("Append %d MB: allocated %d MB, heap peak +%d MB", size>>20, alloc>>20, peak>>20)
	mu.Lock()
	if calls != 1 || derr != nil {
		t.Fatalf("done called %d times, last error %v", calls, derr)
	}
	mu.Unlock()
	if s.opt.StreamsMessages && alloc > uint64(size)/4 {
		t.Errorf("Append allocated %d bytes for a %d-byte message; the store declares StreamsMessages", alloc, size)
	}

	rd := open(t, s.st, boxWork)
	uids, err := rd.UIDs(ctx(t))
	if err != nil || len(uids) == 0 {
		t.Fatalf("UIDs: %v, %v", uids, err)
	}
	if uid == 0 {
		uid = uids[len(uids)-1]
	}
	var listed []providers.MessageInfo
	if err := rd.List(ctx(t), []providers.UID{uid}, func(m providers.MessageInfo) error {
		listed = append(listed, m)
		return nil
	}); err != nil || len(listed) != 1 {
		t.Fatalf("List(%d): %d messages, %v", uid, len(listed), err)
	}
	if listed[0].Size != size {
		t.Errorf("listed Size %d, want %d", listed[0].Size, size)
	}
	got := sha256.New()
	var n int64
	alloc, peak = heapUse(func() {
		err = rd.Fetch(ctx(t), []providers.UID{uid}, func(u providers.UID, sz int64, body io.Reader) error {
			if sz != size {
				t.Errorf("Fetch announced %d bytes, want %d", sz, size)
			}
			var err error
			n, err = io.Copy(got, body)
			return err
		})
	})
	t.Logf("Fetch %d MB: allocated %d MB, heap peak +%d MB", size>>20, alloc>>20, peak>>20)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Errorf("fetched %d bytes with sha256 %x; appended %d bytes with sha256 %x", n, got.Sum(nil), size, want.Sum(nil))
	}
	if s.opt.StreamsMessages && alloc > uint64(size)/4 {
		t.Errorf("Fetch allocated %d bytes for a %d-byte message; the store declares StreamsMessages", alloc, size)
	}
}

func (s *suite) testConcurrent(t *testing.T) {
	const per = 15
	boxes := []string{boxSpace, boxDot, boxAmp}
	var wg sync.WaitGroup
	errs := make(chan error, len(boxes)*2)
	for _, name := range boxes {
		wg.Go(func() {
			mb, err := s.st.Mailbox(ctx(t), name)
			if err != nil {
				errs <- err
				return
			}
			defer mb.Close()
			for i := range per {
				raw := numbered(name, i)
				var derr error
				err := mb.Append(ctx(t), bytes.NewReader(raw), int64(len(raw)), providers.MessageInfo{InternalDate: time.Now()},
					func(_ providers.UID, err error) { derr = err })
				if err == nil {
					err = mb.Flush(ctx(t))
				}
				if err == nil {
					err = derr
				}
				if err != nil {
					errs <- fmt.Errorf("append to %q: %w", name, err)
					return
				}
			}
		})
		// A reader of another mailbox at the same time.
		wg.Go(func() {
			mb, err := s.st.Mailbox(ctx(t), boxWork)
			if err != nil {
				errs <- err
				return
			}
			defer mb.Close()
			if err := mb.List(ctx(t), nil, func(providers.MessageInfo) error { return nil }); err != nil {
				errs <- fmt.Errorf("list %q: %w", boxWork, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, name := range boxes {
		mb := open(t, s.st, name)
		got := fetchAll(t, mb, nil)
		if len(got) != per {
			t.Errorf("%q holds %d messages after concurrent appends, want %d", name, len(got), per)
			continue
		}
		for i, f := range got {
			if want := numbered(name, i); !bytes.Equal(f.raw, s.opt.expect(want)) {
				t.Errorf("%q message %d: %s", name, i, diffAt(f.raw, s.opt.expect(want)))
			}
		}
	}
}

func (s *suite) testCancel(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	canceled := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", what, err)
		}
	}
	// Each call gets a fresh handle: a store may retire a handle whose
	// operation was cancelled.
	fresh := func() providers.Mailbox { return open(t, s.st, target) }

	_, err := s.st.Mailboxes(cancelled)
	canceled("Mailboxes", err)
	_, err = s.st.Mailbox(cancelled, target)
	canceled("Mailbox", err)
	err = s.st.CreateMailbox(cancelled, "Never created", "")
	canceled("CreateMailbox", err)

	_, err = fresh().UIDs(cancelled)
	canceled("UIDs", err)
	calls := 0
	err = fresh().List(cancelled, nil, func(providers.MessageInfo) error { calls++; return nil })
	canceled("List", err)
	err = fresh().Fetch(cancelled, nil, func(providers.UID, int64, io.Reader) error { calls++; return nil })
	canceled("Fetch", err)
	if calls != 0 {
		t.Errorf("List/Fetch with a cancelled context called fn %d times", calls)
	}
	raw := numbered("cancelled", 1)
	doneCalled := false
	err = fresh().Append(cancelled, bytes.NewReader(raw), int64(len(raw)), providers.MessageInfo{}, func(providers.UID, error) { doneCalled = true })
	canceled("Append", err)
	if doneCalled {
		t.Errorf("Append returned an error and still called done")
	}

	if _, ok := mailboxes(t, s.st)["Never created"]; ok {
		t.Errorf("CreateMailbox with a cancelled context created the mailbox")
	}
	if n := len(listAll(t, fresh(), nil)); n != len(s.appended) {
		t.Errorf("%q holds %d messages after a cancelled Append, want %d", target, n, len(s.appended))
	}
}

// testMove: a store that moves messages (providers.Mover) moves exactly
// those asked for, with their bytes, flags and dates, leaves the others,
// reports the new UIDs it knows, and refuses a stale UIDValidity.
func (s *suite) testMove(t *testing.T) {
	mv, ok := s.st.(providers.Mover)
	if !ok {
		t.Skip("the store does not implement providers.Mover")
	}
	from, to := boxSpace, boxAmp
	mb := open(t, s.st, from)
	before, err := mb.UIDs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []fixture
	for i := range 4 {
		msgs = append(msgs, fixture{name: fmt.Sprint("move ", i), raw: numbered("move", i), flags: []string{`\Seen`, "Moved1"}, date: time.Date(2020, 1, 2, 3, 4, 5+i, 0, time.UTC)})
	}
	appendAll(t, s.opt, mb, msgs)
	mb = open(t, s.st, from)
	uids, err := mb.UIDs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	uids = uids[len(before):]
	validity := mb.Info().UIDValidity
	if s.opt.MoveRefused {
		_, err := mv.Move(ctx(t), from, validity, uids[1:2], to)
		if err == nil || providers.ClassOf(err) != providers.ClassMailbox {
			t.Errorf("Move where the store cannot move: %v (class %v), want a mailbox-class refusal", err, providers.ClassOf(err))
		}
		if after, err := open(t, s.st, from).UIDs(ctx(t)); err != nil || !slices.Contains(after, uids[1]) {
			t.Errorf("a refused Move took the message away (%v)", err)
		}
		return
	}
	if _, err := mv.Move(ctx(t), from, validity+1, uids[:1], to); !errors.Is(err, providers.ErrUIDValidityChanged) {
		t.Errorf("Move with a wrong UIDValidity: %v, want ErrUIDValidityChanged", err)
	}
	moved, err := mv.Move(ctx(t), from, validity, []providers.UID{uids[1], uids[3]}, to)
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	left := listAll(t, open(t, s.st, from), nil)
	var leftUIDs []providers.UID
	for _, m := range left {
		leftUIDs = append(leftUIDs, m.UID)
	}
	if slices.Contains(leftUIDs, uids[1]) || slices.Contains(leftUIDs, uids[3]) || !slices.Contains(leftUIDs, uids[0]) || !slices.Contains(leftUIDs, uids[2]) {
		t.Errorf("after Move, %q holds %v (moved %v)", from, leftUIDs, []providers.UID{uids[1], uids[3]})
	}
	dst := open(t, s.st, to)
	got := listAll(t, dst, nil)
	raws := fetchAll(t, dst, nil)
	for _, k := range []int{1, 3} {
		want := s.opt.expect(msgs[k].raw)
		i := slices.IndexFunc(raws, func(f fetched) bool { return bytes.Equal(f.raw, want) })
		if i < 0 {
			t.Errorf("message %d is not in %q after Move", k, to)
			continue
		}
		m := got[slices.IndexFunc(got, func(m providers.MessageInfo) bool { return m.UID == raws[i].uid })]
		if !s.opt.sameFlags(m.Flags, msgs[k].flags) || !sameSecond(m.InternalDate, msgs[k].date) {
			t.Errorf("message %d after Move: flags %v, date %v; want %v, %v", k, m.Flags, m.InternalDate, msgs[k].flags, msgs[k].date)
		}
		if nu, ok := moved[uids[k]]; ok && nu != raws[i].uid {
			t.Errorf("Move reported uid %d -> %d, the message is at %d", uids[k], nu, raws[i].uid)
		}
	}
}

func (s *suite) testRemove(t *testing.T) {
	if s.opt.NoRemove {
		t.Skip("NoRemove: the store declares it cannot remove messages")
	}
	rm := s.st.(providers.Remover)
	mb := open(t, s.st, boxDeep)
	var msgs []fixture
	for i := range 6 {
		msgs = append(msgs, fixture{name: fmt.Sprint("remove ", i), raw: numbered("remove", i), date: time.Now()})
	}
	appendAll(t, s.opt, mb, msgs)
	mb = open(t, s.st, boxDeep)
	uids, err := mb.UIDs(ctx(t))
	if err != nil || len(uids) != len(msgs) {
		t.Fatalf("UIDs: %v, %v; want %d messages", uids, err, len(msgs))
	}
	validity := mb.Info().UIDValidity

	err = rm.Remove(ctx(t), boxDeep, validity+1, uids[:1])
	if !errors.Is(err, providers.ErrUIDValidityChanged) {
		t.Errorf("Remove with a wrong UIDValidity: %v, want ErrUIDValidityChanged", err)
	}
	err = rm.Remove(ctx(t), "Not/There", validity, uids[:1])
	if !errors.Is(err, providers.ErrMailboxNotFound) {
		t.Errorf("Remove from a missing mailbox: %v, want ErrMailboxNotFound", err)
	} else {
		checkClass(t, "Remove from a missing mailbox", err)
	}
	if err := rm.Remove(ctx(t), boxDeep, validity, nil); err != nil {
		t.Errorf("Remove of no UIDs: %v", err)
	}
	if got := len(fetchAll(t, open(t, s.st, boxDeep), nil)); got != len(msgs) {
		t.Fatalf("refused removals removed something: %d messages left, want %d", got, len(msgs))
	}

	gone := []providers.UID{uids[1], uids[4], uids[5] + 100}
	if err := rm.Remove(ctx(t), boxDeep, validity, gone); err != nil {
		t.Fatalf("Remove(%v): %v", gone, err)
	}
	after := open(t, s.st, boxDeep)
	if v := after.Info().UIDValidity; v != validity {
		t.Errorf("Remove changed UIDValidity from %d to %d", validity, v)
	}
	keep := []int{0, 2, 3, 5}
	got := fetchAll(t, after, nil)
	if len(got) != len(keep) {
		t.Fatalf("after Remove: %d messages, want %d", len(got), len(keep))
	}
	for i, k := range keep {
		if got[i].uid != uids[k] {
			t.Errorf("after Remove: message %d has UID %d, want %d (UIDs of the others must not change)", i, got[i].uid, uids[k])
		}
		if want := s.opt.expect(msgs[k].raw); !bytes.Equal(got[i].raw, want) {
			t.Errorf("after Remove: uid %d bytes differ (%s)", got[i].uid, diffAt(got[i].raw, want))
		}
	}
}

func (s *suite) testSubscribe(t *testing.T) {
	if s.opt.NoSubscribe {
		t.Skip("NoSubscribe: the store declares it has no subscriptions")
	}
	sub := s.st.(providers.Subscriber)
	if err := sub.Subscribe(ctx(t), boxDeep); err != nil {
		t.Fatalf("Subscribe(%q): %v", boxDeep, err)
	}
	boxes := mailboxes(t, s.st)
	if !boxes[boxDeep].Subscribed {
		t.Errorf("%q not reported subscribed after Subscribe", boxDeep)
	}
	if boxes[boxDot].Subscribed {
		t.Errorf("%q reported subscribed; nothing subscribed it", boxDot)
	}
}
