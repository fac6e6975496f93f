package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
)

type preflightOptions struct {
	endpointOptions
	outputOptions
	accountFlags
	selectionFlags
	metrics     metricsOptions
	checkpoint  string
	concurrency int
	sample      string
	verbose     bool
}

func (a *app) newPreflightCommand() *cobra.Command {
	var o preflightOptions
	cmd := &cobra.Command{
		Use:   "preflight --from URL --to URL [--batch users.csv] [--report FILE]",
		Short: "Check a wave before it runs: logins, sizes, quotas, limits, folder names; copies nothing",
		Long: `preflight checks everything a migration needs, for every account of the
batch, and copies nothing: the servers answer and their certificates are
trusted, the admin's login works (checked with the first account alone,
before any other login), then per account: both logins, every source
mailbox with its message count and size (STATUS=SIZE where the server
offers it, else the sum of RFC822.SIZE), the destination's quota
headroom where it offers QUOTA, messages larger than the destination
takes (its APPENDLIMIT, or the preset's limit), messages without a
Message-ID, folder names that collide or change on the way (case,
INBOX, characters the destination refuses, its separator inside a name),
and, from Gmail, messages in several labels. It ends with the wave's
totals and an estimated duration from the source's measured read rate.

It takes the flags migrate takes, so the same command line (or --config
file) checks the wave and then runs it. Nothing is written anywhere but
--report; the source is only read (EXAMINE, BODY.PEEK).

Exit status: 0 every account is ready; 1 some accounts have problems (the
summary names them); 2 nothing can start (a server unreachable, its
certificate not trusted, the admin refused, bad flags).`,
		Example: `  mailferry preflight --config wave1.yaml --report wave1-preflight.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPreflight(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.endpointOptions.addFlags(f)
	o.outputOptions.addFlags(f)
	f.StringVar(&o.checkpoint, "checkpoint", "", "the wave's checkpoint, if it exists: its servers must be these (read only, never created)")
	f.StringVar(&o.batch, "batch", "", "CSV file of account pairs (as for migrate)")
	addShardFlag(f, &o.shard)
	f.BoolVar(&o.strict, "strict", false, "with --batch: check nothing if any row is bad")
	f.IntVar(&o.concurrency, "concurrency", 4, "accounts checked at once, and the run's concurrency the estimate assumes")
	f.StringVar(&o.sample, "sample", "4M", "bytes of message bodies read per account to measure the source's read rate (0: do not measure)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print every mailbox of every account")
	o.selectionFlags.addFlags(f)
	addMetricsFlags(f, &o.metrics)
	// Flags of migrate that do not change what preflight checks, taken so
	// that one command line serves both.
	var ignoredInt int
	var ignoredBool bool
	f.IntVar(&ignoredInt, "mailbox-workers", 4, "ignored (migrate's)")
	f.IntVar(&ignoredInt, "streams", 1, "ignored (migrate's)")
	f.IntVar(&ignoredInt, "commit-every", 256, "ignored (migrate's)")
	f.IntVar(&ignoredInt, "retries", 5, "ignored (migrate's)")
	f.BoolVar(&ignoredBool, "retry-failed", false, "ignored (migrate's)")
	for _, n := range []string{"mailbox-workers", "streams", "commit-every", "retries", "retry-failed"} {
		f.MarkHidden(n)
	}
	return cmd
}

// preflightAccount is what preflight found for one account pair.
type preflightAccount struct {
	Source   string `json:"source_user"`
	Dest     string `json:"dest_user"`
	Status   string `json:"status"` // ready, problems, failed
	Error    string `json:"error,omitempty"`
	Messages int    `json:"messages"`
	Bytes    int64  `json:"bytes"`
	// NoMessageID counts messages without a Message-ID: deduplicated by
	// their content fingerprint instead (docs/checkpoint.md).
	NoMessageID int `json:"no_message_id"`
	// TooLarge counts messages over the destination's limit
	// (AppendLimit), which would be refused.
	TooLarge    int   `json:"too_large"`
	AppendLimit int64 `json:"append_limit,omitempty"`
	// QuotaUsed and QuotaLimit are the destination's storage quota, when
	// it offers QUOTA; QuotaFree = QuotaLimit - QuotaUsed.
	QuotaUsed  int64 `json:"quota_used,omitempty"`
	QuotaLimit int64 `json:"quota_limit,omitempty"`
	QuotaFree  int64 `json:"quota_free,omitempty"`
	HasQuota   bool  `json:"has_quota"`
	// MultiLabel counts messages found in more than one source mailbox
	// (Gmail labels, outside [Gmail]/All Mail).
	MultiLabel int                `json:"multi_label,omitempty"`
	Mailboxes  []preflightMailbox `json:"mailboxes"`
	Skipped    []migrate.Skipped  `json:"skipped_mailboxes,omitempty"`
	Problems   []string           `json:"problems,omitempty"`
	Notes      []string           `json:"notes,omitempty"`
	// SampleBytes were read in SampleSeconds to measure the source.
	SampleBytes   int64         `json:"sample_bytes"`
	SampleSeconds float64       `json:"sample_seconds"`
	Duration      time.Duration `json:"duration_ns"`
}

type preflightMailbox struct {
	Source      string `json:"source"`
	Dest        string `json:"dest"`
	DestNative  string `json:"dest_native,omitempty"` // the destination server's name, when not the canonical one
	DestExists  bool   `json:"dest_exists"`
	Messages    int    `json:"messages"`
	Bytes       int64  `json:"bytes"`
	SizeFrom    string `json:"size_from"` // STATUS=SIZE or RFC822.SIZE
	NoMessageID int    `json:"no_message_id"`
	TooLarge    int    `json:"too_large"`
	Filtered    int    `json:"filtered,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Account statuses of preflight.
const (
	preflightReady    = "ready"
	preflightProblems = "problems"
)

func (a *app) runPreflight(ctx context.Context, o *preflightOptions) error {
	sample, err := parseSample(o.sample)
	if err != nil {
		return err
	}
	fromPreset, err := lookupPreset(o.fromPreset)
	if err != nil {
		return err
	}
	o.warn = func(msg string) { a.log.Warn(msg) }
	sel, labels, err := o.selection(fromPreset)
	if err != nil {
		return err
	}
	env, err := a.setUp(ctx, runConfig{command: "preflight", need: bothSides, endpoint: &o.endpointOptions, accounts: &o.accountFlags,
		checkpoint: o.checkpoint, optional: true, readOnly: true, dirsDryRun: true})
	if err != nil {
		return err
	}
	defer env.close()
	obs, err := a.startObservability(ctx, &o.metrics, "preflight", env.accts, env.src, env.dst)
	if err != nil {
		return err
	}
	defer obs.close()
	out, err := a.newOutput(&o.outputOptions, env, "preflight", "")
	if err != nil {
		return err
	}
	emit := obs.tee(out.event)
	toPreset, _ := lookupPreset(o.toPreset)
	pf := preflight{sel: sel, labels: labels, sample: sample, caseBlind: toPreset.caseInsensitive(), dstPreset: toPreset.name}
	accts := env.accts
	sums := make([]preflightAccount, len(accts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(o.concurrency, 1))
	for i, p := range accts {
		if p.invalid != "" {
			sums[i] = preflightAccount{Source: p.SourceUser, Dest: p.DestUser, Status: migrate.StatusFailed, Error: p.invalid}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-env.ctx.Done():
		}
		if env.ctx.Err() != nil {
			sums[i] = preflightAccount{Source: p.SourceUser, Dest: p.DestUser, Status: statusStopped}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			emit(migrate.Event{Kind: migrate.EventAccountStart, ID: p.ID})
			sums[i] = pf.account(env.ctx, p)
			emit(migrate.Event{Kind: migrate.EventAccountDone, ID: p.ID, Result: &sums[i]})
		}()
	}
	wg.Wait()
	out.close()
	took := time.Since(env.started)
	est := estimate(sums, o.concurrency)
	printFn := func(w io.Writer) { printPreflight(w, sums, est, o.verbose, took) }
	if err := out.results(sums, took, printFn, func() table { return preflightTable(sums) }); err != nil {
		return err
	}
	if err := env.stopped(); err != nil {
		out.stopped(err)
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var bad []string
	for _, s := range sums {
		if s.Status != preflightReady {
			bad = append(bad, s.Source)
		}
	}
	if len(bad) > 0 {
		names := bad
		if len(names) > 10 {
			names = append(slices.Clone(names[:10]), fmt.Sprintf("and %d more", len(bad)-10))
		}
		return &partialError{fmt.Sprintf("%d of %d account(s) not ready: %s", len(bad), len(sums), strings.Join(names, ", "))}
	}
	return nil
}

func parseSample(s string) (int64, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	n, err := parseSize(s)
	if err != nil {
		return 0, usagef("--sample %q: want a size such as 4M, or 0", s)
	}
	return n, nil
}

// preflight checks one account at a time.
type preflight struct {
	sel       migrate.Selection
	labels    migrate.LabelPolicy
	sample    int64
	caseBlind bool   // the destination folds case in mailbox names
	dstPreset string // the destination's preset name, "" for none
}

// reserved says why the destination keeps a name for itself, "" if it
// does not: Gmail's [Gmail] folders cannot be created.
func (pf preflight) reserved(name string, exists bool) string {
	top, _, _ := strings.Cut(name, "/")
	if pf.dstPreset == "gmail" && strings.EqualFold(top, "[Gmail]") && !exists {
		return "Gmail keeps [Gmail]/ for its own folders and refuses to create one there"
	}
	return ""
}

func (pf preflight) account(ctx context.Context, p plannedAccount) (r preflightAccount) {
	start := time.Now()
	r = preflightAccount{Source: p.SourceUser, Dest: p.DestUser}
	defer func() {
		r.Duration = time.Since(start)
		switch {
		case ctx.Err() != nil && r.Error == "":
			r.Status = statusStopped
		case r.Error != "":
			r.Status = migrate.StatusFailed
		case len(r.Problems) > 0:
			r.Status = preflightProblems
		default:
			r.Status = preflightReady
		}
	}()
	src, err := p.OpenSource(ctx)
	if err != nil {
		r.Error = "source: " + err.Error()
		return r
	}
	defer src.Close()
	dst, err := p.OpenDest(ctx)
	if err != nil {
		r.Error = "destination: " + err.Error()
		return r
	}
	defer dst.Close()
	srcBoxes, err := src.Mailboxes(ctx)
	if err != nil {
		r.Error = "source: " + err.Error()
		return r
	}
	dstBoxes, err := dst.Mailboxes(ctx)
	if err != nil {
		r.Error = "destination: " + err.Error()
		return r
	}
	plans, skipped := migrate.PlanNames(srcBoxes, dstBoxes, pf.sel, pf.labels)
	r.Skipped = skipped
	if al, ok := providers.As[providers.AppendLimiter](dst); ok {
		r.AppendLimit = al.AppendLimit()
	}
	// Every message's identity, to find what shows in several mailboxes.
	seenIn := map[providers.Fingerprint]int{}
	for _, plan := range plans {
		m, keys := pf.mailbox(ctx, src, dst, plan, r.AppendLimit)
		if m.Error != "" {
			r.Problems = append(r.Problems, fmt.Sprintf("mailbox %q: %s", m.Source, m.Error))
		}
		r.Mailboxes = append(r.Mailboxes, m)
		r.Messages += m.Messages
		r.Bytes += m.Bytes
		r.NoMessageID += m.NoMessageID
		r.TooLarge += m.TooLarge
		if plan.Source.SpecialUse != providers.RoleAll {
			for fp := range keys {
				seenIn[fp]++
			}
		}
		if ctx.Err() != nil {
			return r
		}
	}
	if pf.sample > 0 {
		r.SampleBytes, r.SampleSeconds = pf.measure(ctx, src, r.Mailboxes)
	}
	for _, n := range seenIn {
		if n > 1 {
			r.MultiLabel++
		}
	}
	if r.TooLarge > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d message(s) larger than the destination takes (%s): they would be refused; --max-size leaves them out", r.TooLarge, humanBytes(r.AppendLimit)))
	}
	if r.NoMessageID > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d message(s) without a Message-ID: recognised by their content instead", r.NoMessageID))
	}
	if r.MultiLabel > 0 {
		how := "each is copied once, into its first label folder (--gmail-labels each copies it into every one)"
		if !pf.labels.Once {
			how = "each is copied into every folder it is in (--gmail-labels once copies it once)"
		}
		r.Notes = append(r.Notes, fmt.Sprintf("%d message(s) are in more than one folder (labels): %s", r.MultiLabel, how))
	}
	if q, ok := providers.As[providers.QuotaReporter](dst); ok {
		used, limit, has, err := q.Quota(ctx)
		switch {
		case err != nil:
			r.Notes = append(r.Notes, "destination quota: "+err.Error())
		case has:
			r.HasQuota, r.QuotaUsed, r.QuotaLimit, r.QuotaFree = true, used, limit, max(limit-used, 0)
			if r.Bytes > r.QuotaFree {
				r.Problems = append(r.Problems, fmt.Sprintf("the destination's quota has %s free of %s; the source holds %s", humanBytes(r.QuotaFree), humanBytes(limit), humanBytes(r.Bytes)))
			}
		}
	}
	r.Problems = append(r.Problems, pf.collisions(dst, plans, dstBoxes, &r.Notes)...)
	return r
}

// mailbox counts one source mailbox, and returns the fingerprints of its
// messages.
func (pf preflight) mailbox(ctx context.Context, src, dst providers.Store, plan migrate.MailboxPlan, limit int64) (preflightMailbox, map[providers.Fingerprint]bool) {
	m := preflightMailbox{Source: plan.Source.Name, Dest: plan.Dest, DestExists: plan.DestExists, SizeFrom: "RFC822.SIZE"}
	if nm, ok := providers.As[providers.NameMapper](dst); ok {
		if native := nm.NativeName(plan.Dest); native != plan.Dest {
			m.DestNative = native
		}
	}
	keys := map[providers.Fingerprint]bool{}
	mb, err := src.Mailbox(ctx, plan.Source.Name)
	if err != nil {
		m.Error = err.Error()
		return m, keys
	}
	defer mb.Close()
	err = mb.List(ctx, nil, func(mi providers.MessageInfo) error {
		if !pf.sel.Filter.Match(mi) {
			m.Filtered++
			return nil
		}
		m.Messages++
		m.Bytes += mi.Size
		if mi.Key.MessageID == "" {
			m.NoMessageID++
		}
		if limit > 0 && mi.Size > limit {
			m.TooLarge++
		}
		keys[mi.Key.Fingerprint] = true
		return nil
	})
	if err != nil {
		m.Error = err.Error()
		return m, keys
	}
	// The server's own count and size, where it tells them, for the
	// mailbox as a whole (filters need the listing).
	if sz, ok := providers.As[providers.MailboxSizer](src); ok && pf.sel.Filter.IsZero() {
		if n, b, ok, err := sz.MailboxSize(ctx, plan.Source.Name); err == nil && ok {
			m.Messages, m.Bytes, m.SizeFrom = n, b, "STATUS=SIZE"
		}
	}
	return m, keys
}

// measure reads message bodies from the source, up to pf.sample bytes
// from the largest mailbox, and reports how many bytes in how long.
func (pf preflight) measure(ctx context.Context, src providers.Store, boxes []preflightMailbox) (int64, float64) {
	var biggest *preflightMailbox
	for i := range boxes {
		if boxes[i].Error == "" && (biggest == nil || boxes[i].Bytes > biggest.Bytes) {
			biggest = &boxes[i]
		}
	}
	if biggest == nil || biggest.Bytes == 0 {
		return 0, 0
	}
	mb, err := src.Mailbox(ctx, biggest.Source)
	if err != nil {
		return 0, 0
	}
	defer mb.Close()
	var uids []providers.UID
	var total int64
	if err := mb.List(ctx, nil, func(mi providers.MessageInfo) error {
		if total < pf.sample {
			uids = append(uids, mi.UID)
			total += mi.Size
		}
		return nil
	}); err != nil || len(uids) == 0 {
		return 0, 0
	}
	start := time.Now()
	var read int64
	err = mb.Fetch(ctx, uids, func(_ providers.UID, _ int64, body io.Reader) error {
		n, err := io.Copy(io.Discard, body)
		read += n
		return err
	})
	if err != nil {
		return 0, 0
	}
	return read, time.Since(start).Seconds()
}

// collisions finds destination names that clash or cannot be: problems,
// and names that change on the way: notes.
func (pf preflight) collisions(dst providers.Store, plans []migrate.MailboxPlan, dstBoxes []providers.MailboxInfo, notes *[]string) []string {
	var problems []string
	sep := rune(0)
	nm, hasNames := providers.As[providers.NameMapper](dst)
	if hasNames {
		sep = nm.Separator()
	}
	byDest := map[string][]string{}
	var dests []string
	for _, p := range plans {
		if len(byDest[p.Dest]) == 0 {
			dests = append(dests, p.Dest)
		}
		byDest[p.Dest] = append(byDest[p.Dest], p.Source.Name)
	}
	for _, d := range dests {
		if from := byDest[d]; len(from) > 1 {
			*notes = append(*notes, fmt.Sprintf("%s all go to %q and are merged there", quoteList(from), d))
		}
	}
	// Names equal but for case: one mailbox on a server that folds case.
	folded := map[string][]string{}
	for _, d := range dests {
		folded[strings.ToLower(d)] = append(folded[strings.ToLower(d)], d)
	}
	for _, b := range dstBoxes {
		k := strings.ToLower(b.Name)
		if list := folded[k]; len(list) > 0 && !slices.Contains(list, b.Name) {
			folded[k] = append(list, b.Name+" (on the destination)")
		}
	}
	for _, d := range dests {
		list := folded[strings.ToLower(d)]
		if len(list) < 2 || list[0] != d {
			continue
		}
		if pf.caseBlind {
			problems = append(problems, fmt.Sprintf("%s differ only in case: the destination folds case, so they would be one mailbox; map one with --map-folder", quoteList(list)))
		} else {
			*notes = append(*notes, fmt.Sprintf("%s differ only in case: on a server that folds case (Exchange, Gmail) they would be one mailbox", quoteList(list)))
		}
	}
	sources := map[string]int{}
	for _, p := range plans {
		sources[p.Source.Name]++
	}
	for name, n := range sources {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("%d source mailboxes read as %q (names that differ only in case, or INBOX spelled otherwise): they would be merged", n, name))
		}
	}
	for _, p := range plans {
		d := p.Dest
		if why := pf.reserved(d, p.DestExists); why != "" {
			problems = append(problems, fmt.Sprintf("%q: %s; map it with --map-folder", d, why))
			continue
		}
		if why := refusedName(d); why != "" {
			problems = append(problems, fmt.Sprintf("%q cannot be a mailbox name on the destination: %s; map it with --map-folder", d, why))
			continue
		}
		if sep != 0 && sep != '/' {
			for _, part := range strings.Split(d, "/") {
				if strings.ContainsRune(part, sep) {
					native := d
					if hasNames {
						native = nm.NativeName(d)
					}
					*notes = append(*notes, fmt.Sprintf("%q holds %q, the destination's separator: it becomes %q there", d, string(sep), native))
					break
				}
			}
		}
	}
	return problems
}

