package migrate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Deep fetches both copies of every message and compares SHA-256
	// hashes of the bytes, not just fingerprints and sizes.
	Deep bool
	// Record marks accounts that pass as verified in the ledger.
	Record bool
	// Select is the migration's folder rules and filters: what they leave
	// out is not expected on the destination.
	Select Selection
	// Labels is the migration's label policy: mail it left to another
	// label folder is not expected in this one.
	Labels LabelPolicy
	Run    uint32
	Logger *slog.Logger
	Events func(Event)
}

func (o VerifyOptions) options() Options {
	return Options{Logger: o.Logger, Events: o.Events}.withDefaults()
}

// Problem is one message or mailbox that does not match.
type Problem struct {
	Mailbox   string        `json:"mailbox"`
	UID       providers.UID `json:"uid,omitempty"`     // source UID
	DstUID    providers.UID `json:"dst_uid,omitempty"` // destination UID, if known
	MessageID string        `json:"message_id,omitempty"`
	What      string        `json:"problem"`
}

// maxProblems bounds the problems listed per mailbox; counts stay exact.
const maxProblems = 100

// VerifyMailbox is the comparison of one source mailbox with its copy.
type VerifyMailbox struct {
	Source   string    `json:"source"`
	Dest     string    `json:"dest"`
	Seen     int       `json:"seen"`     // source messages
	Verified int       `json:"verified"` // present and equal on the destination
	Problems int       `json:"problems"` // messages with a problem
	Details  []Problem `json:"details,omitempty"`
	// Unmatched counts source messages for which the destination, looked
	// at by content alone without the ledger, has no copy.
	Unmatched int `json:"unmatched_by_content"`
	// OtherLabel counts source messages another label folder copied (see
	// LabelPolicy), not in Seen.
	OtherLabel int `json:"in_other_label,omitempty"`
	// Others counts destination messages that are not copies of this
	// mailbox: mail that was there before or arrived since.
	Others int    `json:"others"`
	Error  string `json:"error,omitempty"`
}

// VerifySummary is the verdict for one account pair.
type VerifySummary struct {
	Account   string          `json:"account"`
	Source    string          `json:"source_user"`
	Dest      string          `json:"dest_user"`
	Pass      bool            `json:"pass"`
	Mailboxes []VerifyMailbox `json:"mailboxes"`
	Duration  time.Duration   `json:"duration_ns"`
	Error     string          `json:"error,omitempty"`
}

func (m *VerifyMailbox) problem(p Problem) {
	m.Problems++
	if len(m.Details) < maxProblems {
		m.Details = append(m.Details, p)
	}
}

// Verify compares every source mailbox with its copy on the destination,
// through the ledger (each copied message present at its recorded UID, same
// fingerprint, size, flags and internal date) and, independently of the
// ledger, by content (every source message has a destination message with
// its fingerprint). It changes nothing on either side.
func Verify(ctx context.Context, a BatchAccount, src, dst providers.Store, lg ledger.Ledger, opts VerifyOptions) (VerifySummary, error) {
	start := time.Now()
	sum := VerifySummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser}
	finish := func(err error) (VerifySummary, error) {
		sum.Duration = time.Since(start)
		if err != nil {
			sum.Error = err.Error()
		}
		sum.Pass = err == nil
		for _, m := range sum.Mailboxes {
			if m.Problems > 0 || m.Unmatched > 0 || m.Error != "" {
				sum.Pass = false
			}
		}
		if acc, _, _ := lg.Account(a.ID); !acc.Cutover.IsZero() {
			opts.Record = false // after cutover the state says so; keep it
		}
		if sum.Pass && opts.Record {
			if err := setAccountState(lg, a, ledger.AccountVerified, "", opts.Run); err != nil {
				sum.Pass, sum.Error = false, err.Error()
				return sum, err
			}
		}
		return sum, err
	}
	boxes, err := src.Mailboxes(ctx)
	if err != nil {
		return finish(fmt.Errorf("list source mailboxes: %w", err))
	}
	slices.SortFunc(boxes, func(x, y providers.MailboxInfo) int { return strings.Compare(x.Name, y.Name) })
	elsewhere, err := settledFingerprints(lg, a.ID, opts.Labels)
	if err != nil {
		return finish(err)
	}
	for _, b := range boxes {
		if opts.Select.skips(b.Name) != "" || opts.Labels.leavesOut(b) {
			continue // never copied, see planMailboxes
		}
		rec, ok, err := lg.Mailbox(a.ID, b.Name)
		if err != nil {
			return finish(providers.WithClass(providers.ClassRun, err))
		}
		vm := VerifyMailbox{Source: b.Name, Dest: rec.Dest}
		if !ok {
			n, err := messageCount(ctx, src, b)
			if err != nil {
				return finish(err)
			}
			if n == 0 {
				continue // an empty folder the next migrate creates; no mail at stake
			}
			vm.Dest, vm.Seen = "?", n
			vm.problem(Problem{Mailbox: b.Name, What: fmt.Sprintf("mailbox with %d message(s) not migrated: no checkpoint record (run migrate)", n)})
		} else if err := verifyMailbox(ctx, a, src, dst, lg, rec, &vm, opts, elsewhere.forMailbox(b, opts.Labels)); err != nil {
			vm.Error = err.Error()
			if stopsAccount(err) {
				sum.Mailboxes = append(sum.Mailboxes, vm)
				return finish(err)
			}
		}
		sum.Mailboxes = append(sum.Mailboxes, vm)
		opts.options().emit(Event{Kind: EventVerifyMailbox, ID: a.ID, Mailbox: b.Name, Count: vm.Problems})
	}
	return finish(nil)
}

