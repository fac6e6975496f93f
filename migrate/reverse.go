package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// ReverseOptions tunes Reverse. Options tune the copy back.
type ReverseOptions struct {
	Options
	// PropagateDeletes removes from the source the originals of copies the
	// user deleted or moved away on the destination. Without Execute it
	// only reports them.
	PropagateDeletes bool
	Execute          bool
}

// ReverseSummary is the outcome of reverse for one account pair.
type ReverseSummary struct {
	Account string `json:"account"`
	Source  string `json:"source_user"`
	Dest    string `json:"dest_user"`
	// Copied is the copy back: per destination mailbox, the messages that
	// were not copies of source mail, carried to the source.
	Copied AccountSummary `json:"copied_back"`
	// FlagsCarried counts source messages whose flags were set to those of
	// their copy on the destination (in a dry run: would be set).
	FlagsCarried int `json:"flags_carried_back"`
	// Moved, Archived and Deleted list copies gone from where migrate put
	// them: found in another destination mailbox (moved; MovesCarried
	// counts the originals moved likewise on the source), only in an \All
	// mailbox (archived: the original stays), or nowhere (deleted).
	Moved        []Problem `json:"moved,omitempty"`
	MovesCarried int       `json:"moves_carried_back"`
	Archived     []Problem `json:"archived,omitempty"`
	Deleted      []Problem `json:"deleted,omitempty"`
	// RemovedFromSource counts originals of deleted copies removed from
	// the source (only with PropagateDeletes and Execute).
	RemovedFromSource int           `json:"removed_from_source"`
	Duration          time.Duration `json:"duration_ns"`
	Status            string        `json:"status"`
	Error             string        `json:"error,omitempty"`
}

// ReverseID is the ledger key of the way back of an account pair: a run of
// its own, so it resumes, deduplicates and can be undone like migrate.
func ReverseID(account string) string { return ledger.ReverseAccountID(account) }

// Reverse carries back to the source what changed on the destination since
// the migration: messages that are not copies of source mail (new mail, mail
// the user created or filed, new folders) are copied to the source, with
// the same ledger machinery as migrate, so reverse resumes and never
// duplicates; a copy the user moved to another folder has its original
// moved likewise on the source (not copied back: that would be a second
// copy); flag and keyword changes on migrated messages are set on their
// originals; copies deleted on the destination are reported, and their
// originals removed from the source only with PropagateDeletes and
// Execute. Mail that was on the destination before the migration stays
// there. The orientation stays that of the migration: src is the original
// source, dst the destination. With opts.DryRun (and a ledger that drops
// writes, see DryRun) it changes nothing and reports what it would do.
func Reverse(ctx context.Context, a BatchAccount, src, dst providers.Store, lg ledger.Ledger, opts ReverseOptions) (ReverseSummary, error) {
	start := time.Now()
	sum := ReverseSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser}
	finish := func(err error) (ReverseSummary, error) {
		sum.Duration = time.Since(start)
		sum.Status = StatusOK
		if err != nil {
			sum.Error = err.Error()
		}
		if err != nil || sum.Copied.Status != StatusOK {
			sum.Status = StatusFailed
		}
		if ctx.Err() != nil {
			sum.Status = StatusInterrupted
		}
		return sum, err
	}
	fwd, err := readForward(lg, a.ID)
	if err != nil {
		return finish(err)
	}
	seen, err := readSeen(lg, a.ID)
	if err != nil {
		return finish(err)
	}
	// What is gone from where migrate put it, before anything is copied
	// back: a moved copy must not come back as new mail.
	gone, err := findGone(ctx, dst, fwd, seen)
	if err != nil {
		return finish(err)
	}
	moved := map[string]map[providers.UID]bool{} // destination mailbox -> moved copies
	for _, g := range gone {
		if g.kind == goneMoved {
			if moved[g.to] == nil {
				moved[g.to] = map[providers.UID]bool{}
			}
			moved[g.to][g.toUID] = true
		}
	}
	// Where each destination mailbox's mail goes back to.
	names := map[string]string{}
	for _, m := range fwd {
		if _, seen := names[m.rec.Dest]; !seen {
			names[m.rec.Dest] = m.rec.Source
		}
	}
	back := opts.Options
	back.Names = names
	back.Exclude = func(mailbox string, validity uint32) (func(providers.UID) bool, error) {
		claimed := forwardClaims(fwd, seen, mailbox, validity)
		return func(u providers.UID) bool { return claimed(u) || moved[mailbox][u] }, nil
	}
	// Flags of what is copied back follow the destination on re-runs too.
	back.NoFlagSync = false
	// The copy back reports its mailboxes as this account's; the account's
	// own start and end are reported around all of reverse.
	back.Events = func(e Event) {
		if e.Kind == EventAccountStart || e.Kind == EventAccountDone {
			return
		}
		e.ID = a.ID
		opts.emit(e)
	}
	sum.Copied, err = Migrate(ctx, Account{ID: ReverseID(a.ID), SourceUser: a.DestUser, DestUser: a.SourceUser, Source: dst, Dest: src}, lg, back)
	if err != nil {
		return finish(err)
	}
	if err := carryMoves(ctx, src, lg, a.ID, gone, &sum, opts.Run, opts.DryRun); err != nil {
		return finish(err)
	}
	if fwd, err = readForward(lg, a.ID); err != nil { // moves re-paired records
		return finish(err)
	}
	if err := carryFlags(ctx, src, dst, fwd, &sum, opts); err != nil {
		return finish(err)
	}
	for _, g := range gone {
		switch g.kind {
		case goneArchived:
			sum.Archived = append(sum.Archived, g.problem(fmt.Sprintf("archived on the destination (only in %q): the original stays", g.to)))
		case goneDeleted:
			sum.Deleted = append(sum.Deleted, g.problem(fmt.Sprintf("deleted on the destination (was uid %d in %q)", g.r.DstUID, g.m.rec.Dest)))
		}
	}
	if opts.PropagateDeletes && opts.Execute {
		if err := removeOriginals(ctx, src, gone, &sum); err != nil {
			return finish(err)
		}
	}
	return finish(nil)
}

