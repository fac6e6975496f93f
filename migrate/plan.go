package migrate

import (
	"cmp"
	"slices"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// MailboxPlan says where one source mailbox goes.
type MailboxPlan struct {
	Source     providers.MailboxInfo
	Dest       string // canonical destination name
	Role       string // special-use role the destination should carry
	DestExists bool   // the destination mailbox is already there
	// DestInfo is what the destination's listing said of it, if it exists.
	DestInfo providers.MailboxInfo
}

// Skipped is a source mailbox the plan leaves out, with the reason.
type Skipped struct {
	Mailbox string
	Reason  string
}

// planMailboxes maps source mailboxes to destination names. A mapping
// recorded in the ledger by an earlier run always wins, so a resumed or
// repeated run writes where the first one did. Otherwise names (reverse's
// way back) and then the admin's folder mappings decide; INBOX goes to
// INBOX, a special-use mailbox goes to the destination mailbox with the
// same role whatever it is called, and anything else keeps its name.
// Mailboxes the selection leaves out are skipped.
//
// The labels policy decides about \All (left out by default: a virtual
// view on most servers, Gmail's every message) and Gmail's views.
func planMailboxes(src, dst []providers.MailboxInfo, known map[string]ledger.MailboxRecord, names map[string]string, sel Selection, labels LabelPolicy) ([]MailboxPlan, []Skipped) {
	dstByName := make(map[string]providers.MailboxInfo, len(dst))
	dstByRole := map[string]string{}
	for _, d := range dst {
		dstByName[d.Name] = d
		if d.SpecialUse != "" {
			if _, dup := dstByRole[d.SpecialUse]; !dup {
				dstByRole[d.SpecialUse] = d.Name
			}
		}
	}
	src = slices.Clone(src)
	// INBOX first, then roles before plain folders so that a role claims its
	// destination before a folder of the same name does, then by name.
	slices.SortFunc(src, func(a, b providers.MailboxInfo) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	var plans []MailboxPlan
	var skipped []Skipped
	usedRole := map[string]bool{}
	for _, s := range src {
		if labels.leavesOut(s) {
			skipped = append(skipped, Skipped{s.Name, s.SpecialUse + " is a view of mail held in other mailboxes"})
			continue
		}
		if why := sel.skips(s.Name); why != "" {
			skipped = append(skipped, Skipped{s.Name, why})
			continue
		}
		p := MailboxPlan{Source: s, Role: s.SpecialUse}
		mapped, isMapped := sel.mapped(s.Name)
		switch rec, ok := known[s.Name]; {
		case ok:
			p.Dest = rec.Dest
		case names[s.Name] != "":
			p.Dest = names[s.Name]
		case isMapped:
			// The admin's rule beats the role: the mailbox it names is not
			// made a second \Sent or \Trash.
			p.Dest, p.Role = mapped, ""
		case s.Name == "INBOX":
			p.Dest = "INBOX"
		case s.SpecialUse == providers.RoleAll && labels.AllMail == AllMailArchived:
			// Archived mail: to the destination's \All (Gmail to Gmail),
			// else its archive.
			p.Dest, p.Role = dstByRole[providers.RoleAll], ""
			if p.Dest == "" {
				p.Dest, p.Role = cmp.Or(dstByRole[providers.RoleArchive], "Archive"), providers.RoleArchive
			}
		case s.SpecialUse == providers.RoleAll:
			p.Dest, p.Role = s.Name, ""
		case s.SpecialUse != "" && dstByRole[s.SpecialUse] != "" && !usedRole[s.SpecialUse]:
			p.Dest = dstByRole[s.SpecialUse]
		default:
			p.Dest = s.Name
		}
		if s.SpecialUse != "" && dstByRole[s.SpecialUse] == p.Dest {
			usedRole[s.SpecialUse] = true
		}
		p.DestInfo, p.DestExists = dstByName[p.Dest]
		plans = append(plans, p)
	}
	return plans, skipped
}

func rank(m providers.MailboxInfo) int {
	switch {
	case m.Name == "INBOX":
		return 0
	case m.SpecialUse == providers.RoleAll:
		// Last: with labels, it copies only what no other mailbox holds.
		return 3
	case m.SpecialUse != "":
		return 1
	}
	return 2
}

// destGroups groups plans by destination: mailboxes merging into one
// destination are copied one after another by one worker, because dedup
// against the destination must see what the others appended.
func destGroups(plans []MailboxPlan) [][]MailboxPlan {
	idx := map[string]int{}
	var groups [][]MailboxPlan
	for _, p := range plans {
		i, ok := idx[p.Dest]
		if !ok {
			i = len(groups)
			idx[p.Dest] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], p)
	}
	return groups
}
