package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate/ledger"
)

// cloudChanges lists the accounts cut over with no reverse since: users
// have worked on the destination, and undo would throw that work away
// unless reverse has carried it back first (docs/rollback.md).
func cloudChanges(store *checkpoint.Store, accts []plannedAccount) ([]string, error) {
	var out []string
	for _, p := range accts {
		if p.invalid != "" {
			continue
		}
		acc, ok, err := store.Account(p.ID)
		if err != nil {
			return nil, err
		}
		if !ok || acc.Cutover.IsZero() {
			continue
		}
		rev, ok, err := store.Account(ledger.ReverseAccountID(p.ID))
		if err != nil {
			return nil, err
		}
		if ok && (rev.State == ledger.AccountCopied || rev.State == ledger.AccountWarn) && rev.Updated.After(acc.Cutover) {
			continue
		}
		out = append(out, fmt.Sprintf("%s (cut over %s)", p.SourceUser, acc.Cutover.Local().Format(time.DateTime)))
	}
	return out, nil
}

// refuseCloudChanges stops undo --yes, before any login, on accounts
// whose users work on the destination since a cutover no reverse followed;
// a dry run warns that --yes will stop.
func (a *app) refuseCloudChanges(store *checkpoint.Store, all []plannedAccount, execute, discard bool) error {
	if store == nil || discard {
		return nil
	}
	accts, err := cloudChanges(store, all)
	if err != nil || len(accts) == 0 {
		return err
	}
	why := fmt.Sprintf("%d account(s) were cut over and no reverse has run since: %s; what users did on the destination since "+
		"(new mail, filed and flagged messages) would be lost with the copies. Run `mailferry reverse` first (see docs/rollback.md), "+
		"or give --discard-cloud-changes to undo regardless", len(accts), strings.Join(accts, ", "))
	if !execute {
		fmt.Fprintf(a.stderr, "mailferry: warning: undo --yes will refuse: %s\n", why)
		return nil
	}
	return usagef("undo refused: %s", why)
}
