package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// Account is one account pair, both sides already logged in.
type Account struct {
	ID         string // ledger key, see ledger.AccountID
	SourceUser string
	DestUser   string
	Source     providers.Store
	Dest       providers.Store
}

type accountRun struct {
	acct   Account
	ledger ledger.Ledger
	opts   Options
	// labelSkip holds, per source mailbox, the UIDs another mailbox
	// copies (see LabelPolicy).
	labelSkip map[string]map[providers.UID]bool
	// dstNames are the destination's mailboxes as planning found them,
	// with those created since; planned maps each planned source mailbox
	// to its destination; implicit holds the parents a server created by
	// itself for a CREATE of mailferry's (see noteParents).
	dstNames map[string]bool
	planned  map[string]string
	implicit map[string]bool
	// noselectParents: the server has shown it makes \Noselect parents,
	// so no listing is needed after a CREATE to find real ones.
	noselectParents bool

	mu sync.Mutex // guards quietNotes: mailboxes are copied side by side
	// quietNotes are the notes of mailboxes a pass left with nothing to
	// do, written when the account's mailboxes are done (see noteQuiet).
	quietNotes map[string]ledger.Quiet
}

// Migrate copies every selectable mailbox of an account pair. Mailbox
// failures are recorded in the summary and the other mailboxes go on; the
// returned error is non-nil only when the whole account (or run) had to
// stop, and its class says which.
//
// The source is only ever read: it is used through providers.ReadOnly, so
// that a write to it fails instead of happening. In a dry run the
// destination is used through providers.DryRun, which turns every write
// away, and the ledger through DryRun, which drops them: nothing can be
// changed, whatever path the copier takes.
func Migrate(ctx context.Context, acct Account, lg ledger.Ledger, opts Options) (AccountSummary, error) {
	start := time.Now()
	acct.Source = providers.ReadOnly(acct.Source)
	if opts.DryRun {
		acct.Dest, lg = providers.DryRun(acct.Dest), DryRun(lg)
	}
	r := &accountRun{acct: acct, ledger: lg, opts: opts.withDefaults()}
	sum := AccountSummary{Account: acct.ID, Source: acct.SourceUser, Dest: acct.DestUser}
	err := r.migrate(ctx, &sum)
	sum.Duration = time.Since(start)
	if err != nil {
		sum.Error, sum.Class = err.Error(), classString(err)
	}
	sum.Status = okOrWarn(&sum)
	// A dry run leaves everything pending by design; only errors fail it.
	if !sum.OK() && !(r.opts.DryRun && !sum.hasErrors()) {
		sum.Status = StatusFailed
	}
	if ctx.Err() != nil {
		// Stopped, not failed: the account stays "copying" in the ledger,
		// so that the same command carries on with it (a failed account
		// is skipped by batches until --retry-failed).
		sum.Status = StatusInterrupted
		return sum, err
	}
	if !r.opts.DryRun {
		state, reason := ledger.AccountCopied, ""
		switch {
		case !sum.OK():
			state, reason = ledger.AccountFailed, firstProblem(&sum)
		case sum.Status == StatusWarn:
			state, reason = ledger.AccountWarn, firstWarn(&sum)
		}
		if perr := r.setState(state, reason); perr != nil && err == nil {
			// The copy may be whole, but the checkpoint does not say so:
			// the account is not done, and the run must stop (RunError).
			err = perr
			sum.Error, sum.Class, sum.Status = err.Error(), classString(err), StatusFailed
		}
	}
	return sum, err
}

func (r *accountRun) setState(state, reason string) error {
	return setAccountState(r.ledger, BatchAccount{ID: r.acct.ID, SourceUser: r.acct.SourceUser, DestUser: r.acct.DestUser}, state, reason, r.opts.Run)
}

