package migrate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/providers"
)

// UndoOptions tunes Undo.
type UndoOptions struct {
	// Execute removes; without it Undo only reports what it would remove.
	Execute bool
	// Chunk is how many messages one UID EXPUNGE removes (default 500).
	Chunk  int
	Run    uint32
	Logger *slog.Logger
	Events func(Event)
}

func (o UndoOptions) options() Options {
	return Options{Logger: o.Logger, Events: o.Events}.withDefaults()
}

// UndoMailbox is what undo did, or would do, in one destination mailbox.
type UndoMailbox struct {
	Dest    string   `json:"dest"`
	Sources []string `json:"sources"`
	// Remove counts the copies mailferry made that are there and are (or,
	// in a dry run, would be) removed; Removed counts those this run removed.
	Remove  int `json:"remove"`
	Removed int `json:"removed"`
	// Gone counts copies no longer on the destination: removed by an
	// earlier undo, deleted or moved by the user, or lost with a recreated
	// mailbox.
	Gone int `json:"gone"`
	// Keep counts the other messages in the mailbox, which undo never
	// touches: mail that was there before, arrived later, or was put there
	// by the user.
	Keep int `json:"keep"`
	// Mismatch counts copies whose UID now holds a different message; they
	// are kept and reported.
	Mismatch int `json:"mismatch,omitempty"`
	// DeleteMailbox says the mailbox was created by mailferry and is (or
	// would be) empty after undo, so it is (or would be) deleted.
	DeleteMailbox  bool   `json:"delete_mailbox,omitempty"`
	MailboxDeleted bool   `json:"mailbox_deleted,omitempty"`
	Error          string `json:"error,omitempty"`
}

// UndoSummary is the outcome of undo for one account pair.
type UndoSummary struct {
	Account   string        `json:"account"`
	Source    string        `json:"source_user"`
	Dest      string        `json:"dest_user"`
	Executed  bool          `json:"executed"`
	Mailboxes []UndoMailbox `json:"mailboxes"`
	Duration  time.Duration `json:"duration_ns"`
	Status    string        `json:"status"`
	Error     string        `json:"error,omitempty"`
}

// Undo removes from the destination exactly the messages the ledger proves
// mailferry appended, then the mailboxes it created if they are empty. A
// copy is removed only if the message at its recorded UID, under the
// recorded UIDVALIDITY, still has the fingerprint of what was appended;
// copies whose APPENDUID was unknown are found by fingerprint among the
// messages that arrived while mailferry was appending, never below the
// UIDNEXT it saw first. Messages that were already there (skipped as
// duplicates), arrived later, or were put there by anyone else stay.
//
// Undo is resumable: each removed chunk is recorded, and on a re-run a copy
// already gone is simply recorded as gone.
func Undo(ctx context.Context, a BatchAccount, dst providers.Store, ledger Ledger, opts UndoOptions) (UndoSummary, error) {
	start := time.Now()
	if opts.Chunk <= 0 {
		opts.Chunk = 500
	}
	log := opts.options()
	sum := UndoSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Executed: opts.Execute}
	groups := map[string][]checkpoint.MailboxRecord{}
	err := ledger.Mailboxes(a.ID, func(name string, rec checkpoint.MailboxRecord) error {
		if rec.Source == "" {
			rec.Source = name
		}
		groups[rec.Dest] = append(groups[rec.Dest], rec)
		return nil
	})
	if err != nil {
		return sum, providers.WithClass(providers.ClassRun, err)
	}
	dests := make([]string, 0, len(groups))
	for d := range groups {
		dests = append(dests, d)
	}
	slices.Sort(dests)
	for _, d := range dests {
		um, err := undoMailbox(ctx, a, dst, ledger, d, groups[d], opts)
		if err != nil {
			um.Error = err.Error()
			log.Logger.Error("undo mailbox failed", "account", a.SourceUser, "mailbox", d, "err", err)
			if stopsAccount(err) {
				sum.Mailboxes = append(sum.Mailboxes, um)
				return finishUndo(sum, start, err), err
			}
		}
		sum.Mailboxes = append(sum.Mailboxes, um)
		log.emit(Event{Kind: EventUndoMailbox, ID: a.ID, Mailbox: d, Count: um.Remove})
	}
	if err := deleteCreatedMailboxes(ctx, a, dst, ledger, groups, &sum, opts); err != nil {
		return finishUndo(sum, start, err), err
	}
	if opts.Execute {
		state := checkpoint.AccountUndone
		if sum.failed() {
			state = checkpoint.AccountFailed
		}
		if err := setAccountState(ledger, a, state, "", opts.Run); err != nil {
			return finishUndo(sum, start, err), err
		}
	}
	return finishUndo(sum, start, nil), nil
}

