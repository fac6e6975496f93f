package migrate

import (
	"errors"
	"fmt"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// noRecord stands, in transitions, for a source message the ledger has no
// record of yet.
const noRecord ledger.Status = 0

// transitions lists every change of a message record's status the engine
// makes, each with the reason it is made. Every place that sets a status
// goes through setStatus, which refuses any change not listed: a record
// is evidence for undo and resume, and a status written by mistake (a
// copy claimed that was never confirmed, a duplicate that undo would then
// leave, a removed copy that would be sent again) is a wrong answer later.
var transitions = map[[2]ledger.Status]string{
	{noRecord, ledger.StatusPending}:   "about to be sent: committed before the APPEND",
	{noRecord, ledger.StatusDuplicate}: "already on the destination before any copy",
	{noRecord, ledger.StatusFailed}:    "refused before sending (larger than the destination takes)",

	{ledger.StatusPending, ledger.StatusPending}:   "sent again after an attempt left it unconfirmed",
	{ledger.StatusPending, ledger.StatusCopied}:    "the APPEND was confirmed, or its copy found on the destination",
	{ledger.StatusPending, ledger.StatusFailed}:    "the destination refused it (or it is too large now)",
	{ledger.StatusPending, ledger.StatusDuplicate}: "found on the destination with no bound to claim the copy as ours",
	{ledger.StatusPending, ledger.StatusRemoved}:   "undo removed the copy a crashed run left",

	{ledger.StatusCopied, ledger.StatusRemoved}: "undo removed the copy, or it was lost with a renumbered destination mailbox",

	{ledger.StatusDuplicate, ledger.StatusRemoved}: "lost with a renumbered destination mailbox",

	{ledger.StatusFailed, ledger.StatusPending}:   "retried (RetryFailed)",
	{ledger.StatusFailed, ledger.StatusFailed}:    "retried and refused again",
	{ledger.StatusFailed, ledger.StatusDuplicate}: "retried and found on the destination",

	{ledger.StatusRemoved, ledger.StatusPending}:   "copied again after undo or a loss",
	{ledger.StatusRemoved, ledger.StatusDuplicate}: "found on the destination after undo or a loss",
	{ledger.StatusRemoved, ledger.StatusFailed}:    "refused when copied again",
}

// errTransition: a record's status was to change in a way transitions does
// not allow. It is a bug; the account stops rather than write it.
var errTransition = errors.New("record status change not allowed")

// checkTransition says whether a record may go from one status to the
// other (from is noRecord for a message without a record).
func checkTransition(key ledger.RecordKey, from, to ledger.Status) error {
	if _, ok := transitions[[2]ledger.Status{from, to}]; ok {
		return nil
	}
	name := from.String()
	if from == noRecord {
		name = "no record"
	}
	return providers.WithClass(providers.ClassAccount,
		fmt.Errorf("%w: message %d:%d from %s to %s", errTransition, key.SrcValidity, key.SrcUID, name, to))
}

// setStatus moves rec to status to, if transitions allows it; rec's
// Status is noRecord for a record being made.
func setStatus(rec *ledger.Record, to ledger.Status) error {
	if err := checkTransition(rec.RecordKey, rec.Status, to); err != nil {
		return err
	}
	rec.Status = to
	return nil
}
