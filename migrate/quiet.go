package migrate

import (
	"context"
	"fmt"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// A re-run with nothing new is the nightly delta of a wave before cutover,
// for every account: it must cost next to nothing per mailbox. After a
// pass that left nothing to do, the ledger notes how both mailboxes stood
// (UIDVALIDITY, UIDNEXT, message count, HIGHESTMODSEQ). A later run whose
// listing (LIST-STATUS) shows both exactly so has nothing to do either: no
// message came or went (UIDNEXT and the count), no flag changed
// (HIGHESTMODSEQ, which every change raises), and the mailbox is not
// opened at all. Without HIGHESTMODSEQ a source flag change could not be
// seen, so such a mailbox is always looked at, unless flags no longer
// follow (after cutover).

// quiet returns the summary of a mailbox pair that is as the last pass
// left it, and whether it is.
func (r *accountRun) quiet(p MailboxPlan, group []MailboxPlan) (MailboxSummary, bool) {
	if !r.mayBeQuiet(p, group) {
		return MailboxSummary{}, false
	}
	rec, ok, err := r.ledger.Mailbox(r.acct.ID, p.Source.Name)
	if err != nil || !ok || rec.Dest != p.Dest || len(rec.Unsettled) > 0 {
		return MailboxSummary{}, false
	}
	if p.Source.Messages == 0 && rec.SrcValidity == 0 {
		// An empty source mailbox never copied from: nothing to copy and
		// no copy whose flags could follow (its destination is made).
		return MailboxSummary{Source: p.Source.Name, Dest: p.Dest, Created: rec.Created}, true
	}
	if rec.Quiet == nil || !p.DestExists || p.DestInfo.UIDNext == 0 {
		return MailboxSummary{}, false
	}
	q := rec.Quiet
	src, dst := stateOf(p.Source), stateOf(p.DestInfo)
	if src != q.Src || dst != q.Dst {
		return MailboxSummary{}, false
	}
	if !r.opts.NoFlagSync && (src.ModSeq == 0 || dst.ModSeq == 0) {
		return MailboxSummary{}, false
	}
	return MailboxSummary{Source: p.Source.Name, Dest: p.Dest, Created: rec.Created, Seen: q.Seen, Copied: q.Copied,
		Duplicate: q.Duplicate, Unchanged: true}, true
}

// mayBeQuiet reports whether the pair can be judged by listings: the
// source listed with its numbers, one source per destination, and no
// selection that a listing cannot see (filters, failed messages to try
// again, labels, reverse's exclusions).
func (r *accountRun) mayBeQuiet(p MailboxPlan, group []MailboxPlan) bool {
	o := &r.opts
	return len(group) == 1 && p.Source.UIDNext != 0 && p.Source.Messages >= 0 &&
		o.Select.Filter.IsZero() && o.Exclude == nil && !o.RetryFailed && len(r.labelSkip[p.Source.Name]) == 0
}

func stateOf(m providers.MailboxInfo) ledger.MailboxState {
	return ledger.MailboxState{UIDValidity: m.UIDValidity, UIDNext: m.UIDNext, Messages: m.Messages, ModSeq: m.ModSeq}
}

// forgetQuiet clears the note before a pass: whatever it finds, the pass
// notes anew, or the pair is looked at again next time.
func (r *accountRun) forgetQuiet(name string) error {
	rec, ok, err := r.ledger.Mailbox(r.acct.ID, name)
	if err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	if !ok || rec.Quiet == nil || r.opts.DryRun {
		return nil
	}
	rec.Quiet = nil
	if err := r.ledger.PutMailbox(r.acct.ID, name, rec); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}

// noteQuiet notes, after a pass that left nothing to do, how both sides
// stand: the source as listed before the pass (anything newer is seen
// next time), the destination as it is now, after the pass's own appends
// and flag changes. The notes of an account are written together when
// its mailboxes are done (writeQuiet): one commit, not one per mailbox.
// A note lost to a crash only makes the next run look at the mailbox.
func (r *accountRun) noteQuiet(ctx context.Context, p MailboxPlan, group []MailboxPlan, sum MailboxSummary) {
	st, ok := providers.As[providers.Statuser](r.acct.Dest)
	if !ok || r.opts.DryRun || !r.mayBeQuiet(p, group) || sum.Error != "" || sum.Pending > 0 || sum.Failed > 0 || sum.Altered > 0 || sum.Warn != "" {
		return
	}
	dst, err := st.Status(ctx, p.Dest)
	if err != nil || dst.UIDNext == 0 {
		return // it is looked at next time
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.quietNotes == nil {
		r.quietNotes = map[string]ledger.Quiet{}
	}
	r.quietNotes[p.Source.Name] = ledger.Quiet{Src: stateOf(p.Source), Dst: stateOf(dst), Seen: sum.Seen, Copied: sum.Copied, Duplicate: sum.Duplicate}
}

// writeQuiet writes the notes noteQuiet took, in one commit.
func (r *accountRun) writeQuiet() error {
	r.mu.Lock()
	notes := r.quietNotes
	r.quietNotes = nil
	r.mu.Unlock()
	recs := make(map[string]ledger.MailboxRecord, len(notes))
	for name, q := range notes {
		rec, ok, err := r.ledger.Mailbox(r.acct.ID, name)
		if err != nil {
			return providers.WithClass(providers.ClassRun, err)
		}
		if !ok {
			continue
		}
		rec.Quiet = &q
		recs[name] = rec
	}
	if err := r.ledger.PutMailboxes(r.acct.ID, recs); err != nil {
		return providers.WithClass(providers.ClassRun, fmt.Errorf("write checkpoint: %w", err))
	}
	return nil
}
