package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// labMessages spreads n messages of one user over labFolders: every
// mailbox exists, as it does for a real user, even the empty ones.
func labMessages(n int, seed uint64) map[string][]imaptest.SeedMessage {
	out := map[string][]imaptest.SeedMessage{}
	for _, f := range imaptest.LabFolders {
		out[f.Name] = nil
	}
	for i, box := range imaptest.LabSpread(n, rand.New(rand.NewPCG(seed, 3))) {
		msgs, _ := peerMessages(box, 1, seed*1000+uint64(i), 0.05)
		m := msgs[0]
		m.InternalDate = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		out[box] = append(out[box], m)
	}
	return out
}

// fleet is a case of many ordinary users: users accounts with msgs
// messages over labFolders each, migrated par at a time.
type fleet struct {
	prefix     string
	users, msg int
	par        int
}

func (f fleet) names() []string {
	out := make([]string, f.users)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", f.prefix, i)
	}
	return out
}

// seed adds the fleet's users to logins and their mail to src; it returns
// the bytes seeded.
func (f fleet) seed(tb testing.TB, src *imaptest.Dovecot) int64 {
	var total int64
	for i, u := range f.names() {
		boxes := labMessages(f.msg, uint64(1000+i))
		src.SeedAccount(tb, u, boxes)
		for _, msgs := range boxes {
			for _, m := range msgs {
				total += int64(len(m.Raw))
			}
		}
	}
	return total
}

func (f fleet) logins(into map[string]string) {
	for _, u := range f.names() {
		into[u] = "pw-" + u
	}
}

func (f fleet) String() string {
	return fmt.Sprintf("%s users x %d msgs in %d mailboxes, %d at once", commas(f.users), f.msg, len(imaptest.LabFolders), f.par)
}

func commas(n int) string {
	s := fmt.Sprint(n)
	if len(s) <= 3 {
		return s
	}
	return commas(n/1000) + "," + strings.Repeat("0", 3-len(fmt.Sprint(n%1000))) + fmt.Sprint(n%1000)
}