// forwardMailbox is one mailbox of the migration with its records.
type forwardMailbox struct {
	name string // the ledger's key of the source mailbox
	rec  ledger.MailboxRecord
	recs []ledger.Record
}

func readForward(lg ledger.Ledger, account string) ([]forwardMailbox, error) {
	var out []forwardMailbox
	err := lg.Mailboxes(account, func(name string, rec ledger.MailboxRecord) error {
		if rec.Source == "" {
			rec.Source = name
		}
		m := forwardMailbox{name: name, rec: rec}
		err := lg.Records(account, name, func(r ledger.Record) error {
			m.recs = append(m.recs, r)
			return nil
		})
		out = append(out, m)
		return err
	})
	if err != nil {
		return nil, providers.WithClass(providers.ClassRun, err)
	}
	return out, nil
}

// readSeen reads the first sights of the destination mailboxes.
func readSeen(lg ledger.Ledger, account string) (map[string]ledger.DestMailbox, error) {
	seen := map[string]ledger.DestMailbox{}
	err := lg.DestMailboxes(account, func(name string, d ledger.DestMailbox) error {
		seen[name] = d
		return nil
	})
	if err != nil {
		return nil, providers.WithClass(providers.ClassRun, err)
	}
	return seen, nil
}

// forwardClaims tells what reverse must not copy back from a destination
// mailbox: the copies of source mail, the messages matched to source mail,
// and everything that was there before the migration (below the UIDNEXT
// of mailferry's first sight of the mailbox, while its UIDVALIDITY is the
// same; a mailbox first seen after that, or recreated since, is new).
func forwardClaims(fwd []forwardMailbox, seen map[string]ledger.DestMailbox, mailbox string, validity uint32) func(providers.UID) bool {
	claimed := map[providers.UID]bool{}
	baseline := uint32(0)
	if d, ok := seen[mailbox]; ok && d.UIDValidity == validity {
		baseline = d.UIDNext
	}
	for _, m := range fwd {
		if m.rec.Dest != mailbox || m.rec.DstValidity != validity {
			continue
		}
		baseline = max(baseline, m.rec.DstBaseline)
		for _, r := range m.recs {
			if r.Status.Settled() && r.DstValidity == validity && r.DstUID != 0 {
				claimed[providers.UID(r.DstUID)] = true
			}
		}
	}
	return func(u providers.UID) bool { return uint32(u) < baseline || claimed[u] }
}

