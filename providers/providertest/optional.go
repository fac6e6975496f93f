package providertest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// Steps for optional interfaces the steps in providertest.go do not
// exercise. Each skips, saying so, when the store does not implement
// its interface.

// boxFlags and boxDeleted are mailboxes only these steps use.
const (
	boxFlags   = "Flag changes"
	boxDeleted = "Deleted again"
)

// testFlagSetter: SetFlags gives each message named exactly the flags
// asked for, changes nothing else (bytes, dates, UIDs, other messages,
// UIDVALIDITY), and refuses a stale UIDVALIDITY or a missing mailbox.
func (s *suite) testFlagSetter(t *testing.T) {
	setter, ok := s.st.(providers.FlagSetter)
	if !ok {
		t.Skip("the store does not implement providers.FlagSetter")
	}
	if err := s.st.CreateMailbox(ctx(t), boxFlags, ""); err != nil {
		t.Fatalf("CreateMailbox(%q): %v", boxFlags, err)
	}
	date := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
	msgs := []fixture{
		{name: "seen", raw: numbered("flags", 0), flags: []string{`\Seen`}, date: date},
		{name: "flagged", raw: numbered("flags", 1), flags: []string{`\Flagged`, "Kw1", "$Forwarded"}, date: date.Add(time.Hour)},
		{name: "untouched", raw: numbered("flags", 2), flags: []string{`\Draft`, "Kw1"}, date: date.Add(2 * time.Hour)},
	}
	appendAll(t, s.opt, open(t, s.st, boxFlags), msgs)
	mb := open(t, s.st, boxFlags)
	uids, err := mb.UIDs(ctx(t))
	if err != nil || len(uids) != len(msgs) {
		t.Fatalf("UIDs: %v, %v; want %d messages", uids, err, len(msgs))
	}
	validity := mb.Info().UIDValidity

	change := map[providers.UID][]string{uids[0]: {`\Answered`, "Kw2"}, uids[1]: {}}
	if err := setter.SetFlags(ctx(t), boxFlags, validity+1, change); !errors.Is(err, providers.ErrUIDValidityChanged) {
		t.Errorf("SetFlags with a wrong UIDValidity: %v, want ErrUIDValidityChanged", err)
	}
	if err := setter.SetFlags(ctx(t), "Not/There", validity, change); !errors.Is(err, providers.ErrMailboxNotFound) {
		t.Errorf("SetFlags in a missing mailbox: %v, want ErrMailboxNotFound", err)
	}
	if got := listAll(t, open(t, s.st, boxFlags), nil); len(got) == len(msgs) {
		for i, m := range got {
			if !s.opt.sameFlags(m.Flags, msgs[i].flags) {
				t.Errorf("%s: refused SetFlags changed the flags to %q", msgs[i].name, m.Flags)
			}
		}
	}
	if err := setter.SetFlags(ctx(t), boxFlags, validity, change); err != nil {
		t.Fatalf("SetFlags: %v", err)
	}
	after := open(t, s.st, boxFlags)
	if v := after.Info().UIDValidity; v != validity {
		t.Errorf("SetFlags changed UIDValidity from %d to %d", validity, v)
	}
	want := [][]string{{`\Answered`, "Kw2"}, nil, msgs[2].flags}
	got := listAll(t, after, nil)
	raws := fetchAll(t, after, nil)
	if len(got) != len(msgs) || len(raws) != len(msgs) {
		t.Fatalf("after SetFlags: List gave %d and Fetch %d messages, want %d", len(got), len(raws), len(msgs))
	}
	for i, m := range got {
		if m.UID != uids[i] || raws[i].uid != uids[i] {
			t.Errorf("%s: UID %d (fetched as %d) after SetFlags, was %d", msgs[i].name, m.UID, raws[i].uid, uids[i])
		}
		if !s.opt.sameFlags(m.Flags, want[i]) {
			t.Errorf("%s: flags %q after SetFlags, want %q", msgs[i].name, m.Flags, want[i])
		}
		if !sameSecond(m.InternalDate, msgs[i].date) {
			t.Errorf("%s: InternalDate %v after SetFlags, want %v", msgs[i].name, m.InternalDate, msgs[i].date)
		}
		if w := s.opt.expect(msgs[i].raw); !bytes.Equal(raws[i].raw, w) {
			t.Errorf("%s: bytes changed by SetFlags (%s)", msgs[i].name, diffAt(raws[i].raw, w))
		}
	}
}