func finishUndo(sum UndoSummary, start time.Time, err error) UndoSummary {
	sum.Duration = time.Since(start)
	sum.Status = StatusOK
	if err != nil {
		sum.Error = err.Error()
	}
	if sum.failed() {
		sum.Status = StatusFailed
	}
	return sum
}

func (s *UndoSummary) failed() bool {
	if s.Error != "" {
		return true
	}
	for _, m := range s.Mailboxes {
		if m.Error != "" || m.Mismatch > 0 {
			return true
		}
	}
	return false
}

// undoMailbox handles one destination mailbox and every source mailbox
// that was copied into it.
func undoMailbox(ctx context.Context, a BatchAccount, dst providers.Store, ledger Ledger, dest string, recs []checkpoint.MailboxRecord, opts UndoOptions) (UndoMailbox, error) {
	um := UndoMailbox{Dest: dest}
	for _, r := range recs {
		um.Sources = append(um.Sources, r.Source)
	}
	// The ledger records per source mailbox; read them all.
	type rec struct {
		src string
		checkpoint.Record
	}
	var all []rec
	for _, r := range recs {
		if err := ledger.Records(a.ID, r.Source, func(x checkpoint.Record) error {
			all = append(all, rec{r.Source, x})
			return nil
		}); err != nil {
			return um, providers.WithClass(providers.ClassRun, err)
		}
	}
	mb, err := dst.Mailbox(ctx, dest)
	if errors.Is(err, providers.ErrMailboxNotFound) {
		// The whole mailbox is gone: so is every copy in it.
		var gone []rec
		for _, r := range all {
			if r.Status == checkpoint.StatusCopied {
				gone = append(gone, r)
			}
		}
		um.Gone = len(gone)
		if opts.Execute {
			for _, g := range gone {
				if err := markRemoved(ledger, a.ID, g.src, []checkpoint.Record{g.Record}, opts.Run, "destination mailbox is gone"); err != nil {
					return um, err
				}
			}
		}
		return um, nil
	}
	if err != nil {
		return um, fmt.Errorf("open destination mailbox %q: %w", dest, err)
	}
	defer mb.Close()
	validity := mb.Info().UIDValidity
	uids, err := mb.UIDs(ctx)
	if err != nil {
		return um, fmt.Errorf("list %q: %w", dest, err)
	}
	present := make(map[providers.UID]bool, len(uids))
	for _, u := range uids {
		present[u] = true
	}

	// Sort the records: copies at a known UID, copies to find, copies gone.
	claimed := map[providers.UID]bool{}
	var atUID, toFind, gone []rec
	for _, r := range all {
		current := r.DstValidity == validity
		if current && r.Status.Settled() && r.DstUID != 0 {
			claimed[providers.UID(r.DstUID)] = true
		}
		switch {
		case r.Status != checkpoint.StatusCopied && r.Status != checkpoint.StatusPending:
		case !current:
			if r.Status == checkpoint.StatusCopied {
				gone = append(gone, r) // the mailbox was recreated since
			}
		case r.Status == checkpoint.StatusCopied && r.DstUID != 0:
			if present[providers.UID(r.DstUID)] {
				atUID = append(atUID, r)
			} else {
				gone = append(gone, r)
			}
		case r.DstUIDNext > 0:
			// A copy confirmed without APPENDUID, or an APPEND whose outcome a
			// crash left unknown: find it among what arrived since.
			toFind = append(toFind, r)
		}
	}
	// Read the keys of the messages at recorded UIDs and of every unclaimed
	// message that arrived after the lowest UIDNEXT a copy to find saw.
	look := map[providers.UID]bool{}
	for _, r := range atUID {
		look[providers.UID(r.DstUID)] = true
	}
	if len(toFind) > 0 {
		low := slices.MinFunc(toFind, func(x, y rec) int { return cmp.Compare(x.DstUIDNext, y.DstUIDNext) }).DstUIDNext
		for _, u := range uids {
			if uint32(u) >= low && !claimed[u] {
				look[u] = true
			}
		}
	}
	keys := map[providers.UID]providers.Fingerprint{}
	if len(look) > 0 {
		list := make([]providers.UID, 0, len(look))
		for u := range look {
			list = append(list, u)
		}
		slices.Sort(list)
		if err := mb.List(ctx, list, func(m providers.MessageInfo) error {
			keys[m.UID] = m.Key.Fingerprint
			return nil
		}); err != nil {
			return um, fmt.Errorf("read %q: %w", dest, err)
		}
	}
	var remove []rec
	for _, r := range atUID {
		switch fp, ok := keys[providers.UID(r.DstUID)]; {
		case !ok:
			gone = append(gone, r) // expunged while we looked
		case fp != r.Fingerprint:
			um.Mismatch++
			opts.options().Logger.Warn("undo: the message at a recorded UID is not the copy; kept",
				"account", a.SourceUser, "mailbox", dest, "uid", r.DstUID, "message_id", r.MessageID)
		default:
			remove = append(remove, r)
		}
	}
	p := newPool()
	for u, fp := range keys {
		if !claimed[u] {
			p.add(providers.MessageInfo{UID: u, Key: providers.Key{Fingerprint: fp}})
		}
	}
	p.sort()
	slices.SortFunc(toFind, func(x, y rec) int { return compareKeys(x.RecordKey, y.RecordKey) })
	for _, r := range toFind {
		if u, ok := p.takeFingerprint(r.Fingerprint, r.DstUIDNext); ok {
			r.DstUID = uint32(u)
			remove = append(remove, r)
		}
		// A pending copy not found never arrived: nothing to remove.
	}
	um.Remove, um.Gone = len(remove), len(gone)
	um.Keep = len(uids) - len(remove)
	if !opts.Execute {
		return um, nil
	}
	bySrc := func(rs []rec) map[string][]checkpoint.Record {
		m := map[string][]checkpoint.Record{}
		for _, r := range rs {
			m[r.src] = append(m[r.src], r.Record)
		}
		return m
	}
	for src, rs := range bySrc(gone) {
		if err := markRemoved(ledger, a.ID, src, rs, opts.Run, "copy no longer on the destination"); err != nil {
			return um, err
		}
	}
	slices.SortFunc(remove, func(x, y rec) int { return cmp.Compare(x.DstUID, y.DstUID) })
	for chunk := range slices.Chunk(remove, opts.Chunk) {
		batch := make([]providers.UID, len(chunk))
		for i, r := range chunk {
			batch[i] = providers.UID(r.DstUID)
		}
		if err := dst.(providers.Remover).Remove(ctx, dest, validity, batch); err != nil {
			return um, err
		}
		for src, rs := range bySrc(chunk) {
			if err := markRemoved(ledger, a.ID, src, rs, opts.Run, ""); err != nil {
				return um, err
			}
		}
		um.Removed += len(chunk)
		opts.options().emit(Event{Kind: EventRemoved, ID: a.ID, Mailbox: dest, Count: len(chunk)})
	}
	return um, nil
}

