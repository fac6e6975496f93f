package providertest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/providers"
)

// RunReadOnly checks a store wrapper that must write nothing
// (providers.ReadOnly, providers.DryRun) over the stores opt.NewStore
// makes: it fills one through the store itself, wraps it with wrap, and
// asserts that reads through the wrapper see exactly what the store holds,
// that every write (CreateMailbox, Append and each optional write ability
// the store has) is turned away with an error wrapping
// providers.ErrReadOnly (and providers.ErrDryRun when dry), that the
// store is unchanged afterwards, and that the optional abilities found
// with providers.As are exactly the store's. A DryRun wrapper (dry) must
// moreover show a mailbox CreateMailbox turned away as there and empty.
func RunReadOnly(t *testing.T, opt Options, wrap func(providers.Store) providers.Store, dry bool) {
	t.Helper()
	inner := opt.NewStore(t)
	if err := inner.CreateMailbox(ctx(t), boxWork, ""); err != nil && !errors.Is(err, providers.ErrMailboxExists) {
		t.Fatalf("CreateMailbox(%q) on the store: %v", boxWork, err)
	}
	var msgs []fixture
	for _, f := range fixtures(opt) {
		if len(f.raw) > 0 && f.name != "lf-only" && !slices.Contains(odd, f.name) {
			msgs = append(msgs, f)
		}
	}
	msgs = msgs[:min(len(msgs), 3)]
	func() {
		mb := open(t, inner, boxWork)
		appendAll(t, opt, mb, msgs)
	}()
	before := snapshotStore(t, inner)
	ro := wrap(inner)

	wantRefused := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errors.Is(err, providers.ErrReadOnly) {
			t.Errorf("%s: %v, want an error wrapping ErrReadOnly", what, err)
		}
		if dry != errors.Is(err, providers.ErrDryRun) {
			t.Errorf("%s: %v: wraps ErrDryRun %v, want %v", what, err, !dry, dry)
		}
	}

	t.Run("Reads", func(t *testing.T) {
		if got := snapshotStore(t, ro); !sameStoreSnapshot(got, before) {
			t.Errorf("through the wrapper:\n%v\nthe store:\n%v", got, before)
		}
	})
	t.Run("Append", func(t *testing.T) {
		mb := open(t, ro, boxWork)
		raw := msgs[0].raw
		r := bytes.NewReader(raw)
		called := false
		err := mb.Append(ctx(t), r, int64(len(raw)), providers.MessageInfo{}, func(providers.UID, error) { called = true })
		wantRefused(t, "Append", err)
		if err := mb.Flush(ctx(t)); err != nil {
			t.Errorf("Flush after a refused Append: %v", err)
		}
		if called {
			t.Error("Append returned an error and still called done")
		}
		if r.Len() != len(raw) {
			t.Errorf("Append read %d bytes of a message it does not store", len(raw)-r.Len())
		}
	})
	t.Run("CreateMailbox", func(t *testing.T) {
		const name = "Nouveau/Entwürfe"
		wantRefused(t, "CreateMailbox", ro.CreateMailbox(ctx(t), name, ""))
		if _, ok := mailboxes(t, inner)[name]; ok {
			t.Fatalf("the store has %q: the wrapper created it", name)
		}
		_, shown := mailboxes(t, ro)[name]
		if shown != dry {
			t.Errorf("after CreateMailbox: the wrapper lists %q: %v, want %v", name, shown, dry)
		}
		if err := ro.CreateMailbox(ctx(t), boxWork, ""); !errors.Is(err, providers.ErrMailboxExists) {
			t.Errorf("CreateMailbox of an existing mailbox: %v, want ErrMailboxExists as the store says", err)
		}
		if !dry {
			return
		}
		if err := ro.CreateMailbox(ctx(t), name, ""); !errors.Is(err, providers.ErrMailboxExists) {
			t.Errorf("CreateMailbox again: %v, want ErrMailboxExists", err)
		}
		mb := open(t, ro, name)
		if uids, err := mb.UIDs(ctx(t)); err != nil || len(uids) != 0 {
			t.Errorf("the mailbox a dry run would create: UIDs %v, %v; want none", uids, err)
		}
		if got := listAll(t, mb, nil); len(got) != 0 {
			t.Errorf("the mailbox a dry run would create lists %d messages", len(got))
		}
	})
	t.Run("Abilities", func(t *testing.T) {
		uids := func() []providers.UID {
			mb := open(t, inner, boxWork)
			u, err := mb.UIDs(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			return u
		}()
		check := func(name string, has, wrapped bool, write func() error) {
			t.Helper()
			if has != wrapped {
				t.Errorf("%s: the store has it %v, the wrapper offers it %v", name, has, wrapped)
			}
			if has && wrapped && write != nil {
				wantRefused(t, name, write())
			}
		}
		_, has := inner.(providers.Remover)
		rm, ok := providers.As[providers.Remover](ro)
		check("Remover", has, ok, func() error { return rm.Remove(ctx(t), boxWork, before[boxWork].validity, uids) })
		_, has = inner.(providers.FlagSetter)
		fs, ok := providers.As[providers.FlagSetter](ro)
		check("FlagSetter", has, ok, func() error {
			return fs.SetFlags(ctx(t), boxWork, before[boxWork].validity, map[providers.UID][]string{uids[0]: {`\Deleted`}})
		})
		_, has = inner.(providers.MailboxDeleter)
		del, ok := providers.As[providers.MailboxDeleter](ro)
		check("MailboxDeleter", has, ok, func() error { return del.DeleteMailbox(ctx(t), boxWork) })
		_, has = inner.(providers.Mover)
		mv, ok := providers.As[providers.Mover](ro)
		check("Mover", has, ok, func() error {
			_, err := mv.Move(ctx(t), boxWork, before[boxWork].validity, uids[:1], "INBOX")
			return err
		})
		_, has = inner.(providers.Subscriber)
		sub, ok := providers.As[providers.Subscriber](ro)
		check("Subscriber", has, ok, func() error { return sub.Subscribe(ctx(t), boxWork) })
		_, has = inner.(providers.Statuser)
		_, ok = providers.As[providers.Statuser](ro)
		check("Statuser", has, ok, nil)
		_, has = inner.(providers.ChangeTracker)
		_, ok = providers.As[providers.ChangeTracker](ro)
		check("ChangeTracker", has, ok, nil)
		_, has = inner.(providers.AppendLimiter)
		_, ok = providers.As[providers.AppendLimiter](ro)
		check("AppendLimiter", has, ok, nil)

		imb, wmb := open(t, inner, boxWork), open(t, ro, boxWork)
		_, has = imb.(providers.FlagLister)
		_, ok = providers.As[providers.FlagLister](wmb)
		check("FlagLister", has, ok, nil)
		_, has = imb.(providers.Searcher)
		_, ok = providers.As[providers.Searcher](wmb)
		check("Searcher", has, ok, nil)
	})
	t.Run("Unchanged", func(t *testing.T) {
		if got := snapshotStore(t, inner); !sameStoreSnapshot(got, before) {
			t.Errorf("the store changed behind the wrapper:\n%v\nwas:\n%v", got, before)
		}
	})
}

