package imap

import (
	"context"
	"fmt"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/providers"
)

var (
	_ providers.MailboxSizer  = (*Store)(nil)
	_ providers.QuotaReporter = (*Store)(nil)
	_ providers.NameMapper    = (*Store)(nil)
)

// MailboxSize implements providers.MailboxSizer with STATUS (MESSAGES
// SIZE), where the server offers STATUS=SIZE (RFC 8438) or IMAP4rev2.
func (s *Store) MailboxSize(ctx context.Context, name string) (int, int64, bool, error) {
	if !s.caps.Has(goimap.CapStatusSize) && !s.caps.Has(goimap.CapIMAP4rev2) {
		return 0, 0, false, nil
	}
	native := s.ns.native(name)
	var st *goimap.StatusData
	err := s.with(ctx, func(cn *conn) error {
		var err error
		st, err = cn.c.Status(native, &goimap.StatusOptions{NumMessages: true, Size: true}).Wait()
		return err
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("status %q: %w", native, classify(err, opSelect))
	}
	if st.NumMessages == nil || st.Size == nil {
		return 0, 0, false, nil
	}
	return int(*st.NumMessages), *st.Size, true, nil
}

// Quota implements providers.QuotaReporter with GETQUOTAROOT INBOX, where
// the server offers QUOTA: the STORAGE resource of INBOX's root, which
// RFC 9208 counts in units of 1024 bytes.
func (s *Store) Quota(ctx context.Context) (int64, int64, bool, error) {
	if !s.caps.Has(goimap.CapQuota) {
		return 0, 0, false, nil
	}
	var roots []imapQuota
	err := s.with(ctx, func(cn *conn) error {
		data, err := cn.c.GetQuotaRoot("INBOX").Wait()
		for _, d := range data {
			if r, ok := d.Resources[goimap.QuotaResourceStorage]; ok {
				roots = append(roots, imapQuota{r.Usage, r.Limit})
			}
		}
		return err
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("quota: %w", classify(err, opOther))
	}
	if len(roots) == 0 {
		return 0, 0, false, nil
	}
	// Of several roots, the one with the least room decides.
	best := roots[0]
	for _, r := range roots[1:] {
		if r.limit-r.used < best.limit-best.used {
			best = r
		}
	}
	return best.used << 10, best.limit << 10, true, nil
}

type imapQuota struct{ used, limit int64 }

// NativeName implements providers.NameMapper.
func (s *Store) NativeName(name string) string { return s.ns.native(name) }

// Separator implements providers.NameMapper.
func (s *Store) Separator() rune { return s.ns.delim }
