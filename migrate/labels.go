package migrate

import (
	"context"
	"fmt"
	"slices"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// LabelPolicy handles a source where one message shows in several
// mailboxes: Gmail's labels are folders over IMAP, a message with two
// labels is in both, and "[Gmail]/All Mail" (\All) holds every message,
// including the archived ones that are in no other folder. The zero
// policy copies every mailbox as it is and leaves \All out.
type LabelPolicy struct {
	// Once copies a message that shows in several source mailboxes into
	// the first of them only (INBOX, then special-use mailboxes, then by
	// name), or wherever an earlier run copied it. Otherwise each label
	// folder gets its own copy.
	Once bool
	// AllMail says what becomes of the \All mailbox.
	AllMail AllMailMode
	// SkipViews leaves out the \Flagged and \Important mailboxes (Gmail's
	// Starred and Important), views of mail held elsewhere: the \Flagged
	// flag travels with each message.
	SkipViews bool
}

// AllMailMode says what is copied from a \All mailbox.
type AllMailMode int

const (
	// AllMailSkip leaves \All out: on most servers it is a virtual view.
	AllMailSkip AllMailMode = iota
	// AllMailArchived copies only the messages of \All that are in no
	// other copied mailbox (Gmail's archived mail), to the destination's
	// \All, else its \Archive, else a new "Archive".
	AllMailArchived
	// AllMailEvery copies \All like any other mailbox.
	AllMailEvery
)

func (p LabelPolicy) claims() bool { return p.Once || p.AllMail == AllMailArchived }

// labelSkips decides which mailbox copies a message found in several, by
// its fingerprint: the mailbox whose ledger already records it, else the
// first in plan order that holds it. It returns, per source mailbox, the
// UIDs another mailbox copies. With Once unset, only \All in archived
// mode gives anything up.
func (r *accountRun) labelSkips(ctx context.Context, plans []MailboxPlan) (map[string]map[providers.UID]bool, error) {
	pol := r.opts.Labels
	if !pol.claims() {
		return nil, nil
	}
	owner := map[providers.Fingerprint]string{}
	settled := map[string]map[ledger.RecordKey]bool{} // per mailbox, messages with a record
	for _, p := range plans {
		name := p.Source.Name
		settled[name] = map[ledger.RecordKey]bool{}
		err := r.ledger.Records(r.acct.ID, name, func(rec ledger.Record) error {
			if rec.Status == ledger.StatusRemoved {
				return nil
			}
			settled[name][rec.RecordKey] = true
			if _, ok := owner[rec.Fingerprint]; !ok {
				owner[rec.Fingerprint] = name
			}
			return nil
		})
		if err != nil {
			return nil, providers.WithClass(providers.ClassRun, fmt.Errorf("read checkpoint: %w", err))
		}
	}
	skips := map[string]map[providers.UID]bool{}
	for _, p := range plans {
		name := p.Source.Name
		gives := pol.givesUp(p.Source)
		err := r.eachUnsettled(ctx, name, settled[name], func(m providers.MessageInfo) {
			fp := m.Key.Fingerprint
			switch o, ok := owner[fp]; {
			case !ok:
				owner[fp] = name
			case o != name && gives:
				if skips[name] == nil {
					skips[name] = map[providers.UID]bool{}
				}
				skips[name][m.UID] = true
			}
		})
		if err != nil {
			if stopsAccount(err) {
				return nil, err
			}
			// Its copier will meet the same trouble and report it; other
			// mailboxes may then hold a copy too, which loses nothing.
			r.opts.Logger.Warn("cannot list mailbox to sort out labels", "account", r.acct.ID, "mailbox", name, "err", err)
		}
	}
	return skips, nil
}

// eachUnsettled lists the messages of a source mailbox that have no
// ledger record, within the selection's filter.
func (r *accountRun) eachUnsettled(ctx context.Context, name string, settled map[ledger.RecordKey]bool, fn func(providers.MessageInfo)) error {
	mb, err := r.acct.Source.Mailbox(ctx, name)
	if err != nil {
		return fmt.Errorf("open source mailbox %q: %w", name, err)
	}
	defer mb.Close()
	uids, err := providers.Select(ctx, mb, r.opts.Select.Filter)
	if err != nil {
		return fmt.Errorf("list source mailbox %q: %w", name, err)
	}
	validity := mb.Info().UIDValidity
	var todo []providers.UID
	for _, u := range uids {
		if !settled[ledger.RecordKey{SrcValidity: validity, SrcUID: uint32(u)}] {
			todo = append(todo, u)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := mb.List(ctx, todo, func(m providers.MessageInfo) error {
		fn(m)
		return nil
	}); err != nil {
		return fmt.Errorf("read source mailbox %q: %w", name, err)
	}
	return nil
}

// givesUp reports whether b leaves a message another mailbox also holds
// to that mailbox: every mailbox with Once, and \All in archived mode.
func (p LabelPolicy) givesUp(b providers.MailboxInfo) bool {
	return p.Once || b.SpecialUse == providers.RoleAll
}

// leavesOut reports whether planMailboxes leaves b out under this policy.
func (p LabelPolicy) leavesOut(b providers.MailboxInfo) bool {
	switch b.SpecialUse {
	case providers.RoleAll:
		return p.AllMail == AllMailSkip
	case providers.RoleFlagged, providers.RoleImportant:
		return p.SkipViews
	}
	return false
}

// fingerprintOwners maps the fingerprints an account's ledger records as
// settled to the source mailboxes holding them, for verify.
type fingerprintOwners map[providers.Fingerprint][]string

func settledFingerprints(lg ledger.Ledger, account string, pol LabelPolicy) (fingerprintOwners, error) {
	if !pol.claims() {
		return nil, nil
	}
	out := fingerprintOwners{}
	err := lg.Mailboxes(account, func(name string, _ ledger.MailboxRecord) error {
		return lg.Records(account, name, func(rec ledger.Record) error {
			if rec.Status.Settled() && !slices.Contains(out[rec.Fingerprint], name) {
				out[rec.Fingerprint] = append(out[rec.Fingerprint], name)
			}
			return nil
		})
	})
	if err != nil {
		return nil, providers.WithClass(providers.ClassRun, fmt.Errorf("read checkpoint: %w", err))
	}
	return out, nil
}

// forMailbox says whether a fingerprint was copied by a mailbox other than
// mailbox, where the policy lets b give it up; nil when b keeps all.
func (f fingerprintOwners) forMailbox(b providers.MailboxInfo, pol LabelPolicy) func(string, providers.Fingerprint) bool {
	if f == nil || !pol.givesUp(b) {
		return nil
	}
	return func(mailbox string, fp providers.Fingerprint) bool {
		return slices.ContainsFunc(f[fp], func(o string) bool { return o != mailbox })
	}
}