// testFlagLister: a mailbox's Flags gives, for the UIDs asked (all when
// nil), the flags List reports, in ascending order, leaving out missing
// UIDs.
func (s *suite) testFlagLister(t *testing.T) {
	mb := open(t, s.st, target)
	fl, ok := mb.(providers.FlagLister)
	if !ok {
		t.Skip("the store's mailboxes do not implement providers.FlagLister")
	}
	listed := listAll(t, mb, nil)
	if len(listed) < 4 {
		t.Fatalf("List gave %d messages", len(listed))
	}
	flagsOf := func(uids []providers.UID) ([]providers.UID, map[providers.UID][]string) {
		var order []providers.UID
		out := map[providers.UID][]string{}
		err := fl.Flags(ctx(t), uids, func(uid providers.UID, flags []string) error {
			order = append(order, uid)
			out[uid] = flags
			return nil
		})
		if err != nil {
			t.Fatalf("Flags(%v): %v", uids, err)
		}
		return order, out
	}
	order, all := flagsOf(nil)
	var want []providers.UID
	for _, m := range listed {
		want = append(want, m.UID)
		if !s.opt.sameFlags(all[m.UID], m.Flags) {
			t.Errorf("uid %d: Flags gives %q, List %q", m.UID, all[m.UID], m.Flags)
		}
	}
	if !slices.Equal(order, want) {
		t.Errorf("Flags(nil) gave UIDs %v, List %v", order, want)
	}
	missing := listed[len(listed)-1].UID + 1000
	pick := []providers.UID{missing, listed[2].UID, listed[0].UID}
	if order, _ := flagsOf(pick); !slices.Equal(order, []providers.UID{listed[0].UID, listed[2].UID}) {
		t.Errorf("Flags(%v) gave UIDs %v, want %v in ascending order", pick, order, []providers.UID{listed[0].UID, listed[2].UID})
	}
	if order, _ := flagsOf([]providers.UID{}); len(order) != 0 {
		t.Errorf("Flags with an empty, non-nil UID list gave %d messages, want none", len(order))
	}
}

// testMailboxDeleter: an empty mailbox deleted is gone from Mailboxes and
// cannot be opened; deleting it again, or a mailbox never there, is
// ErrMailboxNotFound.
func (s *suite) testMailboxDeleter(t *testing.T) {
	d, ok := s.st.(providers.MailboxDeleter)
	if !ok {
		t.Skip("the store does not implement providers.MailboxDeleter")
	}
	if err := s.st.CreateMailbox(ctx(t), boxDeleted, ""); err != nil {
		t.Fatalf("CreateMailbox(%q): %v", boxDeleted, err)
	}
	if _, ok := mailboxes(t, s.st)[boxDeleted]; !ok {
		t.Fatalf("Mailboxes lacks %q after creating it", boxDeleted)
	}
	if err := d.DeleteMailbox(ctx(t), boxDeleted); err != nil {
		t.Fatalf("DeleteMailbox(%q): %v", boxDeleted, err)
	}
	if _, ok := mailboxes(t, s.st)[boxDeleted]; ok {
		t.Errorf("Mailboxes still lists %q after DeleteMailbox", boxDeleted)
	}
	if _, err := s.st.Mailbox(ctx(t), boxDeleted); !errors.Is(err, providers.ErrMailboxNotFound) {
		t.Errorf("Mailbox(%q) after DeleteMailbox: %v, want ErrMailboxNotFound", boxDeleted, err)
	}
	for _, name := range []string{boxDeleted, "Never/There"} {
		err := d.DeleteMailbox(ctx(t), name)
		if !errors.Is(err, providers.ErrMailboxNotFound) {
			t.Errorf("DeleteMailbox(%q) of a missing mailbox: %v, want ErrMailboxNotFound", name, err)
			continue
		}
		checkClass(t, fmt.Sprintf("DeleteMailbox(%q)", name), err)
	}
	// The other mailboxes are left.
	if _, ok := mailboxes(t, s.st)[target]; !ok {
		t.Errorf("Mailboxes lacks %q after deleting %q", target, boxDeleted)
	}
}