// boxSnapshot is what the read-only suite compares of a mailbox.
type boxSnapshot struct {
	validity uint32
	flags    []string // per message, in UID order, joined
	bodies   []string
}

func snapshotStore(t *testing.T, st providers.Store) map[string]boxSnapshot {
	t.Helper()
	out := map[string]boxSnapshot{}
	for name, info := range mailboxes(t, st) {
		mb := open(t, st, name)
		snap := boxSnapshot{validity: info.UIDValidity}
		if snap.validity == 0 {
			snap.validity = mb.Info().UIDValidity
		}
		for _, m := range listAll(t, mb, nil) {
			f := slices.Clone(m.Flags)
			slices.Sort(f)
			snap.flags = append(snap.flags, fmtFlags(m.UID, f))
		}
		for _, f := range fetchAll(t, mb, nil) {
			snap.bodies = append(snap.bodies, string(f.raw))
		}
		out[name] = snap
	}
	return out
}

func fmtFlags(uid providers.UID, flags []string) string {
	b := []byte{byte(uid >> 24), byte(uid >> 16), byte(uid >> 8), byte(uid), ':'}
	for _, f := range flags {
		b = append(b, f...)
		b = append(b, ' ')
	}
	return string(b)
}

func sameStoreSnapshot(a, b map[string]boxSnapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for name, x := range a {
		y, ok := b[name]
		if !ok || x.validity != y.validity || !slices.Equal(x.flags, y.flags) || !slices.Equal(x.bodies, y.bodies) {
			return false
		}
	}
	return true
}