// verifyMailbox compares one mailbox. elsewhere, if not nil, holds the
// fingerprints other label folders copied: a message with no record here
// and one of them was left to that folder.
func verifyMailbox(ctx context.Context, a BatchAccount, src, dst providers.Store, lg ledger.Ledger, rec ledger.MailboxRecord, vm *VerifyMailbox, opts VerifyOptions, elsewhere func(string, providers.Fingerprint) bool) error {
	sm, err := src.Mailbox(ctx, rec.Source)
	if err != nil {
		return fmt.Errorf("open source mailbox %q: %w", rec.Source, err)
	}
	defer sm.Close()
	dm, err := dst.Mailbox(ctx, rec.Dest)
	if err != nil {
		return fmt.Errorf("open destination mailbox %q: %w", rec.Dest, err)
	}
	defer dm.Close()
	srcValidity, dstValidity := sm.Info().UIDValidity, dm.Info().UIDValidity
	srcMsgs, err := listAll(ctx, sm)
	if err != nil {
		return fmt.Errorf("read source mailbox %q: %w", rec.Source, err)
	}
	if !opts.Select.Filter.IsZero() {
		// The messages migrate selected, asked the same way it asked.
		uids, err := providers.Select(ctx, sm, opts.Select.Filter)
		if err != nil {
			return fmt.Errorf("search source mailbox %q: %w", rec.Source, err)
		}
		srcMsgs = slices.DeleteFunc(srcMsgs, func(m providers.MessageInfo) bool {
			_, found := slices.BinarySearch(uids, m.UID)
			return !found
		})
	}
	dstMsgs, err := listAll(ctx, dm)
	if err != nil {
		return fmt.Errorf("read destination mailbox %q: %w", rec.Dest, err)
	}
	dstByUID := make(map[providers.UID]providers.MessageInfo, len(dstMsgs))
	for _, m := range dstMsgs {
		dstByUID[m.UID] = m
	}
	recs := map[providers.UID]ledger.Record{}
	claimed := map[providers.UID]bool{}
	if err := lg.Records(a.ID, rec.Source, func(r ledger.Record) error {
		if r.SrcValidity == srcValidity {
			recs[providers.UID(r.SrcUID)] = r
		}
		if r.DstValidity == dstValidity && r.Status.Settled() {
			claimed[providers.UID(r.DstUID)] = true
		}
		return nil
	}); err != nil {
		return providers.WithClass(providers.ClassRun, err)
	}
	if elsewhere != nil {
		n := len(srcMsgs)
		srcMsgs = slices.DeleteFunc(srcMsgs, func(m providers.MessageInfo) bool {
			r, ok := recs[m.UID]
			return (!ok || r.Status == ledger.StatusRemoved) && elsewhere(rec.Source, m.Key.Fingerprint)
		})
		vm.OtherLabel = n - len(srcMsgs)
	}
	vm.Seen = len(srcMsgs)
	cameBack, err := copiedBack(lg, a.ID, rec.Source, srcValidity)
	if err != nil {
		return err
	}
	pairs := map[providers.UID]providers.UID{} // copies to compare deeply
	crlf := map[providers.UID]bool{}           // of those, the ones stored with CRLF line ends
	for _, m := range srcMsgs {
		p := Problem{Mailbox: rec.Source, UID: m.UID, MessageID: m.Key.MessageID}
		r, ok := recs[m.UID]
		switch {
		case cameBack[m.UID]:
			// Reverse copied it here from the destination: not mail to
			// migrate, and its origin is there.
		case !ok || r.Status == ledger.StatusPending || r.Status == ledger.StatusRemoved:
			p.What = "not copied yet (run migrate)"
		case r.Status == ledger.StatusFailed:
			p.What = "refused by the destination: " + r.Reason
		case r.DstValidity != dstValidity:
			p.What = "destination mailbox was recreated since the copy (run migrate to find the copies again)"
		case r.DstUID == 0:
			p.What = "copied, but the destination UID is unknown"
		default:
			p.DstUID = providers.UID(r.DstUID)
			d, present := dstByUID[p.DstUID]
			sameIdentity := d.Key.MessageID != "" && d.Key.MessageID == m.Key.MessageID && d.Key.Loose == m.Key.Loose
			asCRLF := storedAsCRLF(m, d)
			switch {
			case !present:
				p.What = "missing on the destination (deleted or moved there?)"
			case r.Status == ledger.StatusDuplicate && sameIdentity:
				// The user's own earlier copy, perhaps with a header another
				// tool added: its size, flags and date are theirs.
			case d.Key.Fingerprint != m.Key.Fingerprint && !sameIdentity && !asCRLF:
				p.What = "the destination UID holds another message"
			case d.Size != m.Size && !asCRLF:
				p.What = fmt.Sprintf("size differs: source %d, destination %d bytes", m.Size, d.Size)
				if cs := crlfSize(m); cs != m.Size {
					p.What += fmt.Sprintf(" (%d with CRLF line ends)", cs)
				}
			case r.Status == ledger.StatusDuplicate:
				// The user's own earlier copy: its flags and date are theirs.
			case !sameFlags(m.Flags, d.Flags):
				p.What = fmt.Sprintf("flags differ: source %v, destination %v", cleanFlags(m.Flags), cleanFlags(d.Flags))
			case m.InternalDate.Unix() != d.InternalDate.Unix():
				p.What = fmt.Sprintf("internal date differs: source %s, destination %s",
					m.InternalDate.UTC().Format(time.RFC3339), d.InternalDate.UTC().Format(time.RFC3339))
			}
			if p.What == "" && r.Status == ledger.StatusCopied {
				pairs[m.UID] = p.DstUID
				crlf[m.UID] = asCRLF
			}
		}
		if p.What != "" {
			vm.problem(p)
		} else {
			vm.Verified++
		}
	}
	// Without the ledger: every source message needs a destination message
	// with its fingerprint (multiset: two identical need two copies).
	// Then, for the rest, by Message-ID and loose fingerprint, as migrate
	// matches copies whose size the destination changed, and last as the
	// destination stores a message with bare LFs: with CRLF line ends.
	p := newPool()
	asStored := map[crlfKey][]providers.UID{}
	for _, d := range dstMsgs {
		p.add(d)
		if crlfSize(d) == d.Size {
			k := crlfKey{d.Key.Loose, d.Size}
			asStored[k] = append(asStored[k], d.UID)
		}
	}
	var rest []providers.MessageInfo
	for _, m := range srcMsgs {
		if cameBack[m.UID] {
			continue
		}
		if _, ok := p.takeFingerprint(m.Key.Fingerprint, 0); !ok {
			rest = append(rest, m)
		}
	}
	var unmatched []providers.MessageInfo
	for _, m := range rest {
		if _, ok := p.takeIdentity(m.Key, 0); !ok {
			unmatched = append(unmatched, m)
		}
	}
	for _, m := range unmatched {
		k := crlfKey{m.Key.Loose, crlfSize(m)}
		i := slices.IndexFunc(asStored[k], func(u providers.UID) bool { return !p.taken[u] })
		if i < 0 {
			vm.Unmatched++
			continue
		}
		p.taken[asStored[k][i]] = true
	}
	for _, d := range dstMsgs {
		if !claimed[d.UID] {
			vm.Others++
		}
	}
	if opts.Deep && len(pairs) > 0 {
		return deepCompare(ctx, sm, dm, rec.Source, pairs, crlf, vm)
	}
	return nil
}