func markRemoved(ledger Ledger, account, src string, recs []checkpoint.Record, run uint32, reason string) error {
	for i := range recs {
		recs[i].Status, recs[i].Run, recs[i].Reason = checkpoint.StatusRemoved, run, reason
	}
	if err := ledger.PutRecords(account, src, recs); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}

// deleteCreatedMailboxes removes, deepest first, the mailboxes mailferry
// created that are now empty and have no child left. In a dry run it marks
// those that would be deleted.
func deleteCreatedMailboxes(ctx context.Context, a BatchAccount, dst providers.Store, ledger Ledger, groups map[string][]checkpoint.MailboxRecord, sum *UndoSummary, opts UndoOptions) error {
	deleter, canDelete := dst.(providers.MailboxDeleter)
	boxes, err := dst.Mailboxes(ctx)
	if err != nil {
		return fmt.Errorf("list destination mailboxes: %w", err)
	}
	exists := map[string]bool{}
	for _, b := range boxes {
		exists[b.Name] = true
	}
	idx := map[string]int{}
	for i, m := range sum.Mailboxes {
		idx[m.Dest] = i
	}
	dests := make([]string, 0, len(groups))
	for d := range groups {
		dests = append(dests, d)
	}
	// Deepest first, so a parent is empty of children when its turn comes.
	slices.SortFunc(dests, func(x, y string) int { return cmp.Compare(strings.Count(y, "/"), strings.Count(x, "/")) })
	for _, d := range dests {
		i, ok := idx[d]
		if !ok || !exists[d] || d == "INBOX" || !createdByUs(groups[d]) {
			continue
		}
		um := &sum.Mailboxes[i]
		if um.Error != "" || um.Keep > 0 || um.Mismatch > 0 || hasChild(exists, d) {
			continue
		}
		um.DeleteMailbox = true
		if !opts.Execute || !canDelete {
			continue
		}
		// Look again: something may have arrived while undo ran.
		mb, err := dst.Mailbox(ctx, d)
		if err != nil {
			return fmt.Errorf("reopen %q: %w", d, err)
		}
		n := mb.Info().Messages
		mb.Close()
		if n != 0 {
			um.DeleteMailbox = false
			continue
		}
		if err := deleter.DeleteMailbox(ctx, d); err != nil {
			um.Error = err.Error()
			continue
		}
		um.MailboxDeleted = true
		delete(exists, d)
		for _, r := range groups[d] {
			r.Created, r.Deleted = false, true
			if err := ledger.PutMailbox(a.ID, r.Source, r); err != nil {
				return providers.WithClass(providers.ClassRun, err)
			}
		}
	}
	return nil
}