func (r *accountRun) migrate(ctx context.Context, sum *AccountSummary) error {
	if acc, _, err := r.ledger.Account(r.acct.ID); err == nil && !acc.Cutover.IsZero() {
		// Users work on the destination now: its flags are theirs.
		r.opts.NoFlagSync = true
	}
	if !r.opts.DryRun {
		if err := r.setState(ledger.AccountCopying, ""); err != nil {
			return err
		}
	}
	plans, err := r.plan(ctx, sum)
	if err != nil {
		return err
	}
	if r.labelSkip, err = r.labelSkips(ctx, plans); err != nil {
		return err
	}
	groups := destGroups(plans)
	results := make([][]MailboxSummary, len(groups))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(mailboxWorkers(plans, r.opts.MailboxWorkers))
	for i, group := range groups {
		g.Go(func() error {
			for _, p := range group {
				ms, err := r.copyMailbox(gctx, p, group)
				if err != nil && ms.Error == "" {
					ms.Error, ms.Class = err.Error(), classString(err)
				}
				if d := r.doubts(p); d != "" {
					ms.Warn = strings.Join(slices.DeleteFunc([]string{d, ms.Warn}, func(w string) bool { return w == "" }), "; ")
				}
				results[i] = append(results[i], ms)
				r.opts.emit(Event{Kind: EventMailboxDone, ID: r.acct.ID, Mailbox: p.Source.Name, Summary: &ms, Err: err})
				if err != nil {
					r.opts.Logger.Error("mailbox failed", "account", r.acct.ID, "mailbox", p.Source.Name, "err", err)
					if stopsAccount(err) {
						return err
					}
				}
			}
			return nil
		})
	}
	err = g.Wait()
	for _, res := range results {
		sum.Mailboxes = append(sum.Mailboxes, res...)
	}
	if qerr := r.writeQuiet(); err == nil {
		err = qerr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// messagesPerWorker is the work that earns a mailbox worker of its own.
const messagesPerWorker = 1000

// mailboxWorkers is how many mailboxes of an account are copied at once:
// up to max, but one per messagesPerWorker messages the listing shows.
// Each worker holds connections of its own on both sides, and a login
// costs a server more than a small mailbox does: an ordinary account of a
// few hundred messages goes best on one connection per side, its
// mailboxes one after another, with many accounts at once.
func mailboxWorkers(plans []MailboxPlan, max int) int {
	total := 0
	for _, p := range plans {
		if p.Source.Messages < 0 {
			return max // not listed: no way to tell
		}
		total += p.Source.Messages
	}
	return min(max, 1+total/messagesPerWorker)
}

// stopsAccount reports whether err ends the account rather than a mailbox.
func stopsAccount(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	c := providers.ClassOf(err)
	return c == providers.ClassAccount || c == providers.ClassRun
}

// plan lists both sides, maps the mailboxes, and creates and subscribes the
// destination mailboxes that are missing.
func (r *accountRun) plan(ctx context.Context, sum *AccountSummary) (_ []MailboxPlan, err error) {
	// Both sides at once: on a re-run with nothing new, the listings (and
	// the logins before them) are most of an account's time.
	var srcBoxes, dstBoxes []providers.MailboxInfo
	var srcErr, dstErr error
	var wg sync.WaitGroup
	wg.Go(func() { dstBoxes, dstErr = r.acct.Dest.Mailboxes(ctx) })
	srcBoxes, srcErr = r.acct.Source.Mailboxes(ctx)
	wg.Wait()
	if srcErr != nil {
		return nil, fmt.Errorf("list source mailboxes: %w", srcErr)
	}
	if dstErr != nil {
		return nil, fmt.Errorf("list destination mailboxes: %w", dstErr)
	}
	known := map[string]ledger.MailboxRecord{}
	if err := r.ledger.Mailboxes(r.acct.ID, func(name string, rec ledger.MailboxRecord) error {
		known[name] = rec
		return nil
	}); err != nil {
		return nil, providers.WithClass(providers.ClassRun, err)
	}
	plans, skipped := planMailboxes(srcBoxes, dstBoxes, known, r.opts.Names, r.opts.Select, r.opts.Labels)
	sum.Skipped = skipped
	if r.opts.DryRun {
		return plans, nil
	}
	if err := r.noteDestinations(ctx, dstBoxes); err != nil {
		return nil, err
	}
	r.dstNames, r.planned, r.implicit = map[string]bool{}, map[string]string{}, map[string]bool{}
	for _, b := range dstBoxes {
		r.dstNames[b.Name] = true
	}
	for _, p := range plans {
		r.planned[p.Source.Name] = p.Dest
	}
	out := plans[:0]
	// The records prepareDest settles are written together: those of new
	// mailboxes are backed by their CREATE intents meanwhile.
	settled := map[string]ledger.MailboxRecord{}
	defer func() {
		if werr := r.ledger.PutMailboxes(r.acct.ID, settled); werr != nil && err == nil {
			err = providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", werr))
		}
	}()
	for _, p := range plans {
		if err := r.prepareDest(ctx, &p, known, settled); err != nil {
			if stopsAccount(err) {
				return nil, err
			}
			r.opts.Logger.Error("cannot prepare destination mailbox", "account", r.acct.ID, "mailbox", p.Source.Name, "dest", p.Dest, "err", err)
			sum.Mailboxes = append(sum.Mailboxes, MailboxSummary{Source: p.Source.Name, Dest: p.Dest,
				Seen: max(p.Source.Messages, 0), Pending: max(p.Source.Messages, 0), Error: err.Error(), Class: classString(err)})
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// noteDestinations records the first sight of every destination mailbox,
// those the migration writes to and those it never touches (a cloud-only
// folder), so that reverse knows what was there before mailferry.
func (r *accountRun) noteDestinations(ctx context.Context, boxes []providers.MailboxInfo) error {
	known := map[string]bool{}
	if err := r.ledger.DestMailboxes(r.acct.ID, func(name string, _ ledger.DestMailbox) error {
		known[name] = true
		return nil
	}); err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	seen := map[string]ledger.DestMailbox{}
	for _, b := range boxes {
		if known[b.Name] {
			continue
		}
		if b.UIDValidity == 0 || b.UIDNext == 0 {
			mb, err := r.acct.Dest.Mailbox(ctx, b.Name)
			if err != nil {
				if stopsAccount(err) {
					return err
				}
				r.opts.Logger.Warn("cannot open destination mailbox to note what it holds", "account", r.acct.ID, "mailbox", b.Name, "err", err)
				continue
			}
			info := mb.Info()
			mb.Close()
			b.UIDValidity, b.UIDNext = info.UIDValidity, info.UIDNext
		}
		seen[b.Name] = ledger.DestMailbox{UIDValidity: b.UIDValidity, UIDNext: b.UIDNext, Seen: time.Now().UTC()}
	}
	if err := r.ledger.PutDestMailboxes(r.acct.ID, seen); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}

// prepareDest creates the destination mailbox if needed, recording that
// mailferry created it, and carries the subscription over. The CREATE is
// preceded by a committed intent (MailboxRecord.Creating), so that a crash
// before Created is committed still leaves the evidence that the mailbox,
// and the parents the server made with it, are mailferry's: the next run
// settles the intent (settleCreate), as it settles pending APPENDs. The
// settled record goes into settled, for plan to write with the others.
func (r *accountRun) prepareDest(ctx context.Context, p *MailboxPlan, known, settled map[string]ledger.MailboxRecord) error {
	old, seen := known[p.Source.Name]
	recorded := seen // a record before this run's intent, if any
	rec := old
	rec.Source, rec.Dest, rec.Role = p.Source.Name, p.Dest, p.Role
	if len(old.Creating) > 0 {
		if err := r.settleCreate(&rec, known); err != nil {
			return err
		}
	}
	if p.DestExists && r.implicit[p.Dest] && !rec.Created {
		// A settled intent of another mailbox says the server made it.
		rec.Created, rec.Deleted = true, false
	}
	if !p.DestExists {
		intent := rec
		intent.Creating = append([]string{p.Dest}, r.missingParents(p.Dest)...)
		if err := r.ledger.PutMailbox(r.acct.ID, p.Source.Name, intent); err != nil {
			return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
		}
		old, seen = intent, true
		known[p.Source.Name] = intent
		err := r.acct.Dest.CreateMailbox(ctx, p.Dest, p.Role)
		switch {
		case err == nil:
			r.opts.emit(Event{Kind: EventMailboxCreated, ID: r.acct.ID, Mailbox: p.Source.Name})
			rec.Created, rec.Deleted = true, false
			if err := r.noteParents(ctx, p.Dest, known); err != nil {
				return err
			}
		case errors.Is(err, providers.ErrMailboxExists) && r.implicit[p.Dest]:
			// The server made it for an earlier CREATE of ours.
			rec.Created, rec.Deleted = true, false
		case errors.Is(err, providers.ErrMailboxExists):
		default:
			// Refused: nothing was made, and the intent must not claim a
			// mailbox someone else makes there later. The ledger is left
			// as it was before the intent.
			var perr error
			if recorded {
				rec.Creating = nil
				perr = r.ledger.PutMailbox(r.acct.ID, p.Source.Name, rec)
				known[p.Source.Name] = rec
			} else {
				perr = r.ledger.ForgetMailbox(r.acct.ID, p.Source.Name)
				delete(known, p.Source.Name)
			}
			if perr != nil {
				return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", perr))
			}
			return fmt.Errorf("create destination mailbox %q: %w", p.Dest, err)
		}
		p.DestExists = true
	}
	rec.Creating = nil // done, or settled
	// Only what this function sets can differ from what was recorded.
	if !seen || rec.Source != old.Source || rec.Dest != old.Dest || rec.Role != old.Role || rec.Created != old.Created ||
		rec.Deleted != old.Deleted || len(old.Creating) > 0 {
		settled[p.Source.Name] = rec
		known[p.Source.Name] = rec
	}
	// Subscribed already, as the listing says: nothing to do each run.
	if sub, ok := providers.As[providers.Subscriber](r.acct.Dest); ok && p.Source.Subscribed && !p.DestInfo.Subscribed {
		if err := sub.Subscribe(ctx, p.Dest); err != nil {
			r.opts.Logger.Warn("cannot subscribe", "account", r.acct.ID, "mailbox", p.Dest, "err", err)
		}
	}
	return nil
}

// missingParents are the parents of destination mailbox name that are not
// on the destination (as planning found it, with what was created since).
func (r *accountRun) missingParents(name string) []string {
	var missing []string
	for i := range len(name) {
		if name[i] == '/' && !r.dstNames[name[:i]] {
			missing = append(missing, name[:i])
		}
	}
	return missing
}

// settleCreate settles the CREATE intent a crashed run left in rec: every
// name of it that the destination now has was not there when the intent
// was written, so mailferry's CREATE made it. The mailbox itself is then
// Created; its parents are recorded as noteParents records them. What is
// not there was never made (the CREATE was not sent, or failed): the
// mailbox is created now, as if for the first time.
func (r *accountRun) settleCreate(rec *ledger.MailboxRecord, known map[string]ledger.MailboxRecord) error {
	intent := rec.Creating
	r.opts.Logger.Info("settling the CREATE a crashed run had begun", "account", r.acct.ID, "mailbox", intent[0])
	if r.dstNames[intent[0]] {
		rec.Created, rec.Deleted = true, false
	}
	for _, parent := range intent[1:] {
		if !r.dstNames[parent] {
			continue // never made, or a \Noselect parent (no mailbox to remove)
		}
		r.implicit[parent] = true
		if err := r.recordParent(parent, known); err != nil {
			return err
		}
	}
	return nil
}

// noteParents records as mailferry's the parents of a mailbox it created
// that the server created by itself: asked for Projects/Alpha/Specs, a
// server without \Noselect parents (Cyrus, Exchange, Gmail) makes Projects
// and Projects/Alpha real mailboxes, which undo must remove too once they
// are empty. A parent that is a planned source mailbox's destination is
// marked when its turn comes (prepareDest); one that is not gets a record
// of its own, under its destination name.
func (r *accountRun) noteParents(ctx context.Context, name string, known map[string]ledger.MailboxRecord) error {
	missing := r.missingParents(name)
	r.dstNames[name] = true
	if len(missing) == 0 || r.noselectParents {
		return nil
	}
	boxes, err := r.acct.Dest.Mailboxes(ctx)
	if err != nil {
		if stopsAccount(err) {
			return err
		}
		// Unknown: left unrecorded, undo keeps them.
		r.opts.Logger.Warn("cannot list the destination to see which parents CREATE made", "account", r.acct.ID, "mailbox", name, "err", err)
		return nil
	}
	now := map[string]bool{}
	for _, b := range boxes {
		now[b.Name] = true
	}
	r.noselectParents = true
	for _, parent := range missing {
		if !now[parent] {
			continue // a \Noselect parent (Dovecot): no mailbox to remove
		}
		r.noselectParents = false
		r.dstNames[parent], r.implicit[parent] = true, true
		if err := r.recordParent(parent, known); err != nil {
			return err
		}
	}
	return nil
}

// recordParent records parent, a mailbox the server made for a CREATE of
// mailferry's, as mailferry's. One that is a planned source mailbox's
// destination is marked when its turn comes (prepareDest, through
// implicit); one that is not gets a record of its own, under its
// destination name.
func (r *accountRun) recordParent(parent string, known map[string]ledger.MailboxRecord) error {
	if dest, isSource := r.planned[parent]; isSource {
		if dest != parent {
			r.opts.Logger.Warn("the server created a parent mailbox that a source mailbox of the same name does not go to; undo keeps it",
				"account", r.acct.ID, "mailbox", parent)
		}
		return nil
	}
	if _, ok := known[parent]; ok {
		return nil
	}
	rec := ledger.MailboxRecord{Source: parent, Dest: parent, Created: true}
	if err := r.ledger.PutMailbox(r.acct.ID, parent, rec); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	known[parent] = rec
	return nil
}

// doubts says why the message count of a mailbox pair is in doubt, as
// the stores that read files judge it (providers.Doubter), "" when it is
// not.
func (r *accountRun) doubts(p MailboxPlan) string {
	var all []string
	for _, side := range []struct {
		name, mailbox string
		st            providers.Store
	}{{"source", p.Source.Name, r.acct.Source}, {"destination", p.Dest, r.acct.Dest}} {
		if d, ok := providers.As[providers.Doubter](side.st); ok {
			for _, s := range d.Doubts(side.mailbox) {
				all = append(all, side.name+": "+s)
			}
		}
	}
	switch len(all) {
	case 0:
		return ""
	case 1:
		return "message count in doubt: " + all[0]
	}
	return fmt.Sprintf("message count in doubt: %s (and %d more reason(s) in the warnings)", all[0], len(all)-1)
}

// okOrWarn is the status of an account whose messages all settled: warn
// if a mailbox's message count is in doubt.
func okOrWarn(sum *AccountSummary) string {
	if firstWarn(sum) != "" {
		return StatusWarn
	}
	return StatusOK
}

func firstWarn(sum *AccountSummary) string {
	for _, m := range sum.Mailboxes {
		if m.Warn != "" {
			return fmt.Sprintf("mailbox %q: %s", m.Source, m.Warn)
		}
	}
	return ""
}

func firstProblem(sum *AccountSummary) string {
	if sum.Error != "" {
		return sum.Error
	}
	for _, m := range sum.Mailboxes {
		switch {
		case m.Error != "":
			return fmt.Sprintf("mailbox %q: %s", m.Source, m.Error)
		case m.Failed > 0:
			return fmt.Sprintf("mailbox %q: %d message(s) refused", m.Source, m.Failed)
		case m.Pending > 0:
			return fmt.Sprintf("mailbox %q: %d message(s) not settled", m.Source, m.Pending)
		}
	}
	return ""
}