// crlfSize is the size of a message with every bare LF made CRLF, as a
// store that counts it tells (providers.MessageInfo.CRLFSize), else its
// size: IMAP servers serve CRLF.
func crlfSize(m providers.MessageInfo) int64 {
	if m.CRLFSize > 0 {
		return m.CRLFSize
	}
	return m.Size
}

// storedAsCRLF reports whether the destination holds the source message
// the way an IMAP server stores one with bare LFs (an mbox file with LF
// line ends): the same key fields and start of the body, the size of its
// CRLF form, and no bare LF left.
func storedAsCRLF(src, dst providers.MessageInfo) bool {
	return src.Size != dst.Size && src.Key.Loose == dst.Key.Loose && crlfSize(src) == dst.Size && crlfSize(dst) == dst.Size
}

// crlfKey finds a destination message by what is left of its source
// message's identity once line ends are CRLF.
type crlfKey struct {
	loose providers.Fingerprint
	size  int64
}

// copiedBack is the set of UIDs of a source mailbox that reverse copied
// there from the destination, as its own ledger records them.
func copiedBack(lg ledger.Ledger, account, mailbox string, validity uint32) (map[providers.UID]bool, error) {
	out := map[providers.UID]bool{}
	back := ReverseID(account)
	var from []string // destination mailboxes whose mail reverse writes to mailbox
	err := lg.Mailboxes(back, func(name string, rec ledger.MailboxRecord) error {
		if rec.Dest == mailbox {
			from = append(from, name)
		}
		return nil
	})
	for _, name := range from {
		if err != nil {
			break
		}
		err = lg.Records(back, name, func(r ledger.Record) error {
			if r.Status.Settled() && r.DstValidity == validity && r.DstUID != 0 {
				out[providers.UID(r.DstUID)] = true
			}
			return nil
		})
	}
	if err != nil {
		return nil, providers.WithClass(providers.ClassRun, err)
	}
	return out, nil
}

