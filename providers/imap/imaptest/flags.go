package imaptest

import (
	"strconv"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// AddFlags adds flags to the messages uids of a user's mailbox, as a mail
// client of the user would, with doveadm.
func (d *Dovecot) AddFlags(tb testing.TB, user, mailbox string, flags []string, uids ...uint32) {
	tb.Helper()
	set := make([]string, len(uids))
	for i, u := range uids {
		set[i] = strconv.FormatUint(uint64(u), 10)
	}
	d.Doveadm(tb, "flags", "add", "-u", user, strings.Join(flags, " "), "mailbox", mailbox, "uid", strings.Join(set, ","))
}

// AddFlags adds flags to the messages uids of a user's mailbox over IMAP.
func (cy *Cyrus) AddFlags(tb testing.TB, user, mailbox string, flags []string, uids ...uint32) {
	tb.Helper()
	fl := make([]goimap.Flag, 0, len(flags))
	for _, f := range flags {
		fl = append(fl, goimap.Flag(f))
	}
	cy.selected(tb, user, mailbox, uids, func(c *imapclient.Client, set goimap.UIDSet) error {
		return c.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: fl}, nil).Close()
	})
}