// carryFlags sets the flags of migrated messages on the source to those
// their copies have on the destination now.
func carryFlags(ctx context.Context, src, dst providers.Store, fwd []forwardMailbox, sum *ReverseSummary, opts ReverseOptions) error {
	setter, ok := providers.As[providers.FlagSetter](src)
	if !ok {
		return nil
	}
	for _, m := range fwd {
		// First, on a connection of its own and holding no other.
		changed, err := changedSince(ctx, dst, m)
		if err != nil {
			return err
		}
		sm, err := src.Mailbox(ctx, m.rec.Source)
		if err != nil {
			return fmt.Errorf("open source mailbox %q: %w", m.rec.Source, err)
		}
		dm, err := dst.Mailbox(ctx, m.rec.Dest)
		if err != nil {
			sm.Close()
			return fmt.Errorf("open destination mailbox %q: %w", m.rec.Dest, err)
		}
		changes, err := flagChanges(ctx, sm, dm, m, changed)
		srcValidity := sm.Info().UIDValidity
		sm.Close()
		dm.Close()
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			continue
		}
		if opts.DryRun { // counted as they would be carried
			sum.FlagsCarried += len(changes)
			continue
		}
		if err := setter.SetFlags(ctx, m.rec.Source, srcValidity, changes); err != nil {
			return err
		}
		sum.FlagsCarried += len(changes)
	}
	return nil
}

// changedSince is the set of destination UIDs whose flags changed after
// cutover, where cutover noted the mailbox's HIGHESTMODSEQ and the server
// can tell; nil means unknown (every copy is looked at).
func changedSince(ctx context.Context, dst providers.Store, m forwardMailbox) (map[providers.UID]bool, error) {
	ct, ok := providers.As[providers.ChangeTracker](dst)
	if !ok || m.rec.CutoverModSeq == 0 {
		return nil, nil
	}
	out := map[providers.UID]bool{}
	err := ct.ChangedSince(ctx, m.rec.Dest, m.rec.DstValidity, m.rec.CutoverModSeq, func(u providers.UID, _ []string) error {
		out[u] = true
		return nil
	})
	if errors.Is(err, providers.ErrUIDValidityChanged) {
		return nil, nil // recreated since: no pair matches it anyway
	}
	if err != nil {
		return nil, fmt.Errorf("flag changes in %q since cutover: %w", m.rec.Dest, err)
	}
	return out, nil
}