// refusedName says why servers refuse a mailbox name, "" if they take it:
// control characters, LIST's wildcards, an empty level, spaces at the
// ends of a level.
func refusedName(name string) string {
	for _, part := range strings.Split(name, "/") {
		switch {
		case part == "":
			return "an empty level"
		case strings.ContainsFunc(part, unicode.IsControl):
			return "a control character"
		case strings.ContainsAny(part, "*%"):
			return "'*' or '%', LIST's wildcards"
		case strings.TrimSpace(part) != part:
			return "spaces at the start or end of a level"
		}
	}
	return ""
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, " and ")
}

// waveEstimate is the wave's size and how long it may take.
type waveEstimate struct {
	Accounts, Ready int
	Messages        int
	Bytes           int64
	Rate            float64 // bytes per second read from the source, one stream
	Concurrency     int
	Duration        time.Duration // 0 when unknown
}

func estimate(sums []preflightAccount, concurrency int) waveEstimate {
	e := waveEstimate{Accounts: len(sums), Concurrency: max(concurrency, 1)}
	var sb int64
	var ss float64
	for _, s := range sums {
		e.Messages += s.Messages
		e.Bytes += s.Bytes
		sb += s.SampleBytes
		ss += s.SampleSeconds
		if s.Status == preflightReady {
			e.Ready++
		}
	}
	if sb > 0 && ss > 0 {
		e.Rate = float64(sb) / ss
		streams := min(e.Concurrency, max(e.Accounts, 1))
		e.Duration = time.Duration(float64(e.Bytes) / (e.Rate * float64(streams)) * float64(time.Second))
	}
	return e
}