// boxChanges is the mailbox of the ChangeTracker step.
const boxChanges = "Changes"

// testChangeTracker: HighestModSeq reports the mailbox's UIDVALIDITY and a
// change number; nothing changed since it is nothing reported; a flag
// change (when the store is a FlagSetter too) raises the number and is
// reported by ChangedSince with the new flags, and only that message; a
// stale UIDVALIDITY is ErrUIDValidityChanged. A store whose server cannot
// track changes here (IMAP without CONDSTORE) must refuse with a classed
// error; the step then skips, saying why.
func (s *suite) testChangeTracker(t *testing.T) {
	ct, ok := s.st.(providers.ChangeTracker)
	if !ok {
		t.Skip("the store does not implement providers.ChangeTracker")
	}
	if err := s.st.CreateMailbox(ctx(t), boxChanges, ""); err != nil {
		t.Fatalf("CreateMailbox(%q): %v", boxChanges, err)
	}
	var msgs []fixture
	for i := range 3 {
		msgs = append(msgs, fixture{name: fmt.Sprint("change ", i), raw: numbered("change", i), flags: []string{"Kw0"}, date: time.Date(2022, 3, 4, 5, 6, 7+i, 0, time.UTC)})
	}
	appendAll(t, s.opt, open(t, s.st, boxChanges), msgs)
	mb := open(t, s.st, boxChanges)
	uids, err := mb.UIDs(ctx(t))
	if err != nil || len(uids) != len(msgs) {
		t.Fatalf("UIDs: %v, %v; want %d messages", uids, err, len(msgs))
	}
	validity, before, err := ct.HighestModSeq(ctx(t), boxChanges)
	if err != nil {
		checkClass(t, "HighestModSeq", err)
		t.Skipf("the store implements providers.ChangeTracker but cannot track changes here: %v", err)
	}
	if validity != mb.Info().UIDValidity {
		t.Errorf("HighestModSeq says UIDVALIDITY %d, the mailbox %d", validity, mb.Info().UIDValidity)
	}
	if before == 0 {
		t.Errorf("HighestModSeq of a mailbox holding mail is 0")
	}
	changed := func(modseq uint64) map[providers.UID][]string {
		t.Helper()
		out := map[providers.UID][]string{}
		if err := ct.ChangedSince(ctx(t), boxChanges, validity, modseq, func(uid providers.UID, flags []string) error {
			out[uid] = flags
			return nil
		}); err != nil {
			t.Fatalf("ChangedSince(%d): %v", modseq, err)
		}
		return out
	}
	if got := changed(before); len(got) != 0 {
		t.Errorf("ChangedSince(HighestModSeq) with nothing changed reports %v", got)
	}
	err = ct.ChangedSince(ctx(t), boxChanges, validity+1, before, func(providers.UID, []string) error { return nil })
	if !errors.Is(err, providers.ErrUIDValidityChanged) {
		t.Errorf("ChangedSince with a wrong UIDValidity: %v, want ErrUIDValidityChanged", err)
	}
	if _, _, err := ct.HighestModSeq(ctx(t), "Not/There"); err == nil {
		t.Error("HighestModSeq of a missing mailbox succeeded")
	} else {
		checkClass(t, "HighestModSeq of a missing mailbox", err)
	}

	setter, ok := s.st.(providers.FlagSetter)
	if !ok {
		t.Log("the store does not implement providers.FlagSetter: a change and its report are not checked")
		return
	}
	if err := setter.SetFlags(ctx(t), boxChanges, validity, map[providers.UID][]string{uids[1]: {`\Flagged`, "Kw1"}}); err != nil {
		t.Fatalf("SetFlags: %v", err)
	}
	v2, after, err := ct.HighestModSeq(ctx(t), boxChanges)
	if err != nil || v2 != validity || after <= before {
		t.Errorf("after a flag change HighestModSeq = %d, %d, %v; want %d and more than %d", v2, after, err, validity, before)
	}
	got := changed(before)
	if len(got) != 1 || !s.opt.sameFlags(got[uids[1]], []string{`\Flagged`, "Kw1"}) {
		t.Errorf("ChangedSince(%d) after changing uid %d = %v, want that message alone with its new flags", before, uids[1], got)
	}
	if got := changed(after); len(got) != 0 {
		t.Errorf("ChangedSince(the new HighestModSeq) reports %v, want nothing", got)
	}
}

