package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/checkpoint"
)

func (a *app) newCheckpointCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Verify a checkpoint file, or copy what verifies out of a damaged one",
	}
	cmd.AddCommand(a.newCheckpointCheckCommand(), a.newCheckpointRecoverCommand())
	return cmd
}

func (a *app) newCheckpointCheckCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Verify every page and entry of a checkpoint, read-only, and say what it holds",
		Long: `check reads the whole checkpoint without writing to it: every page
reached once and the free list consistent, every entry's checksum, every
record readable, and the digest of all entries. It then says what the file
holds (runs, accounts, mailboxes, records by status) and lists any damage.

Exit status: 0 no problem; 1 the file is damaged (the problems are listed);
2 it could not be checked (missing, in use by a run, not a checkpoint, or of
a schema this mailferry does not know).`,
		Example: `  mailferry checkpoint check wave1.db`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := checkpoint.Check(args[0], checkpoint.Options{})
			if err != nil {
				return err
			}
			if asJSON {
				if err := a.writeJSON(rep); err != nil {
					return err
				}
			} else {
				a.printCheck(rep)
			}
			if n := len(rep.Problems) + rep.MoreProblems; n > 0 {
				return &partialError{fmt.Sprintf("%s is damaged: %d problem(s); `mailferry checkpoint recover %s --to NEW` copies every record that verifies into NEW", rep.Path, n, rep.Path)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func (a *app) newCheckpointRecoverCommand() *cobra.Command {
	var to string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "recover FILE --to NEW",
		Short: "Copy every entry of a damaged checkpoint that verifies into a new one",
		Long: `recover reads FILE (it is never written) and copies every entry that
verifies into the new checkpoint NEW, which must not exist; NEW is complete
or not there at all. It then lists what could not be copied: the records
(by source UIDVALIDITY:UID), mailboxes or accounts whose entries failed their
checksum, and the ranges of records on pages that could not be read.

Use NEW from then on as --checkpoint. What survived can be verified and
undone as before; for the records lost, verify compares the servers by
content.

Exit status: 0 everything was copied; 1 NEW was made but some entries were
lost (listed); 2 nothing was made.`,
		Example: `  mailferry checkpoint recover wave1.db --to wave1-recovered.db`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("--to NEW is required: recover writes a new file and never changes %s", args[0])
			}
			rr, err := checkpoint.Recover(args[0], to, checkpoint.Options{})
			if err != nil {
				return err
			}
			if asJSON {
				if err := a.writeJSON(rr); err != nil {
					return err
				}
			} else {
				a.printRecover(args[0], rr)
			}
			if n := len(rr.Lost) + rr.MoreLost; n > 0 {
				return &partialError{fmt.Sprintf("%s made, but %d problem(s) left entries of %s behind (listed above)", to, n, args[0])}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the new checkpoint to write (must not exist)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func (a *app) printCheck(rep *checkpoint.Report) {
	w := a.stdout
	fmt.Fprintf(w, "%s: mailferry checkpoint, schema %d, %s (%d pages of %d bytes, %d free)\n",
		rep.Path, rep.Schema, humanBytes(rep.Size), rep.Pages, rep.PageSize, rep.FreePages)
	if rep.Created != "" || rep.From != "" {
		fmt.Fprintf(w, "created %s, for %s -> %s\n", orNone(rep.Created), orNone(rep.From), orNone(rep.To))
	}
	if rep.Recovered != "" {
		fmt.Fprintf(w, "made by checkpoint recover: %s\n", rep.Recovered)
	}
	a.printHolds(rep)
	switch {
	case len(rep.Backups) > 0:
		fmt.Fprintf(w, "backups beside it: %d, the newest %s\n", len(rep.Backups), rep.Backups[len(rep.Backups)-1])
	default:
		fmt.Fprintln(w, "backups beside it: none")
	}
	if rep.Schema < 2 {
		fmt.Fprintf(w, "checked: every page and entry; schema %d keeps no checksums (the next run upgrades the file)\n", rep.Schema)
	} else {
		fmt.Fprintf(w, "checked: every page, the checksum of every one of %d entries, and their digest\n", rep.Entries)
	}
	if len(rep.Problems) == 0 {
		fmt.Fprintln(w, "no problems found")
		return
	}
	fmt.Fprintf(w, "\nPROBLEMS (%d):\n", len(rep.Problems)+rep.MoreProblems)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if rep.MoreProblems > 0 {
		fmt.Fprintf(w, "  … and %d more\n", rep.MoreProblems)
	}
	fmt.Fprintf(w, "\nA run refuses this file and writes nothing to it. `mailferry checkpoint recover %s --to NEW` copies every entry that verifies into NEW", rep.Path)
	if len(rep.Backups) > 0 {
		fmt.Fprintf(w, "; or put back a backup that checks clean (the newest is %s)", rep.Backups[len(rep.Backups)-1])
	}
	fmt.Fprintln(w, ".")
}

// printHolds prints the counts of a report.
func (a *app) printHolds(rep *checkpoint.Report) {
	w := a.stdout
	fmt.Fprintf(w, "runs: %d", rep.Runs)
	if r := rep.LastRun; r != nil {
		outcome := r.Outcome
		if r.Finished.IsZero() {
			outcome = "did not finish (killed, or still running)"
		}
		fmt.Fprintf(w, ", the last #%d %s (%s) started %s: %s", r.ID, r.Command, r.Version, r.Started.Format(time.RFC3339), outcome)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "accounts: %d%s, way back (reverse): %d\n", countTotal(rep.Accounts), countList(rep.Accounts), rep.WayBack)
	fmt.Fprintf(w, "mailboxes: %d; destination mailboxes seen: %d\n", rep.Mailboxes, rep.DestMailboxes)
	fmt.Fprintf(w, "message records: %d%s\n", countTotal(rep.Records), countList(rep.Records))
}

func (a *app) printRecover(src string, rr *checkpoint.RecoverReport) {
	w := a.stdout
	fmt.Fprintf(w, "recovered %s (schema %d) into %s\n", src, rr.Schema, rr.Copied.Path)
	a.printHolds(rr.Copied)
	if len(rr.Lost) == 0 {
		fmt.Fprintln(w, "nothing lost: every entry verified and was copied")
	} else {
		fmt.Fprintf(w, "\nLOST (%d):\n", len(rr.Lost)+rr.MoreLost)
		for _, p := range rr.Lost {
			fmt.Fprintf(w, "  %s\n", p)
		}
		if rr.MoreLost > 0 {
			fmt.Fprintf(w, "  … and %d more\n", rr.MoreLost)
		}
	}
	fmt.Fprintf(w, "\n%s verifies. Use it as --checkpoint from now on; %s is left as it was.\n", rr.Copied.Path, src)
	if len(rr.Lost) > 0 {
		fmt.Fprintf(w, "For what was lost, `mailferry verify --checkpoint %s` compares the servers by content.\n", rr.Copied.Path)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func countTotal(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// countList prints " (a 1, b 2)" in name order, or nothing.
func countList(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
