package migrate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// realParents is a destination whose server makes a mailbox's missing
// parents real mailboxes (as Cyrus, Exchange and Gmail do) and that, with
// killAt set, dies right after the CREATE of that mailbox, before
// mailferry can record it: kill -9 between CREATE and the ledger commit.
type realParents struct {
	*mem.Store
	killAt string
}

var errKilled = errors.New("killed after CREATE")

func (s *realParents) CreateMailbox(ctx context.Context, name, role string) error {
	for i := range len(name) {
		if name[i] == '/' {
			if err := s.Store.CreateMailbox(ctx, name[:i], ""); err != nil && !errors.Is(err, providers.ErrMailboxExists) {
				return err
			}
		}
	}
	err := s.Store.CreateMailbox(ctx, name, role)
	if name == s.killAt {
		panic(errKilled)
	}
	return err
}

// crashAt runs a migration that dies at the CREATE of dst.killAt, and
// reports that it did.
func crashAt(t *testing.T, src *mem.Store, dst *realParents, l ledger.Ledger, opts Options) {
	t.Helper()
	defer func() {
		if r := recover(); r != errKilled {
			t.Fatalf("the run was to die at the CREATE of %q; recover() = %v", dst.killAt, r)
		}
	}()
	Migrate(context.Background(), Account{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice", Source: src, Dest: dst}, l, opts)
}

// TestCreateIntentSurvivesAKill: killed between the CREATE of a
// destination mailbox and the ledger's record of it, a run leaves a
// committed intent; the next run settles it (the mailbox, and the parents
// the server made with it, are mailferry's), and undo then leaves the
// destination exactly as undo after an uninterrupted run does, whether
// undo comes after the resume or straight after the kill.
func TestCreateIntentSurvivesAKill(t *testing.T) {
	seed := func() *mem.Store {
		src := mem.New()
		for i := range 3 {
			src.Put("INBOX", msg(i, ""), nil, testDate)
		}
		src.Put("Work/Projects/2024", msg(10, "deep"), nil, testDate)
		src.Put("Work/Projects/2024", msg(11, "deep"), nil, testDate)
		src.Put("Zed", msg(20, "zed"), nil, testDate)
		return src
	}
	opts := Options{QuietWait: time.Millisecond}
	acct := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	undo := func(t *testing.T, dst providers.Store, l ledger.Ledger) {
		t.Helper()
		sum, err := Undo(context.Background(), acct, dst, l, UndoOptions{Execute: true})
		if err != nil || sum.failed() {
			t.Fatalf("undo: %v, %+v", err, sum)
		}
	}
	before := func() *realParents {
		dst := &realParents{Store: mem.New()}
		dst.Put("Existing", msg(99, "the user's"), nil, testDate) // the user's: undo keeps it
		return dst
	}

	// The reference: an uninterrupted run, then undo.
	ref, refL := before(), ledger.NewMemory()
	if sum := run(t, seed(), ref, refL, opts); !sum.OK() {
		t.Fatalf("reference run: %+v", sum)
	}
	for _, name := range []string{"Work", "Work/Projects", "Work/Projects/2024"} {
		if rec, ok, _ := refL.Mailbox("alice\x00alice", name); !ok || !rec.Created {
			t.Fatalf("the reference run does not record %q as created: %+v", name, rec)
		}
	}
	undo(t, ref, refL)
	want := ref.Names()
	if slices.Contains(want, "Work") || !slices.Contains(want, "Existing") {
		t.Fatalf("undo after an uninterrupted run leaves %v", want)
	}

	for _, killAt := range []string{"Work/Projects/2024", "Zed"} {
		t.Run("resume/"+killAt, func(t *testing.T) {
			src, dst, l := seed(), before(), ledger.NewMemory()
			dst.killAt = killAt
			crashAt(t, src, dst, l, opts)
			rec, _, _ := l.Mailbox("alice\x00alice", killAt)
			if len(rec.Creating) == 0 || rec.Creating[0] != killAt || rec.Created {
				t.Fatalf("after the kill the record of %q is %+v; want the intent, not yet created", killAt, rec)
			}
			dst.killAt = ""
			if sum := run(t, src, dst, l, opts); !sum.OK() {
				t.Fatalf("resumed run: %+v", sum)
			}
			if rec, _, _ := l.Mailbox("alice\x00alice", killAt); !rec.Created || len(rec.Creating) > 0 {
				t.Errorf("after the resume the record of %q is %+v; want created, the intent settled", killAt, rec)
			}
			for _, name := range []string{"Work", "Work/Projects"} {
				if rec, ok, _ := l.Mailbox("alice\x00alice", name); !ok || !rec.Created {
					t.Errorf("after the resume the parent %q is not recorded as created: %+v", name, rec)
				}
			}
			if got, want := multiset(dst.Store, killAt), multiset(src, killAt); !slices.Equal(got, want) {
				t.Errorf("%s after the resume: %d messages, want %d", killAt, len(got), len(want))
			}
			undo(t, dst, l)
			if got := dst.Names(); !slices.Equal(got, want) {
				t.Errorf("undo after the kill and resume leaves %v; after an uninterrupted run %v", got, want)
			}
		})
	}
	t.Run("undo-straight-after-the-kill", func(t *testing.T) {
		src, dst, l := seed(), before(), ledger.NewMemory()
		dst.killAt = "Work/Projects/2024"
		crashAt(t, src, dst, l, opts)
		dst.killAt = ""
		undo(t, dst, l)
		got := dst.Names()
		if !slices.Equal(got, want) {
			t.Errorf("undo straight after the kill leaves %v; after an uninterrupted run %v", got, want)
		}
		if strings.Join(got, ",") == "" {
			t.Error("undo removed everything")
		}
	})
}

// TestCreateRefusedLeavesNoIntent: a CREATE the destination refuses
// leaves no intent that a later run could take for mailferry's, and no
// record at all of a mailbox the ledger did not know (verify then says
// "not migrated", as before intents).
func TestCreateRefusedLeavesNoIntent(t *testing.T) {
	src, l := mem.New(), ledger.NewMemory()
	src.Put("Refused", msg(1, ""), nil, testDate)
	dst := &refusingCreate{Store: mem.New()}
	sum, _ := Migrate(context.Background(), Account{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice", Source: src, Dest: dst}, l, Options{QuietWait: time.Millisecond})
	if sum.OK() {
		t.Fatalf("a refused CREATE: %+v", sum)
	}
	if rec, ok, _ := l.Mailbox("alice\x00alice", "Refused"); ok {
		t.Errorf("after a refused CREATE the ledger has the record %+v; want none, as before the intent", rec)
	}
}

type refusingCreate struct{ *mem.Store }

func (refusingCreate) CreateMailbox(context.Context, string, string) error {
	return providers.WithClass(providers.ClassMailbox, errors.New("NO [CANNOT] not here"))
}
