package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailferry/mailferry/migrate"
)

// printSummary writes one table per account pair. The columns add up:
// copied + duplicate + failed + pending = seen.
func printSummary(w io.Writer, sums []migrate.AccountSummary, dryRun bool) {
	for _, s := range sums {
		fmt.Fprintf(w, "\naccount %s -> %s", s.Source, s.Dest)
		if s.Duration > 0 {
			fmt.Fprintf(w, " (%s)", s.Duration.Round(time.Millisecond))
		}
		if dryRun {
			fmt.Fprint(w, " [dry run: NEW is what would be copied]")
		}
		fmt.Fprintln(w)
		if s.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", strings.ToUpper(s.Status), s.Error)
		}
		if len(s.Mailboxes) > 0 {
			printMailboxes(w, s)
		}
		printWarnings(w, "  ", s, len(s.Warnings))
	}
}

// printMailboxes writes the table of one account's mailboxes and what
// went wrong in them.
func printMailboxes(w io.Writer, s migrate.AccountSummary) {
	tw := newTable(w)
	fmt.Fprintln(tw, "MAILBOX\tDESTINATION\tSEEN\tCOPIED\tNEW\tDUPLICATE\tFAILED\tPENDING\tBYTES\t")
	for _, m := range s.Mailboxes {
		dest := m.Dest
		if m.Created {
			dest += " (created)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", m.Source, dest, m.Seen, m.Copied, m.New, m.Duplicate, m.Failed, m.Pending, humanBytes(m.Bytes))
	}
	t := s.Totals()
	fmt.Fprintf(tw, "TOTAL\t\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", t.Seen, t.Copied, t.New, t.Duplicate, t.Failed, t.Pending, humanBytes(t.Bytes))
	tw.Flush()
	for _, m := range s.Mailboxes {
		if m.Error != "" {
			fmt.Fprintf(w, "  mailbox %q failed (%s): %s\n", m.Source, m.Class, m.Error)
		}
		if m.Warn != "" {
			fmt.Fprintf(w, "  mailbox %q WARN: %s\n", m.Source, m.Warn)
		}
		for _, f := range m.Failures {
			fmt.Fprintf(w, "  mailbox %q uid %d %s refused: %s\n", m.Source, f.UID, f.MessageID, f.Reason)
		}
		if n := m.Failed - len(m.Failures); n > 0 {
			fmt.Fprintf(w, "  mailbox %q: %d more refused (see mailferry status)\n", m.Source, n)
		}
		for _, f := range m.Alterations {
			fmt.Fprintf(w, "  mailbox %q uid %d %s copied ALTERED: %s\n", m.Source, f.UID, f.MessageID, f.Reason)
		}
		if n := m.Altered - len(m.Alterations); n > 0 {
			fmt.Fprintf(w, "  mailbox %q: %d more copied altered (see mailferry status)\n", m.Source, n)
		}
	}
	if t.OtherLabel > 0 {
		fmt.Fprintf(w, "  %d message(s) also in another label folder, copied there once (not counted in SEEN; --gmail-labels each copies them to every folder)\n", t.OtherLabel)
	}
	if t.Filtered > 0 {
		fmt.Fprintf(w, "  %d message(s) left out by --since, --before or --max-size (not counted in SEEN)\n", t.Filtered)
	}
	for _, sk := range s.Skipped {
		fmt.Fprintf(w, "  skipped %q: %s\n", sk.Mailbox, sk.Reason)
	}
}

// printWarnings writes up to limit of what the stores could not read as
// expected (malformed mbox files), one "warning:" line each after prefix,
// and how many more there are. None of it failed the account: the rest
// was copied.
func printWarnings(w io.Writer, prefix string, s migrate.AccountSummary, limit int) {
	shown := min(limit, len(s.Warnings))
	for _, warn := range s.Warnings[:shown] {
		fmt.Fprintf(w, "%swarning: %s\n", prefix, warn)
	}
	more := max(s.WarningCount, len(s.Warnings)) - shown
	if more <= 0 {
		return
	}
	fmt.Fprintf(w, "%swarning: %d more", prefix, more)
	if n := len(s.Warnings) - shown; n > 0 {
		fmt.Fprintf(w, " (the first %d of them in the JSON --report)", n)
	}
	fmt.Fprintln(w)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
