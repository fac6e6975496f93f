package migrate

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
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
	// Unsure counts copies undo can neither find for certain nor prove
	// gone: copies recorded under an earlier UIDVALIDITY (the mailbox was
	// renumbered or recreated since) or confirmed without a UID, where a
	// message that may be the copy is there but so is mail that may be the
	// user's, or nothing can be matched without a guess. They are kept,
	// their records left as they were, and reported.
	Unsure int `json:"unsure,omitempty"`
	// NotFound says the mailbox does not exist although the checkpoint
	// records copies in it (renamed, or deleted, by someone else): its
	// records are left as they were, so that undo, run again once the
	// mailbox is back under its name, still removes the copies.
	NotFound bool `json:"not_found,omitempty"`
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
// recorded UIDVALIDITY, still has the fingerprint of what was appended or,
// for a server that changed its size, the record's Message-ID (see
// checkAtUID); copies whose APPENDUID was unknown are found by fingerprint
// among the messages that arrived while mailferry was appending, never
// below the UIDNEXT it saw first. Where the mailbox's UIDVALIDITY changed,
// copies are found again by content, and only where no other mail could be
// taken for them (see findOld). Messages that were already there (skipped
// as duplicates), arrived later, or were put there by anyone else stay.
//
// A copy's record is marked removed only when undo removed it or it is
// proven gone; a copy that may still be there is kept and reported, and so
// is a mailbox that is not found, whose records stay as they were.
//
// Undo is resumable: each removed chunk is recorded, and on a re-run a copy
// already gone is simply recorded as gone.
func Undo(ctx context.Context, a BatchAccount, dst providers.Store, lg ledger.Ledger, opts UndoOptions) (UndoSummary, error) {
	start := time.Now()
	if opts.Chunk <= 0 {
		opts.Chunk = 500
	}
	log := opts.options()
	sum := UndoSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Executed: opts.Execute}
	groups := map[string][]ledger.MailboxRecord{}
	var intents [][]string
	err := lg.Mailboxes(a.ID, func(name string, rec ledger.MailboxRecord) error {
		if rec.Source == "" {
			rec.Source = name
		}
		if len(rec.Creating) > 0 {
			// A run crashed between a CREATE and its record: what of
			// the intent exists was made by mailferry (see
			// accountRun.settleCreate); deleteCreatedMailboxes looks
			// only at what exists.
			rec.Created, rec.Deleted = true, false
			intents = append(intents, rec.Creating[1:])
		}
		groups[rec.Dest] = append(groups[rec.Dest], rec)
		return nil
	})
	if err != nil {
		return sum, providers.WithClass(providers.ClassRun, err)
	}
	for _, parents := range intents {
		for _, parent := range parents {
			if len(groups[parent]) == 0 {
				groups[parent] = []ledger.MailboxRecord{{Source: parent, Dest: parent, Created: true}}
			}
		}
	}
	dests := make([]string, 0, len(groups))
	for d := range groups {
		dests = append(dests, d)
	}
	slices.Sort(dests)
	for _, d := range dests {
		um, err := undoMailbox(ctx, a, dst, lg, d, groups[d], opts)
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
	if err := deleteCreatedMailboxes(ctx, a, dst, lg, groups, &sum, opts); err != nil {
		return finishUndo(sum, start, err), err
	}
	if opts.Execute {
		state := ledger.AccountUndone
		if sum.failed() {
			state = ledger.AccountFailed
		}
		if err := setAccountState(lg, a, state, "", opts.Run); err != nil {
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
		if m.Error != "" || m.Mismatch > 0 || m.Unsure > 0 {
			return true
		}
	}
	return false
}

// undoRec is a ledger record with the source mailbox it belongs to.
type undoRec struct {
	src string
	ledger.Record
}

// undoMailbox handles one destination mailbox and every source mailbox
// that was copied into it.
func undoMailbox(ctx context.Context, a BatchAccount, dst providers.Store, lg ledger.Ledger, dest string, recs []ledger.MailboxRecord, opts UndoOptions) (UndoMailbox, error) {
	um := UndoMailbox{Dest: dest}
	for _, r := range recs {
		um.Sources = append(um.Sources, r.Source)
	}
	// The ledger records per source mailbox; read them all.
	var all []undoRec
	for _, r := range recs {
		if err := lg.Records(a.ID, r.Source, func(x ledger.Record) error {
			all = append(all, undoRec{r.Source, x})
			return nil
		}); err != nil {
			return um, providers.WithClass(providers.ClassRun, err)
		}
	}
	mb, err := dst.Mailbox(ctx, dest)
	if errors.Is(err, providers.ErrMailboxNotFound) {
		return missingMailbox(lg, a.ID, um, recs, all, opts)
	}
	if err != nil {
		return um, fmt.Errorf("open destination mailbox %q: %w", dest, err)
	}
	defer mb.Close()
	s := newUndoScan(mb, recs)
	if err := s.scan(ctx, all); err != nil {
		return um, err
	}
	log := opts.options().Logger
	if s.stale > 0 {
		log.Warn("undo: destination UIDVALIDITY changed since the copies were recorded; copies looked up by content",
			"account", a.SourceUser, "mailbox", dest, "uidvalidity", s.validity, "records", s.stale)
	}
	for _, r := range s.mismatch {
		log.Warn("undo: the message at a recorded UID is not the copy; kept",
			"account", a.SourceUser, "mailbox", dest, "uid", r.DstUID, "message_id", r.MessageID)
	}
	for _, r := range s.unsure {
		log.Warn("undo: a copy may still be there but cannot be told from other mail; kept",
			"account", a.SourceUser, "mailbox", dest, "recorded_uidvalidity", r.DstValidity, "message_id", r.MessageID)
	}
	um.Remove, um.Gone, um.Mismatch, um.Unsure = len(s.remove), len(s.gone), len(s.mismatch), len(s.unsure)
	um.Keep = len(s.uids) - len(s.remove)
	if !opts.Execute {
		return um, nil
	}
	return um, removeCopies(ctx, a, dst, lg, dest, s, &um, opts)
}

// missingMailbox handles a destination mailbox that does not exist. If
// undo deleted it itself, it was empty then, and its copies are gone.
// Otherwise nothing proves where they are: a user or an admin may have
// renamed the mailbox, copies and all. The records are then left as they
// are, so that undo, run again once the mailbox is back under its name,
// still finds them, and the mailbox is reported as a problem.
func missingMailbox(lg ledger.Ledger, account string, um UndoMailbox, recs []ledger.MailboxRecord, all []undoRec, opts UndoOptions) (UndoMailbox, error) {
	deleted := map[string]bool{}
	for _, r := range recs {
		deleted[r.Source] = r.Deleted
	}
	var gone []undoRec
	left := 0
	for _, r := range all {
		switch {
		case r.Status != ledger.StatusCopied && r.Status != ledger.StatusPending:
		case !deleted[r.src]:
			left++
		case r.Status == ledger.StatusCopied:
			gone = append(gone, r)
		}
	}
	um.Gone = len(gone)
	if opts.Execute {
		for src, rs := range recordsBySource(gone) {
			if err := markRemoved(lg, account, src, rs, opts.Run, "mailbox deleted by undo"); err != nil {
				return um, err
			}
		}
	}
	if left == 0 {
		return um, nil
	}
	um.NotFound = true
	return um, fmt.Errorf("destination mailbox %q: %w, yet the checkpoint records %d message(s) mailferry copied into it; "+
		"they are left as recorded (if the mailbox was renamed, rename it back and run undo again)", um.Dest, providers.ErrMailboxNotFound, left)
}

// removeCopies removes the copies the scan found, chunk by chunk, and
// records each chunk as soon as it is gone, so that an interrupted undo
// resumes where it stopped. Copies proven gone are recorded first.
func removeCopies(ctx context.Context, a BatchAccount, dst providers.Store, lg ledger.Ledger, dest string, s *undoScan, um *UndoMailbox, opts UndoOptions) error {
	for src, rs := range recordsBySource(s.gone) {
		if err := markRemoved(lg, a.ID, src, rs, opts.Run, "copy no longer on the destination"); err != nil {
			return err
		}
	}
	if len(s.remove) == 0 {
		return nil
	}
	rm, ok := providers.As[providers.Remover](dst)
	if !ok {
		return providers.WithClass(providers.ClassAccount, fmt.Errorf("destination cannot remove messages from %q", dest))
	}
	slices.SortFunc(s.remove, func(x, y undoRec) int { return cmp.Compare(x.DstUID, y.DstUID) })
	for chunk := range slices.Chunk(s.remove, opts.Chunk) {
		batch := make([]providers.UID, len(chunk))
		for i, r := range chunk {
			batch[i] = providers.UID(r.DstUID)
		}
		if err := rm.Remove(ctx, dest, s.validity, batch); err != nil {
			return err
		}
		for src, rs := range recordsBySource(chunk) {
			if err := markRemoved(lg, a.ID, src, rs, opts.Run, ""); err != nil {
				return err
			}
		}
		um.Removed += len(chunk)
		opts.options().emit(Event{Kind: EventRemoved, ID: a.ID, Mailbox: dest, Count: len(chunk)})
	}
	return nil
}

func recordsBySource(rs []undoRec) map[string][]ledger.Record {
	m := map[string][]ledger.Record{}
	for _, r := range rs {
		m[r.src] = append(m[r.src], r.Record)
	}
	return m
}

// undoScan decides, for one open destination mailbox, which of the copies
// the ledger knows are there to remove, which are proven gone, and which
// cannot be told from other mail. It changes nothing.
type undoScan struct {
	mb       providers.Mailbox
	validity uint32
	mbrecs   map[string]ledger.MailboxRecord // by source mailbox

	uids    []providers.UID                         // every message in the mailbox
	infos   map[providers.UID]providers.MessageInfo // the messages listed
	claimed map[providers.UID]bool                  // held by a record under the current UIDVALIDITY
	pool    *pool                                   // the listed messages no record holds
	byID    map[string][]providers.UID              // the same by Message-ID ("" for none), ascending
	stale   int                                     // records made under an earlier UIDVALIDITY

	remove   []undoRec // copies there; DstUID and DstValidity name the message
	gone     []undoRec // copies proven gone
	mismatch []undoRec // recorded UIDs that hold another message
	unsure   []undoRec // copies that may be there, but not provably
}

// undoSets sorts the records of a destination mailbox by how their copy
// is looked for.
type undoSets struct {
	atUID   []undoRec // copies at a UID recorded under the current UIDVALIDITY
	noUID   []undoRec // copies the server confirmed without a UID (no UIDPLUS)
	pending []undoRec // APPENDs whose outcome a crash left unknown
	// Records made under an earlier UIDVALIDITY (the mailbox was renumbered
	// or recreated since): their UIDs mean nothing now.
	oldDup, oldCopy, oldPending []undoRec
}

func newUndoScan(mb providers.Mailbox, recs []ledger.MailboxRecord) *undoScan {
	s := &undoScan{mb: mb, validity: mb.Info().UIDValidity, mbrecs: map[string]ledger.MailboxRecord{},
		infos: map[providers.UID]providers.MessageInfo{}, claimed: map[providers.UID]bool{},
		pool: newPool(), byID: map[string][]providers.UID{}}
	for _, r := range recs {
		s.mbrecs[r.Source] = r
	}
	return s
}

func (s *undoScan) scan(ctx context.Context, all []undoRec) error {
	set, err := s.load(ctx, all)
	if err != nil {
		return err
	}
	// Order matters where several records could take the same message:
	// what was there before mailferry first, then copies known to exist,
	// and APPENDs that may never have happened last.
	readAtUID := s.checkAtUID(set.atUID)
	for _, r := range set.oldDup {
		// Mail that was there before lies anywhere in the new numbering.
		s.pool.takeFingerprint(r.Fingerprint, 0)
	}
	noUID := s.findByFingerprint(set.noUID, s.bound)
	oldCopy := s.findOld(set.oldCopy)
	s.findByFingerprint(set.pending, s.bound) // one not found never arrived
	oldCopy, err = s.findByContent(ctx, readAtUID, oldCopy, set)
	if err != nil {
		return err
	}
	for _, r := range noUID {
		s.settleMissing(r, s.bound(r))
	}
	for _, r := range oldCopy {
		// Anywhere in the new numbering, even below a baseline.
		s.settleMissing(r, 0)
	}
	for _, r := range set.oldPending {
		// Its APPEND may or may not have happened before the mailbox
		// changed: a message with its fingerprint may be its copy, or the
		// user's. It is kept either way, and reported if there is one.
		if _, ok := s.pool.takeFingerprint(r.Fingerprint, s.oldBound(r)); ok {
			s.unsure = append(s.unsure, r)
		}
	}
	return nil
}

// load sorts the records and lists the messages their copies are looked
// for among.
func (s *undoScan) load(ctx context.Context, all []undoRec) (undoSets, error) {
	var set undoSets
	uids, err := s.mb.UIDs(ctx)
	if err != nil {
		return set, fmt.Errorf("list %q: %w", s.mb.Info().Name, err)
	}
	s.uids = uids
	present := make(map[providers.UID]bool, len(uids))
	for _, u := range uids {
		present[u] = true
	}
	for _, r := range all {
		s.sortRecord(r, present, &set)
	}
	s.stale = len(set.oldDup) + len(set.oldCopy) + len(set.oldPending)
	return set, s.list(ctx, set)
}

// findByContent reads the messages that only their content can tell from
// other mail: those at recorded UIDs whose fingerprint differs and that
// have no Message-ID to go by, and the candidates for old copies not found
// by fingerprint (see identityCandidates). It returns the old copies still
// not found.
func (s *undoScan) findByContent(ctx context.Context, readAtUID, oldCopy []undoRec, set undoSets) ([]undoRec, error) {
	candidates := s.identityCandidates(oldCopy, set)
	read := map[providers.UID]ledger.Record{}
	for _, r := range readAtUID {
		read[providers.UID(r.DstUID)] = r.Record
	}
	for i, cands := range candidates {
		for _, u := range cands {
			read[u] = oldCopy[i].Record
		}
	}
	same, err := readContent(ctx, s.mb, read)
	if err != nil {
		return nil, err
	}
	for _, r := range readAtUID {
		switch match, fetched := same[providers.UID(r.DstUID)]; {
		case !fetched:
			s.gone = append(s.gone, r) // expunged while we looked
		case match:
			s.remove = append(s.remove, r)
		default:
			s.mismatch = append(s.mismatch, r)
		}
	}
	return s.takeIdentity(oldCopy, candidates, same), nil
}

// sortRecord puts r into the set its copy is looked for with, and notes
// the UID it holds, if any.
func (s *undoScan) sortRecord(r undoRec, present map[providers.UID]bool, set *undoSets) {
	current := r.DstValidity == s.validity
	if current && r.Status.Settled() && r.DstUID != 0 {
		s.claimed[providers.UID(r.DstUID)] = true
	}
	switch {
	case r.DstValidity == 0:
		// Never reached this mailbox.
	case !current && r.Status == ledger.StatusDuplicate:
		set.oldDup = append(set.oldDup, r)
	case !current && r.Status == ledger.StatusCopied:
		set.oldCopy = append(set.oldCopy, r)
	case !current && r.Status == ledger.StatusPending:
		set.oldPending = append(set.oldPending, r)
	case !current:
	case r.Status == ledger.StatusCopied && r.DstUID != 0:
		if present[providers.UID(r.DstUID)] {
			set.atUID = append(set.atUID, r)
		} else {
			// Under the same UIDVALIDITY a UID is never given again: the
			// copy was expunged.
			s.gone = append(s.gone, r)
		}
	case s.bound(r) == 0:
		// No bound to tell a copy from older mail.
	case r.Status == ledger.StatusCopied:
		set.noUID = append(set.noUID, r)
	case r.Status == ledger.StatusPending:
		set.pending = append(set.pending, r)
	}
}

// bound is the lowest UID a copy of r, a record of the current
// UIDVALIDITY, can have: the UIDNEXT recorded before its batch was sent,
// and never below the mailbox's baseline (everything below it was there
// before mailferry).
func (s *undoScan) bound(r undoRec) uint32 {
	if r.DstUIDNext == 0 {
		return 0
	}
	b := r.DstUIDNext
	if mr := s.mbrecs[r.src]; mr.DstValidity == s.validity {
		b = max(b, mr.DstBaseline)
	}
	return b
}

// oldBound is the lowest UID a copy recorded under an earlier UIDVALIDITY
// is looked for at. The old numbering says nothing about the new one, so
// there is none, unless migrate has seen the new UIDVALIDITY and recorded
// a baseline under it: then only messages at or above it are considered,
// which is conservative (renumbered copies lie below it and are reported
// rather than removed).
func (s *undoScan) oldBound(r undoRec) uint32 {
	if mr := s.mbrecs[r.src]; mr.DstValidity == s.validity {
		return mr.DstBaseline
	}
	return 0
}

// list reads the keys of the messages undo needs: those at recorded UIDs
// and, when a copy must be found by content, every message no record holds
// from the lowest UID such a copy can have.
func (s *undoScan) list(ctx context.Context, set undoSets) error {
	look := map[providers.UID]bool{}
	for _, r := range set.atUID {
		look[providers.UID(r.DstUID)] = true
	}
	low, find := uint32(0), len(set.oldCopy)+len(set.oldPending) > 0
	if !find {
		for _, r := range slices.Concat(set.noUID, set.pending) {
			if b := s.bound(r); !find || b < low {
				low, find = b, true
			}
		}
	}
	for _, u := range s.uids {
		if find && uint32(u) >= low && !s.claimed[u] {
			look[u] = true
		}
	}
	if len(look) == 0 {
		return nil
	}
	list := make([]providers.UID, 0, len(look))
	for u := range look {
		list = append(list, u)
	}
	slices.Sort(list)
	if err := s.mb.List(ctx, list, func(m providers.MessageInfo) error {
		s.infos[m.UID] = m
		if !s.claimed[m.UID] {
			s.pool.add(m)
			s.byID[m.Key.MessageID] = append(s.byID[m.Key.MessageID], m.UID)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read %q: %w", s.mb.Info().Name, err)
	}
	return nil
}

// checkAtUID checks the copies at UIDs recorded under the current
// UIDVALIDITY. Under one UIDVALIDITY a UID names one message for good, and
// a copied record's UID is the one the server gave for mailferry's APPEND
// (or where migrate found that very copy by content), so the message there
// is the copy unless the server broke that rule. Its content is the guard
// against that: the fingerprint, or, since a server may change the size of
// what it stores (line ends made CRLF, a header added), the record's
// Message-ID. A copy without a Message-ID whose fingerprint differs must
// have its content read; those are returned.
func (s *undoScan) checkAtUID(recs []undoRec) (read []undoRec) {
	for _, r := range recs {
		m, ok := s.infos[providers.UID(r.DstUID)]
		switch {
		case !ok:
			s.gone = append(s.gone, r) // expunged while we looked
		case m.Key.Fingerprint == r.Fingerprint, r.MessageID != "" && m.Key.MessageID == r.MessageID:
			s.remove = append(s.remove, r)
		case r.MessageID == "" && m.Key.MessageID == "":
			read = append(read, r)
		default:
			s.mismatch = append(s.mismatch, r)
		}
	}
	return read
}

// findByFingerprint takes, for each record, the lowest message no record
// holds with its fingerprint at or above its bound, and returns the
// records that found none.
func (s *undoScan) findByFingerprint(recs []undoRec, bound func(undoRec) uint32) (left []undoRec) {
	slices.SortFunc(recs, compareUndoRecs)
	for _, r := range recs {
		if u, ok := s.pool.takeFingerprint(r.Fingerprint, bound(r)); ok {
			r.DstUID = uint32(u)
			s.remove = append(s.remove, r)
		} else {
			left = append(left, r)
		}
	}
	return left
}

// findOld finds by fingerprint the copies recorded under an earlier
// UIDVALIDITY. A copy is taken only while the mailbox holds no more
// unclaimed messages with its fingerprint than there are such copies left
// to find: one more is a message no record accounts for (filed, copied or
// restored by someone else), and which of the identical messages is
// mailferry's is then a guess, so none of them is removed and the copies
// are reported. It returns the copies that found no message.
func (s *undoScan) findOld(recs []undoRec) (left []undoRec) {
	want := map[providers.Fingerprint]int{}
	for _, r := range recs {
		want[r.Fingerprint]++
	}
	slices.SortFunc(recs, compareUndoRecs)
	for _, r := range recs {
		from := s.oldBound(r)
		if available(s.pool, r.Fingerprint, from) > want[r.Fingerprint] {
			s.unsure = append(s.unsure, r)
			continue
		}
		want[r.Fingerprint]--
		if u, ok := s.pool.takeFingerprint(r.Fingerprint, from); ok {
			r.DstUID, r.DstValidity = uint32(u), s.validity
			s.remove = append(s.remove, r)
		} else {
			left = append(left, r)
		}
	}
	return left
}

// available counts the messages in p no record has taken with fingerprint
// fp and a UID of at least from.
func available(p *pool, fp providers.Fingerprint, from uint32) int {
	n := 0
	for _, u := range p.byFP[fp] {
		if uint32(u) >= from && !p.taken[u] {
			n++
		}
	}
	return n
}

// identityCandidates lists, for each old copy not found by fingerprint,
// the messages whose content is to be read to find it as migrate finds a
// copy whose size changed: by its Message-ID and the rest of its content.
// Like migrate, it only tries when the match cannot be a guess: the copy
// has a Message-ID that no other record that may still own a message
// (copies and duplicates not at a known UID, pending ones) uses.
func (s *undoScan) identityCandidates(oldCopy []undoRec, set undoSets) [][]providers.UID {
	users := map[string]int{}
	for _, r := range slices.Concat(set.oldDup, set.oldCopy, set.oldPending, set.noUID, set.pending) {
		users[r.MessageID]++
	}
	out := make([][]providers.UID, len(oldCopy))
	for i, r := range oldCopy {
		if r.MessageID == "" || users[r.MessageID] != 1 {
			continue
		}
		from := s.oldBound(r)
		for _, u := range s.byID[r.MessageID] {
			if uint32(u) >= from && !s.pool.taken[u] {
				out[i] = append(out[i], u)
			}
		}
	}
	return out
}

// takeIdentity takes for each old copy the one candidate that is, by
// content, the copy it made. Several such candidates are a guess: the copy
// is reported instead. It returns the copies still not found.
func (s *undoScan) takeIdentity(oldCopy []undoRec, candidates [][]providers.UID, same map[providers.UID]bool) (left []undoRec) {
	for i, r := range oldCopy {
		var hits []providers.UID
		for _, u := range candidates[i] {
			if same[u] {
				hits = append(hits, u)
			}
		}
		switch len(hits) {
		case 0:
			left = append(left, r)
		case 1:
			s.pool.claim(hits[0])
			r.DstUID, r.DstValidity = uint32(hits[0]), s.validity
			s.remove = append(s.remove, r)
		default:
			s.unsure = append(s.unsure, r)
		}
	}
	return left
}

// settleMissing files a copy that was looked for and not found: as gone
// when no message at or above from that no record holds could be it (none
// has its Message-ID; for a copy without one, none lacks a Message-ID),
// else as unsure. The fingerprint covers the Message-ID, so a copy still
// there with its bytes changed (line ends, an added header, MIME rewritten
// by the server) keeps its Message-ID and is never taken for gone.
func (s *undoScan) settleMissing(r undoRec, from uint32) {
	for _, u := range s.byID[r.MessageID] {
		if uint32(u) >= from && !s.pool.taken[u] {
			s.unsure = append(s.unsure, r)
			return
		}
	}
	s.gone = append(s.gone, r)
}

func compareUndoRecs(x, y undoRec) int {
	if c := cmp.Compare(x.src, y.src); c != 0 {
		return c
	}
	return compareKeys(x.RecordKey, y.RecordKey)
}

// contentPrefix bounds what undo reads of a message to check it by
// content: room for a large header block and for the fingerprint's body
// prefix even with every line end doubled. Memory stays bounded whatever
// the message size.
const contentPrefix = 256<<10 + 2*providers.KeyBodyPrefix

// readContent reads the start of each message in read and reports, for
// each it could read, whether it is by content the copy its record made
// (see sameContent). Messages expunged meanwhile are left out.
func readContent(ctx context.Context, mb providers.Mailbox, read map[providers.UID]ledger.Record) (map[providers.UID]bool, error) {
	same := map[providers.UID]bool{}
	if len(read) == 0 {
		return same, nil
	}
	uids := make([]providers.UID, 0, len(read))
	for u := range read {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	buf := make([]byte, contentPrefix)
	err := mb.Fetch(ctx, uids, func(u providers.UID, size int64, body io.Reader) error {
		rec, ok := read[u]
		if !ok {
			return nil
		}
		n, err := io.ReadFull(body, buf[:min(size, int64(len(buf)))])
		if err != nil {
			return fmt.Errorf("read message %d: %w", u, err)
		}
		same[u] = sameContent(buf[:n], int64(n) == size, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", mb.Info().Name, err)
	}
	return same, nil
}

// sameContent reports whether raw, the start of a destination message (all
// of it when whole), is the message rec recorded with only its size
// changed: whether its key fields and the start of its body, taken with the
// size the record keeps, give the recorded fingerprint. That is the test
// the loose fingerprint stands for, done with what the record keeps (it has
// no loose fingerprint), and exact where the loose fingerprint is not: a
// server that turns bare LFs into CRLF puts more than the source's first
// 1,024 body bytes into the destination's first 1,024. So the body's start
// is tried as it is (a header field was added) and with the CRs removed
// before it is cut (line ends were changed).
func sameContent(raw []byte, whole bool, rec ledger.Record) bool {
	header, body := providers.SplitMessage(raw)
	if body == nil && !whole {
		return false // the header block does not end within what was read
	}
	for _, b := range [][]byte{body, bytes.ReplaceAll(body, []byte{'\r'}, nil)} {
		if providers.NewKey(header, b, rec.Size).Fingerprint == rec.Fingerprint {
			return true
		}
	}
	return false
}

func markRemoved(lg ledger.Ledger, account, src string, recs []ledger.Record, run uint32, reason string) error {
	for i := range recs {
		if err := setStatus(&recs[i], ledger.StatusRemoved); err != nil {
			return err
		}
		recs[i].Run, recs[i].Reason = run, reason
	}
	if err := lg.PutRecords(account, src, recs); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}

// deleteCreatedMailboxes removes, deepest first, the mailboxes mailferry
// created that are now empty and have no child left. In a dry run it marks
// those that would be deleted.
func deleteCreatedMailboxes(ctx context.Context, a BatchAccount, dst providers.Store, lg ledger.Ledger, groups map[string][]ledger.MailboxRecord, sum *UndoSummary, opts UndoOptions) error {
	deleter, canDelete := providers.As[providers.MailboxDeleter](dst)
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
		if um.Error != "" || um.Keep > 0 || um.Mismatch > 0 || um.Unsure > 0 || hasChild(exists, d) {
			continue
		}
		um.DeleteMailbox = true
		if !opts.Execute || !canDelete {
			if !opts.Execute {
				delete(exists, d) // so that a dry run shows its parent go too
			}
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
			r.Created, r.Deleted, r.Creating = false, true, nil
			if err := lg.PutMailbox(a.ID, r.Source, r); err != nil {
				return providers.WithClass(providers.ClassRun, err)
			}
		}
	}
	return nil
}

func createdByUs(recs []ledger.MailboxRecord) bool {
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
func undoAccount(ctx context.Context, a BatchAccount, lg ledger.Ledger, bopts BatchOptions, opts UndoOptions) UndoSummary {
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
	sum, _ = Undo(ctx, a, dst, lg, opts)
	return sum
}

// UndoBatch runs Undo for each account, concurrency at a time, logging in to
// the destination only, and reports each account's start and end.
func UndoBatch(ctx context.Context, accts []BatchAccount, lg ledger.Ledger, concurrency int, opts UndoOptions) []UndoSummary {
	bopts := BatchOptions{Options: opts.options(), LoginRetries: 5}
	return forEachAccount(ctx, accts, concurrency, func(a BatchAccount) UndoSummary {
		bopts.emit(Event{Kind: EventAccountStart, ID: a.ID})
		sum := undoAccount(ctx, a, lg, bopts, opts)
		bopts.emit(Event{Kind: EventAccountDone, ID: a.ID, Result: &sum})
		return sum
	}, func(a BatchAccount) UndoSummary {
		return UndoSummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Status: StatusInterrupted}
	})
}