// testAppendLimiter: AppendLimit is not negative and stays the same; a
// store that knows a limit takes a message of exactly that size and
// refuses one a byte larger with a message-class error (checked when the
// limit is small enough to send; MaxMessageBytes bounds it otherwise).
func (s *suite) testAppendLimiter(t *testing.T) {
	al, ok := s.st.(providers.AppendLimiter)
	if !ok {
		t.Skip("the store does not implement providers.AppendLimiter")
	}
	limit := al.AppendLimit()
	if limit < 0 {
		t.Fatalf("AppendLimit = %d, want 0 (unknown) or a size", limit)
	}
	if again := al.AppendLimit(); again != limit {
		t.Errorf("AppendLimit changed from %d to %d between two calls", limit, again)
	}
	if limit == 0 {
		t.Log("AppendLimit is 0: the store knows no limit here (nothing more to check)")
		return
	}
	const most = 8 << 20
	if limit > most {
		t.Logf("AppendLimit is %d: too large to send a message of that size in a test", limit)
		return
	}
	if s.opt.MaxMessageBytes > 0 && s.opt.MaxMessageBytes < limit {
		t.Errorf("AppendLimit is %d, but Options.MaxMessageBytes declares the store takes no more than %d", limit, s.opt.MaxMessageBytes)
	}
	const box = "Append limit"
	if err := s.st.CreateMailbox(ctx(t), box, ""); err != nil {
		t.Fatalf("CreateMailbox(%q): %v", box, err)
	}
	sized := func(n int64) []byte {
		b := longLine(int(n))
		if int64(len(b)) > n {
			b = append(b[:n-2], "\r\n"...)
		}
		return b
	}
	at := fixture{name: "at the limit", raw: sized(limit), date: time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)}
	appendAll(t, s.opt, open(t, s.st, box), []fixture{at})
	over := sized(limit + 1)
	var refused error
	mb := open(t, s.st, box)
	err := mb.Append(ctx(t), bytes.NewReader(over), int64(len(over)), providers.MessageInfo{InternalDate: at.date}, func(_ providers.UID, err error) { refused = err })
	if err == nil {
		err = mb.Flush(ctx(t))
	}
	if err == nil {
		err = refused
	}
	switch {
	case err == nil:
		t.Errorf("a message of %d bytes, one above AppendLimit, was taken", len(over))
	case providers.ClassOf(err) != providers.ClassMessage:
		t.Errorf("a message above AppendLimit refused with %v (class %v), want a message-class refusal", err, providers.ClassOf(err))
	}
	if n := len(listAll(t, open(t, s.st, box), nil)); n != 1 {
		t.Errorf("%q holds %d messages, want the one at the limit", box, n)
	}
}