func createdByUs(recs []checkpoint.MailboxRecord) bool {
	for _, r := range recs {
		if r.Created {
			return true
		}
	}
	return false
}

func hasChild(exists map[string]bool, name string) bool {
	for n := range exists {
		if strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}

// undoAccount logs in to the destination only, and undoes one account.
func undoAccount(ctx context.Context, a BatchAccount, ledger Ledger, bopts BatchOptions, opts UndoOptions) UndoSummary {
	start := time.Now()
	sum := UndoSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Executed: opts.Execute}
	var dst providers.Store
	err := retryLogin(ctx, a, bopts, func() (err error) {
		dst, err = a.OpenDest(ctx)
		return err
	})
	if err != nil {
		return finishUndo(sum, start, fmt.Errorf("destination: %w", err))
	}
	defer dst.Close()
	sum, _ = Undo(ctx, a, dst, ledger, opts)
	return sum
}

// UndoBatch runs Undo for each account, concurrency at a time, logging in to
// the destination only, and reports each account's start and end.
func UndoBatch(ctx context.Context, accts []BatchAccount, ledger Ledger, concurrency int, opts UndoOptions) []UndoSummary {
	bopts := BatchOptions{Options: opts.options(), LoginRetries: 5}
	return forEachAccount(ctx, accts, concurrency, func(a BatchAccount) UndoSummary {
		bopts.emit(Event{Kind: EventAccountStart, ID: a.ID})
		sum := undoAccount(ctx, a, ledger, bopts, opts)
		bopts.emit(Event{Kind: EventAccountDone, ID: a.ID, Result: &sum})
		return sum
	}, func(a BatchAccount) UndoSummary {
		return UndoSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Status: StatusInterrupted}
	})
}