func flagChanges(ctx context.Context, sm, dm providers.Mailbox, m forwardMailbox, changed map[providers.UID]bool) (map[providers.UID][]string, error) {
	sv, dv := sm.Info().UIDValidity, dm.Info().UIDValidity
	pairs := map[providers.UID]providers.UID{}
	for _, r := range m.recs {
		// Only mailferry's own copies: a message that was on the
		// destination before (a duplicate) has flags of its own.
		if r.Status == ledger.StatusCopied && r.SrcValidity == sv && r.DstValidity == dv && r.DstUID != 0 &&
			(changed == nil || changed[providers.UID(r.DstUID)]) {
			pairs[providers.UID(r.SrcUID)] = providers.UID(r.DstUID)
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	srcFlags, err := flagsOf(ctx, sm, nil)
	if err != nil {
		return nil, fmt.Errorf("read source flags of %q: %w", m.rec.Source, err)
	}
	dstFlags, err := flagsOf(ctx, dm, nil)
	if err != nil {
		return nil, fmt.Errorf("read destination flags of %q: %w", m.rec.Dest, err)
	}
	changes := map[providers.UID][]string{}
	for s, d := range pairs {
		sf, okS := srcFlags[s]
		df, okD := dstFlags[d]
		if !okS || !okD {
			continue
		}
		if want := carriedFlags(sf, df); !sameFlags(want, sf) {
			changes[s] = want
		}
	}
	return changes, nil
}

// carriedFlags is what an original's flags become from its copy's. The
// checkpoint does not keep the flags of the time of the copy, so reverse
// carries only what cannot be a server's doing: the read, answered,
// flagged and draft state as the user left it on the destination, and the
// keywords the copy gained. Keywords the copy lacks stay (a destination
// that cannot store keywords would otherwise strip them from every
// original), and \Deleted is never carried (any client's EXPUNGE on the
// source would then remove the original).
func carriedFlags(src, dst []string) []string {
	user := []string{`\Seen`, `\Answered`, `\Flagged`, `\Draft`}
	isUser := func(f string) bool {
		return slices.ContainsFunc(user, func(u string) bool { return strings.EqualFold(u, f) })
	}
	var out []string
	for _, f := range dst {
		if isUser(f) || !strings.HasPrefix(f, `\`) {
			out = append(out, f)
		}
	}
	for _, f := range src {
		if !isUser(f) && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, f) }) {
			out = append(out, f) // \Deleted and keywords the copy lacks stay as they are
		}
	}
	return providers.AppendFlags(out)
}

type goneKind int

const (
	goneMoved    goneKind = iota + 1 // found unclaimed in another destination mailbox
	goneArchived                     // found only in an \All mailbox
	goneDeleted                      // found nowhere
)

// goneCopy is a copy migrate made that is no longer where it put it.
type goneCopy struct {
	m    forwardMailbox
	r    ledger.Record
	kind goneKind
	// For a moved or archived copy: where its content is now.
	to         string
	toUID      providers.UID
	toValidity uint32
}

func (g goneCopy) problem(what string) Problem {
	return Problem{Mailbox: g.m.rec.Source, UID: providers.UID(g.r.SrcUID), DstUID: providers.UID(g.r.DstUID), MessageID: g.r.MessageID, What: what}
}

// findGone finds the copies migrate made that are no longer where it put
// them, and tells moves (the same content unclaimed in another destination
// mailbox, above what was there before mailferry) from archiving (the
// content only in an \All mailbox, as Gmail's archive) and deletions.
func findGone(ctx context.Context, dst providers.Store, fwd []forwardMailbox, seen map[string]ledger.DestMailbox) ([]goneCopy, error) {
	type spot struct {
		mailbox  string
		uid      providers.UID
		validity uint32
	}
	var gone []goneCopy
	moves := map[providers.Fingerprint][]spot{}   // unclaimed content in ordinary mailboxes
	archive := map[providers.Fingerprint][]spot{} // content in \All mailboxes
	byDest := map[string][]forwardMailbox{}
	for _, m := range fwd {
		byDest[m.rec.Dest] = append(byDest[m.rec.Dest], m)
	}
	boxes, err := dst.Mailboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list destination mailboxes: %w", err)
	}
	slices.SortFunc(boxes, func(x, y providers.MailboxInfo) int { return strings.Compare(x.Name, y.Name) })
	for _, b := range boxes {
		dm, err := dst.Mailbox(ctx, b.Name)
		if err != nil {
			return nil, fmt.Errorf("open destination mailbox %q: %w", b.Name, err)
		}
		validity := dm.Info().UIDValidity
		uids, err := dm.UIDs(ctx)
		if err != nil {
			dm.Close()
			return nil, fmt.Errorf("list %q: %w", b.Name, err)
		}
		present := map[providers.UID]bool{}
		for _, u := range uids {
			present[u] = true
		}
		for _, m := range byDest[b.Name] {
			for _, r := range m.recs {
				if r.Status == ledger.StatusCopied && r.DstValidity == validity && r.DstUID != 0 && !present[providers.UID(r.DstUID)] {
					gone = append(gone, goneCopy{m: m, r: r, kind: goneDeleted})
				}
			}
		}
		claimed := forwardClaims(byDest[b.Name], seen, b.Name, validity)
		rest := slices.DeleteFunc(slices.Clone(uids), claimed)
		into := moves
		if b.SpecialUse == providers.RoleAll {
			into, rest = archive, uids // every message of an \All mailbox is elsewhere too
		}
		if len(rest) > 0 {
			err = dm.List(ctx, rest, func(mi providers.MessageInfo) error {
				into[mi.Key.Fingerprint] = append(into[mi.Key.Fingerprint], spot{b.Name, mi.UID, validity})
				return nil
			})
		}
		dm.Close()
		if err != nil {
			return nil, fmt.Errorf("read %q: %w", b.Name, err)
		}
	}
	for i := range gone {
		g := &gone[i]
		if where := moves[g.r.Fingerprint]; len(where) > 0 {
			g.kind, g.to, g.toUID, g.toValidity = goneMoved, where[0].mailbox, where[0].uid, where[0].validity
			moves[g.r.Fingerprint] = where[1:]
		} else if where := archive[g.r.Fingerprint]; len(where) > 0 {
			g.kind, g.to = goneArchived, where[0].mailbox
		}
	}
	return gone, nil
}

// carryMoves moves on the source the originals of copies the user moved
// on the destination, into the source mailbox the copy back writes that
// destination mailbox to, and re-pairs their ledger records, so that the
// next run sees nothing gone. An original is moved only if it is still
// where it was with the content of the record; a store that cannot move
// keeps the original where it is and the move is reported.
func carryMoves(ctx context.Context, src providers.Store, lg ledger.Ledger, account string, gone []goneCopy, sum *ReverseSummary, run uint32, dryRun bool) error {
	mover, canMove := providers.As[providers.Mover](src)
	for _, g := range gone {
		if g.kind != goneMoved {
			continue
		}
		what := fmt.Sprintf("moved on the destination from %q to %q", g.m.rec.Dest, g.to)
		switch {
		case !canMove:
			sum.Moved = append(sum.Moved, g.problem(what+"; the source cannot move messages, the original stays"))
			continue
		case dryRun:
			sum.Moved = append(sum.Moved, g.problem(what+"; the original would be moved likewise on the source"))
			continue
		}
		target, ok, err := lg.Mailbox(ReverseID(account), g.to)
		if err != nil {
			return providers.WithClass(providers.ClassRun, err)
		}
		if !ok || target.Dest == "" {
			sum.Moved = append(sum.Moved, g.problem(what+"; that folder was not carried back, the original stays"))
			continue
		}
		note, err := moveOriginal(ctx, src, mover, lg, account, g, target.Dest, run)
		if err != nil {
			if stopsAccount(err) {
				return err
			}
			note = fmt.Sprintf("could not move the original: %v", err)
		}
		if note == "" {
			sum.MovesCarried++
			note = fmt.Sprintf("moved on the source to %q too", target.Dest)
		}
		sum.Moved = append(sum.Moved, g.problem(what+"; "+note))
	}
	return nil
}

// moveOriginal moves one original and re-pairs its record; it returns a
// note when there was nothing to do.
func moveOriginal(ctx context.Context, src providers.Store, mover providers.Mover, lg ledger.Ledger, account string, g goneCopy, target string, run uint32) (string, error) {
	if target == g.m.rec.Source {
		return "it maps back to the same source folder; nothing to move", nil
	}
	validity, ok, err := originalThere(ctx, src, g.m.rec.Source, g.r)
	if err != nil {
		return "", err
	}
	if !ok {
		return "the original is no longer there as it was (moved already?); left alone", nil
	}
	to, found, err := lg.Mailbox(account, target)
	if err != nil {
		return "", providers.WithClass(providers.ClassRun, err)
	}
	if found && to.Dest != g.to {
		// That source folder goes to another destination folder: a record
		// there cannot name a copy in g.to. Move, and say so.
		if _, err := mover.Move(ctx, g.m.rec.Source, validity, []providers.UID{providers.UID(g.r.SrcUID)}, target); err != nil {
			return "", err
		}
		return "", nil
	}
	newUIDs, err := mover.Move(ctx, g.m.rec.Source, validity, []providers.UID{providers.UID(g.r.SrcUID)}, target)
	if err != nil {
		return "", err
	}
	mb, err := src.Mailbox(ctx, target)
	if err != nil {
		return "", fmt.Errorf("open source mailbox %q: %w", target, err)
	}
	targetValidity := mb.Info().UIDValidity
	newUID, ok := newUIDs[providers.UID(g.r.SrcUID)]
	if !ok {
		newUID, err = findMoved(ctx, mb, g.r.Fingerprint)
	}
	mb.Close()
	if err != nil || newUID == 0 {
		return "moved on the source; its new place was not found, so the ledger keeps the old pairing", err
	}
	if !found {
		to = ledger.MailboxRecord{Source: target, Dest: g.to, SrcValidity: targetValidity, DstValidity: g.toValidity}
		if err := lg.PutMailbox(account, target, to); err != nil {
			return "", providers.WithClass(providers.ClassRun, err)
		}
	}
	rec := g.r
	rec.RecordKey = ledger.RecordKey{SrcValidity: targetValidity, SrcUID: uint32(newUID)}
	rec.DstValidity, rec.DstUID, rec.Run = g.toValidity, uint32(g.toUID), run
	if err := lg.PutRecords(account, target, []ledger.Record{rec}); err != nil {
		return "", providers.WithClass(providers.ClassRun, err)
	}
	if err := lg.DeleteRecords(account, g.m.name, []ledger.RecordKey{g.r.RecordKey}); err != nil {
		return "", providers.WithClass(providers.ClassRun, err)
	}
	return "", nil
}

// originalThere reports whether the source mailbox still holds, at the
// record's UID and UIDVALIDITY, the message the record describes.
func originalThere(ctx context.Context, src providers.Store, mailbox string, r ledger.Record) (uint32, bool, error) {
	mb, err := src.Mailbox(ctx, mailbox)
	if err != nil {
		return 0, false, fmt.Errorf("open source mailbox %q: %w", mailbox, err)
	}
	defer mb.Close()
	validity := mb.Info().UIDValidity
	if validity != r.SrcValidity {
		return validity, false, nil
	}
	found := false
	err = mb.List(ctx, []providers.UID{providers.UID(r.SrcUID)}, func(m providers.MessageInfo) error {
		found = m.Key.Fingerprint == r.Fingerprint
		return nil
	})
	return validity, found, err
}

// findMoved finds a moved message by content when the store gave no new
// UID: the newest message with its fingerprint.
func findMoved(ctx context.Context, mb providers.Mailbox, fp providers.Fingerprint) (providers.UID, error) {
	var uid providers.UID
	err := mb.List(ctx, nil, func(m providers.MessageInfo) error {
		if m.Key.Fingerprint == fp {
			uid = m.UID
		}
		return nil
	})
	return uid, err
}

// removeOriginals removes from the source the originals of copies deleted
// on the destination (never those moved or archived), each only if it is
// still there with the content of its record: the way back mirrors what
// users deleted, and never touches a message the record does not prove.
func removeOriginals(ctx context.Context, src providers.Store, gone []goneCopy, sum *ReverseSummary) error {
	remover, ok := providers.As[providers.Remover](src)
	if !ok {
		return providers.WithClass(providers.ClassAccount, fmt.Errorf("the source cannot remove messages"))
	}
	for _, g := range gone {
		if g.kind != goneDeleted {
			continue
		}
		validity, there, err := originalThere(ctx, src, g.m.rec.Source, g.r)
		if err != nil {
			return err
		}
		if !there {
			continue // removed already, or not the message the record names
		}
		if err := remover.Remove(ctx, g.m.rec.Source, validity, []providers.UID{providers.UID(g.r.SrcUID)}); err != nil {
			return err
		}
		sum.RemovedFromSource++
	}
	return nil
}

// ReverseBatch runs Reverse for each account, Concurrency at a time.
func ReverseBatch(ctx context.Context, accts []BatchAccount, lg ledger.Ledger, concurrency int, opts ReverseOptions) []ReverseSummary {
	opts.Options = opts.Options.withDefaults()
	bopts := BatchOptions{Options: opts.Options, LoginRetries: 5}
	return forEachPair(ctx, accts, concurrency, bopts, func(a BatchAccount, src, dst providers.Store) ReverseSummary {
		sum, _ := Reverse(ctx, a, src, dst, lg, opts)
		return sum
	}, func(a BatchAccount, err error) ReverseSummary {
		return ReverseSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Status: StatusFailed, Error: err.Error()}
	}, func(a BatchAccount, _ error) ReverseSummary {
		return ReverseSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Status: StatusInterrupted}
	})
}
