package migrate

import "github.com/mailferry/mailferry/providers"

// PlanNames maps source mailboxes to destination names as a first run with
// these rules would, and says what it leaves out and why: what a
// pre-flight check shows before anything is copied.
func PlanNames(src, dst []providers.MailboxInfo, sel Selection, labels LabelPolicy) ([]MailboxPlan, []Skipped) {
	return planMailboxes(src, dst, nil, nil, sel, labels)
}