// messageCount is the number of messages in a mailbox, from its listing
// if the store gave one, else by opening it.
func messageCount(ctx context.Context, s providers.Store, b providers.MailboxInfo) (int, error) {
	if b.Messages >= 0 {
		return b.Messages, nil
	}
	mb, err := s.Mailbox(ctx, b.Name)
	if err != nil {
		return 0, fmt.Errorf("open source mailbox %q: %w", b.Name, err)
	}
	defer mb.Close()
	return max(mb.Info().Messages, 0), nil
}

func listAll(ctx context.Context, mb providers.Mailbox) ([]providers.MessageInfo, error) {
	var out []providers.MessageInfo
	err := mb.List(ctx, nil, func(m providers.MessageInfo) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// deepCompare hashes both copies of each pair, streaming, and reports
// those whose bytes differ. A source message the destination stores with
// CRLF line ends (crlf) is hashed as it stores it.
func deepCompare(ctx context.Context, sm, dm providers.Mailbox, mailbox string, pairs map[providers.UID]providers.UID, crlf map[providers.UID]bool, vm *VerifyMailbox) error {
	hashes := func(mb providers.Mailbox, uids []providers.UID, crlf map[providers.UID]bool) (map[providers.UID][32]byte, error) {
		out := make(map[providers.UID][32]byte, len(uids))
		slices.Sort(uids)
		err := mb.Fetch(ctx, uids, func(uid providers.UID, _ int64, body io.Reader) error {
			h := sha256.New()
			var w io.Writer = h
			if crlf[uid] {
				w = &crlfWriter{w: h}
			}
			if _, err := io.Copy(w, body); err != nil {
				return err
			}
			out[uid] = [32]byte(h.Sum(nil))
			return nil
		})
		return out, err
	}
	var srcUIDs, dstUIDs []providers.UID
	for s, d := range pairs {
		srcUIDs = append(srcUIDs, s)
		dstUIDs = append(dstUIDs, d)
	}
	sh, err := hashes(sm, srcUIDs, crlf)
	if err != nil {
		return fmt.Errorf("hash source messages: %w", err)
	}
	dh, err := hashes(dm, dstUIDs, nil)
	if err != nil {
		return fmt.Errorf("hash destination messages: %w", err)
	}
	for _, s := range slices.Sorted(maps.Keys(pairs)) {
		if sh[s] != dh[pairs[s]] {
			vm.Verified--
			vm.problem(Problem{Mailbox: mailbox, UID: s, DstUID: pairs[s], What: "bytes differ (deep check)"})
		}
	}
	return nil
}

// crlfWriter writes what it is given with every bare LF made CRLF.
type crlfWriter struct {
	w    io.Writer
	prev byte
	buf  []byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	c.buf = c.buf[:0]
	for _, b := range p {
		if b == '\n' && c.prev != '\r' {
			c.buf = append(c.buf, '\r')
		}
		c.buf = append(c.buf, b)
		c.prev = b
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// cleanFlags is a flag set as compared: without \Recent, lower case (IMAP
// flags are case-insensitive), sorted.
func cleanFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, strings.ToLower(f))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sameFlags(a, b []string) bool { return slices.Equal(cleanFlags(a), cleanFlags(b)) }

// VerifyBatch runs Verify for each account, concurrency at a time.
func VerifyBatch(ctx context.Context, accts []BatchAccount, lg ledger.Ledger, concurrency int, opts VerifyOptions) []VerifySummary {
	bopts := BatchOptions{Options: opts.options(), LoginRetries: 5}
	return forEachPair(ctx, accts, concurrency, bopts, func(a BatchAccount, src, dst providers.Store) VerifySummary {
		sum, _ := Verify(ctx, a, src, dst, lg, opts)
		return sum
	}, func(a BatchAccount, err error) VerifySummary {
		return VerifySummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Error: err.Error()}
	}, func(a BatchAccount, _ error) VerifySummary {
		return VerifySummary{Account: a.ID, Source: a.SourceUser, Dest: a.DestUser, Error: "interrupted before it started"}
	})
}
