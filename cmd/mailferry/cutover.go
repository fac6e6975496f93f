package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

type cutoverOptions struct {
	endpointOptions
	checkpoint string
	user       string
	batch      string
	at         string
}

func (a *app) newCutoverCommand() *cobra.Command {
	var o cutoverOptions
	cmd := &cobra.Command{
		Use:   "cutover --checkpoint FILE [--user U | --batch F] [--at TIME] [--to URL]",
		Short: "Record that users now work on the destination",
		Long: `cutover records, per account, the moment its mail starts arriving at the
destination and users work there: the point of no return for the source.
From then on migrate no longer sets the flags of earlier copies from the
source (the destination's flags are the users'), and reverse can carry
back what changes on the destination.

Without --user or --batch it records every account of the checkpoint.
--at gives the moment (RFC 3339, or "2006-01-02 15:04" in local time);
the default is now. Given the destination's credentials (--to-admin, the
passwords of --batch, or $MAILFERRY_TO_PASSWORD for one account) it also
logs in to the destination (--to, default the checkpoint's) and records
each mailbox's UIDNEXT and, on servers with CONDSTORE, HIGHESTMODSEQ:
reverse then carries back the flags of exactly the messages users changed
after cutover.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runCutover(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.endpointOptions.addFlags(f)
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file of the migration")
	f.StringVar(&o.user, "user", "", "only this account (source or destination user)")
	f.StringVar(&o.batch, "batch", "", "only the account pairs of this CSV file")
	f.StringVar(&o.at, "at", "", "when users started on the destination (default: now)")
	return cmd
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Now().UTC(), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		var t time.Time
		var err error
		if layout == time.RFC3339 {
			t, err = time.Parse(layout, s)
		} else {
			t, err = time.ParseInLocation(layout, s, time.Local)
		}
		if err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usagef("--at %q: want RFC 3339 (2026-11-25T22:00:00+01:00) or \"2026-11-25 22:00\"", s)
}

func (a *app) runCutover(ctx context.Context, o *cutoverOptions) error {
	when, err := parseWhen(o.at)
	if err != nil {
		return err
	}
	store, err := openExistingCheckpoint(o.checkpoint, checkpoint.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	ids, passwords, err := a.cutoverAccounts(o, store)
	if err != nil {
		return err
	}
	dst, err := a.cutoverDest(o, store, len(ids), passwords)
	if err != nil {
		return err
	}
	if dst == nil {
		fmt.Fprintln(a.stderr, "mailferry: the destination's UIDNEXT and HIGHESTMODSEQ are not recorded: give its credentials "+
			"(--to-admin, --batch with passwords, or $MAILFERRY_TO_PASSWORD for one account); reverse then looks at every copy's flags")
	}
	failed := 0
	for _, id := range ids {
		acc, _, err := store.Account(id)
		if err != nil {
			return err
		}
		var marks cutoverMarks
		if dst != nil {
			password := dst.password
			if dst.admin == "" && passwords[id] != "" {
				password = passwords[id]
			}
			if marks, err = a.markCutover(ctx, store, id, acc, dst, password); err != nil {
				failed++
				fmt.Fprintf(a.stderr, "mailferry: %s: %v\n", acc.Source, err)
				continue
			}
		}
		acc.Cutover, acc.State = when, ledger.AccountCutover
		if err := store.PutAccount(id, acc); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
		fmt.Fprintf(a.stdout, "cutover %s -> %s at %s", acc.Source, acc.Dest, when.Format(time.RFC3339))
		if dst != nil {
			fmt.Fprintf(a.stdout, " (of %d destination mailbox(es): UIDNEXT recorded for %d, HIGHESTMODSEQ for %d", marks.mailboxes, marks.uidNext, marks.modSeq)
			if marks.fresh > 0 {
				fmt.Fprintf(a.stdout, ", %d empty and not numbered by the server yet: all they hold later is new", marks.fresh)
			}
			fmt.Fprint(a.stdout, ")")
		}
		fmt.Fprintln(a.stdout)
		for _, miss := range marks.missing {
			fmt.Fprintf(a.stdout, "  %s\n", miss)
		}
	}
	if failed > 0 {
		return &partialError{fmt.Sprintf("cutover not recorded for %d account(s)", failed)}
	}
	return nil
}

// cutoverDest is the destination to log in to, to note each mailbox's
// UIDNEXT and HIGHESTMODSEQ: --to, else the checkpoint's; nil when no
// credentials are given for it, or it is a directory (mbox, maildir).
func (a *app) cutoverDest(o *cutoverOptions, store *checkpoint.Store, accounts int, passwords map[string]providers.Secret) (*side, error) {
	from, to, err := store.Endpoints()
	if err != nil {
		return nil, err
	}
	if o.from == "" {
		o.from = from // only for the endpoint check: the source is not visited
	}
	if o.to == "" {
		o.to = to
	}
	single := accounts == 1 && o.batch == ""
	haveUser := o.toPasswordFile != "" || a.getenv("MAILFERRY_TO_PASSWORD") != ""
	oauth := a.hasOAuth(o.toTokenCmd, "TO")
	switch {
	case strings.HasPrefix(o.to, "mbox:") || strings.HasPrefix(o.to, "maildir:"):
		return nil, nil
	case o.toAdmin == "" && !oauth && !(single && haveUser) && len(passwords) == 0:
		return nil, nil
	}
	_, dst, err := a.resolveSides(&o.endpointOptions, single && o.toAdmin == "", sides{dest: true})
	if err != nil {
		return nil, err
	}
	if dst.id() != to {
		return nil, fmt.Errorf("%w: the checkpoint's destination is %s, --to is %s", checkpoint.ErrEndpointsDiffer, to, dst.id())
	}
	return dst, nil
}

// cutoverAccounts are the checkpoint's accounts the command applies to,
// with the destination passwords a batch file gives them.
func (a *app) cutoverAccounts(o *cutoverOptions, store *checkpoint.Store) ([]string, map[string]providers.Secret, error) {
	want := map[string]bool{}
	passwords := map[string]providers.Secret{}
	if o.batch != "" {
		f, err := os.Open(o.batch)
		if err != nil {
			return nil, nil, usagef("--batch: %v", err)
		}
		defer f.Close()
		rows, bad, err := parseBatch(o.batch, f, a.getenv, readPasswordFile)
		if err != nil {
			return nil, nil, err
		}
		for _, b := range bad {
			fmt.Fprintf(a.stderr, "mailferry: %v\n", b.Error())
		}
		for _, r := range rows {
			id := ledger.AccountID(r.SourceUser, r.DestUser)
			want[id] = true
			if r.DestPassword != "" {
				passwords[id] = r.DestPassword
			}
		}
	}
	var ids []string
	err := store.Accounts(func(id string, acc ledger.Account) error {
		switch {
		case ledger.IsReverseAccount(id): // cutover is the forward pair's
		case o.batch != "" && !want[id]:
		case o.user != "" && !strings.EqualFold(o.user, acc.Source) && !strings.EqualFold(o.user, acc.Dest):
		default:
			ids = append(ids, id)
		}
		return nil
	})
	if err == nil && len(ids) == 0 {
		err = usagef("no account of the checkpoint matches")
	}
	return ids, passwords, err
}

// cutoverMarks is what markCutover could record, and what not, and why.
type cutoverMarks struct {
	mailboxes, uidNext, modSeq int
	// fresh are empty mailboxes the server numbers only once they hold
	// mail (ledger.MailboxRecord.DstFresh): all they hold later is new.
	fresh   int
	missing []string
}

// markCutover records each destination mailbox's UIDNEXT and, where the
// server numbers its changes (CONDSTORE), HIGHESTMODSEQ now; it says which
// it could not read.
func (a *app) markCutover(ctx context.Context, store *checkpoint.Store, id string, acc ledger.Account, dst *side, password providers.Secret) (cutoverMarks, error) {
	var marks cutoverMarks
	pa := a.batchAccount(dst, dst, acc.Source, acc.Dest, "", password)
	st, err := pa.OpenDest(ctx)
	if err != nil {
		return marks, fmt.Errorf("destination: %w", err)
	}
	defer st.Close()
	boxes := map[string]providers.MailboxInfo{}
	list, err := st.Mailboxes(ctx)
	if err != nil {
		return marks, err
	}
	for _, b := range list {
		boxes[b.Name] = b
	}
	// Collect first: bbolt cannot write while a read transaction is open
	// on the same goroutine.
	recs := map[string]ledger.MailboxRecord{}
	if err := store.Mailboxes(id, func(name string, rec ledger.MailboxRecord) error {
		recs[name] = rec
		return nil
	}); err != nil {
		return marks, err
	}
	ct, tracks := providers.As[providers.ChangeTracker](st)
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		rec := recs[name]
		b, ok := boxes[rec.Dest]
		if !ok {
			marks.missing = append(marks.missing, fmt.Sprintf("%s: not on the destination any more; nothing recorded", rec.Dest))
			continue
		}
		if b.UIDNext == 0 || b.UIDValidity == 0 {
			mb, err := st.Mailbox(ctx, rec.Dest)
			if err != nil {
				return marks, err
			}
			b = mb.Info()
			mb.Close()
		}
		marks.mailboxes++
		rec.CutoverUIDNext, rec.CutoverModSeq = 0, 0
		if b.Messages == 0 && (rec.DstValidity == 0 || (rec.DstFresh && b.UIDValidity != rec.DstValidity)) {
			// Empty and never opened by a migration, or its UIDVALIDITY
			// changes at each look until it holds mail: reverse takes all
			// it holds then as new.
			marks.fresh++
			if err := store.PutMailbox(id, name, rec); err != nil {
				return marks, err
			}
			continue
		}
		if rec.DstValidity == 0 {
			// Never opened by a migration (a parent the server made for a
			// mailbox mailferry created): this is its first sight.
			rec.DstValidity = b.UIDValidity
		}
		switch {
		case b.UIDNext == 0:
			marks.missing = append(marks.missing, fmt.Sprintf("%s: UIDNEXT not recorded: the server gave none", rec.Dest))
		case b.UIDValidity != rec.DstValidity:
			marks.missing = append(marks.missing, fmt.Sprintf("%s: UIDNEXT not recorded: the mailbox was recreated since the migration", rec.Dest))
		default:
			rec.CutoverUIDNext = b.UIDNext
			marks.uidNext++
		}
		if !tracks {
			marks.missing = append(marks.missing, fmt.Sprintf("%s: HIGHESTMODSEQ not recorded: the destination cannot number changes; reverse compares the flags of every copy", rec.Dest))
		} else if validity, modseq, err := ct.HighestModSeq(ctx, rec.Dest); err != nil || validity != rec.DstValidity || modseq == 0 {
			why := "the mailbox was recreated since the migration"
			if err != nil {
				why = err.Error()
			}
			marks.missing = append(marks.missing, fmt.Sprintf("%s: HIGHESTMODSEQ not recorded (%s); reverse compares the flags of every copy", rec.Dest, why))
		} else {
			rec.CutoverModSeq = modseq
			marks.modSeq++
		}
		if err := store.PutMailbox(id, name, rec); err != nil {
			return marks, err
		}
	}
	return marks, nil
}
