package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
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
the default is now. With --to (and the destination's credentials) it also
records each destination mailbox's UIDNEXT at that moment.`,
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
	store, err := openCheckpoint(o.checkpoint)
	if err != nil {
		return err
	}
	defer store.Close()
	ids, err := a.cutoverAccounts(o, store)
	if err != nil {
		return err
	}
	var dst *side
	if o.to != "" && len(ids) > 1 && o.toAdmin == "" {
		return usagef("recording UIDNEXT for %d accounts needs --to-admin (one login for all), or --user for one account", len(ids))
	}
	if o.to != "" {
		// Only the destination is visited; --from defaults to what the
		// checkpoint recorded, for the endpoint check.
		from, to, err := store.Endpoints()
		if err != nil {
			return err
		}
		if o.from == "" {
			o.from = from
		}
		if _, dst, err = a.resolveSides(&o.endpointOptions, o.user != "" && len(ids) == 1, sides{dest: true}); err != nil {
			return err
		}
		if dst.id() != to {
			return fmt.Errorf("%w: the checkpoint's destination is %s, --to is %s", checkpoint.ErrEndpointsDiffer, to, dst.id())
		}
	}
	failed := 0
	for _, id := range ids {
		acc, _, err := store.Account(id)
		if err != nil {
			return err
		}
		marks := 0
		if dst != nil {
			if marks, err = a.markCutoverUIDNext(ctx, store, id, acc, dst); err != nil {
				failed++
				fmt.Fprintf(a.stderr, "mailferry: %s: %v\n", acc.Source, err)
				continue
			}
		}
		acc.Cutover, acc.State = when, checkpoint.AccountCutover
		if err := store.PutAccount(id, acc); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
		fmt.Fprintf(a.stdout, "cutover %s -> %s at %s", acc.Source, acc.Dest, when.Format(time.RFC3339))
		if dst != nil {
			fmt.Fprintf(a.stdout, " (UIDNEXT of %d destination mailbox(es) recorded)", marks)
		}
		fmt.Fprintln(a.stdout)
	}
	if failed > 0 {
		return &partialError{fmt.Sprintf("cutover not recorded for %d account(s)", failed)}
	}
	return nil
}

// cutoverAccounts are the checkpoint's accounts the command applies to.
func (a *app) cutoverAccounts(o *cutoverOptions, store *checkpoint.Store) ([]string, error) {
	want := map[string]bool{}
	if o.batch != "" {
		f, err := os.Open(o.batch)
		if err != nil {
			return nil, usagef("--batch: %v", err)
		}
		defer f.Close()
		// Passwords do not matter here; rows are only names.
		rows, _, err := parseBatch(o.batch, f, func(string) string { return "unused" }, func(string) ([]byte, error) { return []byte("unused"), nil })
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			want[checkpoint.AccountID(r.SourceUser, r.DestUser)] = true
		}
	}
	var ids []string
	err := store.Accounts(func(id string, acc checkpoint.Account) error {
		switch {
		case checkpoint.IsReverseAccount(id): // cutover is the forward pair's
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
	return ids, err
}

// markCutoverUIDNext records each destination mailbox's UIDNEXT now.
func (a *app) markCutoverUIDNext(ctx context.Context, store *checkpoint.Store, id string, acc checkpoint.Account, dst *side) (int, error) {
	pa := a.batchAccount(dst, dst, acc.Source, acc.Dest, "", dst.password)
	st, err := pa.OpenDest(ctx)
	if err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	defer st.Close()
	boxes := map[string]providers.MailboxInfo{}
	list, err := st.Mailboxes(ctx)
	if err != nil {
		return 0, err
	}
	for _, b := range list {
		boxes[b.Name] = b
	}
	// Collect first: bbolt cannot write while a read transaction is open
	// on the same goroutine.
	recs := map[string]checkpoint.MailboxRecord{}
	if err := store.Mailboxes(id, func(name string, rec checkpoint.MailboxRecord) error {
		recs[name] = rec
		return nil
	}); err != nil {
		return 0, err
	}
	n := 0
	for name, rec := range recs {
		b, ok := boxes[rec.Dest]
		if !ok {
			continue
		}
		if b.UIDNext == 0 {
			mb, err := st.Mailbox(ctx, rec.Dest)
			if err != nil {
				return n, err
			}
			b = mb.Info()
			mb.Close()
		}
		rec.CutoverUIDNext = b.UIDNext
		if err := store.PutMailbox(id, name, rec); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
