package migrate

// Flag changes made on the source since a message was copied (delta
// sync before cutover).

import (
	"context"
	"fmt"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// syncFlags sets the flags of earlier copies to the source's, for flag
// changes made on the source since (delta sync before cutover).
func (c *mailboxCopy) syncFlags(ctx context.Context) error {
	setter, ok := providers.As[providers.FlagSetter](c.r.acct.Dest)
	if c.r.opts.NoFlagSync || c.r.opts.DryRun || !ok {
		return nil
	}
	c.mu.Lock()
	pairs := map[providers.UID]providers.UID{}
	for k, rec := range c.recs {
		// A copy made by this run has the flags the source had when it was
		// listed a moment ago: nothing to compare (a first run reads no
		// flags at all).
		if rec.Status == ledger.StatusCopied && k.SrcValidity == c.srcInfo.UIDValidity && !c.sent[k] &&
			rec.DstValidity == c.dstInfo.UIDValidity && rec.DstUID != 0 {
			pairs[providers.UID(k.SrcUID)] = providers.UID(rec.DstUID)
		}
	}
	c.mu.Unlock()
	if len(pairs) == 0 {
		return nil
	}
	srcFlags, err := flagsOf(ctx, c.src, nil)
	if err != nil {
		return fmt.Errorf("read source flags of %q: %w", c.plan.Source.Name, err)
	}
	dstFlags, err := flagsOf(ctx, c.dst, nil)
	if err != nil {
		return fmt.Errorf("read destination flags of %q: %w", c.plan.Dest, err)
	}
	changes := map[providers.UID][]string{}
	for s, d := range pairs {
		sf, okS := srcFlags[s]
		df, okD := dstFlags[d]
		if okS && okD && !sameFlags(sf, df) {
			changes[d] = providers.AppendFlags(sf)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	// SetFlags takes a connection of the store: give this one back first,
	// or a full connection cap would leave every copy waiting here.
	c.releaseDst()
	if err := setter.SetFlags(ctx, c.plan.Dest, c.dstInfo.UIDValidity, changes); err != nil {
		return err
	}
	c.mu.Lock()
	c.flagsSet += len(changes)
	c.mu.Unlock()
	return nil
}

// flagsOf reads the flags of a mailbox's messages, cheaply if the store
// can.
func flagsOf(ctx context.Context, mb providers.Mailbox, uids []providers.UID) (map[providers.UID][]string, error) {
	out := map[providers.UID][]string{}
	if fl, ok := providers.As[providers.FlagLister](mb); ok {
		err := fl.Flags(ctx, uids, func(u providers.UID, f []string) error {
			out[u] = f
			return nil
		})
		return out, err
	}
	err := mb.List(ctx, uids, func(m providers.MessageInfo) error {
		out[m.UID] = m.Flags
		return nil
	})
	return out, err
}