func printPreflight(w io.Writer, sums []preflightAccount, est waveEstimate, verbose bool, took time.Duration) {
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tDESTINATION\tSTATUS\tMAILBOXES\tMESSAGES\tSIZE\tNO MESSAGE-ID\tTOO LARGE\tQUOTA FREE\tPROBLEMS\t")
	var mailboxes, noID, tooLarge int
	for _, s := range sums {
		quota := "-"
		if s.HasQuota {
			quota = humanBytes(s.QuotaFree)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%d\t\n", s.Source, s.Dest, s.Status, len(s.Mailboxes), s.Messages, humanBytes(s.Bytes),
			s.NoMessageID, s.TooLarge, quota, len(s.Problems))
		mailboxes, noID, tooLarge = mailboxes+len(s.Mailboxes), noID+s.NoMessageID, tooLarge+s.TooLarge
	}
	fmt.Fprintf(tw, "TOTAL\t\t%s\t%d\t%d\t%s\t%d\t%d\t\t\t\n", statusCounts(sums, func(s preflightAccount) string { return s.Status }),
		mailboxes, est.Messages, humanBytes(est.Bytes), noID, tooLarge)
	tw.Flush()
	for _, s := range sums {
		if s.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Source, s.Error)
		}
		for _, p := range s.Problems {
			fmt.Fprintf(w, "  %s: %s\n", s.Source, p)
		}
		if verbose {
			for _, n := range s.Notes {
				fmt.Fprintf(w, "  %s: note: %s\n", s.Source, n)
			}
		}
	}
	if verbose {
		for _, s := range sums {
			if len(s.Mailboxes) == 0 {
				continue
			}
			fmt.Fprintf(w, "\naccount %s -> %s\n", s.Source, s.Dest)
			tw := newTable(w)
			fmt.Fprintln(tw, "MAILBOX\tDESTINATION\tMESSAGES\tSIZE\tFROM\tNO MESSAGE-ID\tTOO LARGE\t")
			for _, m := range s.Mailboxes {
				dest := m.Dest
				if !m.DestExists {
					dest += " (new)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t\n", m.Source, dest, m.Messages, humanBytes(m.Bytes), m.SizeFrom, m.NoMessageID, m.TooLarge)
			}
			tw.Flush()
			for _, sk := range s.Skipped {
				fmt.Fprintf(w, "  skipped %q: %s\n", sk.Mailbox, sk.Reason)
			}
		}
	}
	fmt.Fprintf(w, "\nwave: %d of %d account(s) ready, %d message(s), %s", est.Ready, est.Accounts, est.Messages, humanBytes(est.Bytes))
	if est.Duration > 0 {
		d := est.Duration.Round(time.Second)
		if d == 0 {
			d = est.Duration.Round(time.Millisecond)
		}
		fmt.Fprintf(w, "; estimated %s at %s/s read from the source per account, %d account(s) at once (the destination's write rate is not measured: the first accounts of the run show it)",
			d, humanBytes(int64(est.Rate)), min(est.Concurrency, max(est.Accounts, 1)))
	}
	fmt.Fprintf(w, "\nchecked in %s", took.Round(time.Millisecond))
	if !verbose {
		fmt.Fprint(w, "; -v lists every mailbox and note (so does the JSON --report)")
	}
	fmt.Fprintln(w)
}

func preflightTable(sums []preflightAccount) table {
	t := table{header: []string{"source_user", "dest_user", "status", "mailboxes", "messages", "bytes", "no_message_id", "too_large",
		"quota_free", "multi_label", "problems", "error"}}
	for _, s := range sums {
		quota := ""
		if s.HasQuota {
			quota = strconv.FormatInt(s.QuotaFree, 10)
		}
		t.rows = append(t.rows, []string{s.Source, s.Dest, s.Status, strconv.Itoa(len(s.Mailboxes)), strconv.Itoa(s.Messages),
			strconv.FormatInt(s.Bytes, 10), strconv.Itoa(s.NoMessageID), strconv.Itoa(s.TooLarge), quota, strconv.Itoa(s.MultiLabel),
			strings.Join(s.Problems, "; "), s.Error})
	}
	return t
}
