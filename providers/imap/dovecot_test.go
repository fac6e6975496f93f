package imap_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

func dovecotStore(t *testing.T, d *imaptest.Dovecot, user, pass string) *imap.Store {
	t.Helper()
	st, err := imap.Open(context.Background(), imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: d.Host, Port: d.Port},
		User:     user, Password: providers.Secret(pass), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("imap.Open %s: %v", d.Addr(), err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// lines turns doveadm's view of a mailbox into comparable lines.
func lines(msgs []imaptest.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s %d %v %s", m.SHA256, m.Size, m.Flags, m.InternalDate.Format(time.RFC3339)))
	}
	sort.Strings(out)
	return out
}

func testdataMessages(t *testing.T) [][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("testdata: %v", err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestDovecotToDovecot migrates between two real Dovecot servers with
// different hierarchy separators, namespace prefixes and special-use names,
// and checks the result with doveadm, independently of mailferry's code.
func TestDovecotToDovecot(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": "src-pw"}})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{
		Users:     map[string]string{"alice": "dst-pw"},
		Separator: ".", Prefix: "INBOX.",
		SpecialUse: map[string]string{"Sent Items": `\Sent`, "Deleted Items": `\Trash`, "Drafts": `\Drafts`},
	})
	date := time.Date(2023, 6, 7, 8, 9, 10, 0, time.UTC)
	var inbox []imaptest.SeedMessage
	for i := range 60 {
		inbox = append(inbox, imaptest.SeedMessage{Raw: raw(i, 800), Flags: []string{`\Seen`}, InternalDate: date.Add(time.Duration(i) * time.Hour)})
	}
	inbox[3].Flags = []string{`\Answered`, `\Flagged`, "$Forwarded", "Custom1"}
	inbox[4].Flags = []string{`\Draft`, "$Label1"}
	inbox = append(inbox, imaptest.SeedMessage{Raw: raw(9, 800), Flags: []string{`\Seen`}, InternalDate: inbox[9].InternalDate}) // identical copy
	inbox = append(inbox, imaptest.SeedMessage{Raw: raw(7777, 2<<20), InternalDate: date})                                       // 2 MB
	inbox = append(inbox, imaptest.SeedMessage{Raw: []byte("From: a@b\nSubject: bare LF, no id\n\nline\nline\n"), InternalDate: date})
	for i, m := range testdataMessages(t) {
		inbox = append(inbox, imaptest.SeedMessage{Raw: m, Flags: []string{"Corpus"}, InternalDate: date.Add(time.Duration(i) * time.Minute)})
	}
	src.Seed(t, "alice", "INBOX", inbox)
	src.Seed(t, "alice", "Sent", []imaptest.SeedMessage{{Raw: raw(100, 300), Flags: []string{`\Seen`}, InternalDate: date}})
	src.Seed(t, "alice", "Trash", []imaptest.SeedMessage{{Raw: raw(101, 300), Flags: []string{`\Seen`, `\Deleted`}, InternalDate: date}})
	src.Seed(t, "alice", "Work/Projects/2024", []imaptest.SeedMessage{{Raw: raw(102, 300), InternalDate: date}})
	src.Seed(t, "alice", "v1.2 release", []imaptest.SeedMessage{{Raw: raw(103, 300), InternalDate: date}})
	src.Seed(t, "alice", "Entwürfe alt", []imaptest.SeedMessage{{Raw: raw(104, 300), InternalDate: date}})
	src.CreateMailbox(t, "alice", "Empty")
	src.Doveadm(t, "mailbox", "subscribe", "-u", "alice", "Work/Projects/2024")
	// Already on the destination: must not be copied again.
	dst.Seed(t, "alice", "INBOX", inbox[10:11])

	ledger, err := checkpoint.Open(filepath.Join(t.TempDir(), "run.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	acct := migrate.Account{ID: "alice", Source: dovecotStore(t, src, "alice", "src-pw"), Dest: dovecotStore(t, dst, "alice", "dst-pw")}
	sum, err := migrate.Migrate(context.Background(), acct, ledger, migrate.Options{BatchSize: 16})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !sum.OK() {
		t.Fatalf("not OK: %+v", sum)
	}
	tot := sum.Totals()
	if tot.Duplicate != 1 || tot.Copied+tot.Duplicate != tot.Seen || tot.Seen != len(inbox)+5 {
		t.Errorf("totals %+v: want %d seen, 1 duplicate, the rest copied", tot, len(inbox)+5)
	}

	mapping := map[string]string{
		"INBOX": "INBOX", "Sent": "INBOX.Sent Items", "Trash": "INBOX.Deleted Items",
		"Work/Projects/2024": "INBOX.Work.Projects.2024", "v1.2 release": "INBOX.v1․2 release",
		"Entwürfe alt": "INBOX.Entwürfe alt", "Empty": "INBOX.Empty",
	}
	for from, to := range mapping {
		want := lines(src.Messages(t, "alice", from))
		got := lines(dst.Messages(t, "alice", to))
		// In INBOX, the message that was already there stands for its
		// source copy: it must be there once, not twice.
		if !slices.Equal(got, want) {
			t.Errorf("%s -> %s:\n got %d messages %v\nwant %d messages %v", from, to, len(got), got, len(want), want)
		}
	}
	boxes := dst.Mailboxes(t, "alice")
	for _, unwanted := range []string{"INBOX.Sent", "INBOX.Trash"} {
		if slices.Contains(boxes, unwanted) {
			t.Errorf("destination has %q: special-use mailboxes must map by role", unwanted)
		}
	}
	// The whole folder set: each source folder where the mapping says, any
	// other under the prefix with the other separator, plus the hierarchy
	// parents the destination needs, and nothing else.
	want := []string{"INBOX.Work", "INBOX.Work.Projects"}
	for _, b := range src.Mailboxes(t, "alice") {
		to, ok := mapping[b]
		if !ok {
			to = "INBOX." + strings.ReplaceAll(b, "/", ".")
		}
		if !slices.Contains(want, to) {
			want = append(want, to)
		}
	}
	slices.Sort(want)
	got := slices.Clone(boxes)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("destination folders:\n got %q\nwant %q", got, want)
	}
	if subs := dst.Subscriptions(t, "alice"); !slices.Contains(subs, "INBOX.Work.Projects.2024") {
		t.Errorf("subscriptions %v lack INBOX.Work.Projects.2024", subs)
	}

	// A re-run reads no body and appends nothing.
	before := len(dst.Messages(t, "alice", "INBOX"))
	start := time.Now()
	sum, err = migrate.Migrate(context.Background(), acct, ledger, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("re-run took %v", time.Since(start))
	if tot := sum.Totals(); tot.New != 0 || !sum.OK() {
		t.Errorf("re-run totals %+v, want nothing new", tot)
	}
	if after := len(dst.Messages(t, "alice", "INBOX")); after != before {
		t.Errorf("re-run changed INBOX from %d to %d messages", before, after)
	}
	// The source is untouched: flags as seeded (no \Seen added by reading).
	for _, m := range src.Messages(t, "alice", "INBOX") {
		if m.UID == 4 && !slices.Equal(m.Flags, []string{"$Forwarded", "Custom1", `\Answered`, `\Flagged`}) {
			t.Errorf("source message flags changed to %v", m.Flags)
		}
		if m.UID == 5 && slices.Contains(m.Flags, `\Seen`) {
			t.Errorf("reading the source set \\Seen on uid 5: %v", m.Flags)
		}
	}
}

// TestDovecotAdminImpersonation logs in with a master user acting as the
// account (SASL PLAIN authzid), so no user password is needed.
func TestDovecotAdminImpersonation(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{
		Users:      map[string]string{"bob": "bob-secret"},
		MasterUser: "admin", MasterPassword: "admin-secret",
	})
	d.Seed(t, "bob", "INBOX", []imaptest.SeedMessage{{Raw: raw(1, 100), InternalDate: time.Now()}})
	st, err := imap.Open(context.Background(), imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: d.Host, Port: d.Port},
		User:     "bob", Admin: "admin", Password: "admin-secret", Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("Open as admin: %v", err)
	}
	defer st.Close()
	mb, err := st.Mailbox(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if n := mb.Info().Messages; n != 1 {
		t.Errorf("bob's INBOX seen by the admin has %d messages, want 1", n)
	}
	wrongAdminRefused(t, d.Host, d.Port)
}

// wrongAdminRefused checks that the server refuses admin "admin" acting as
// bob with a wrong password, and that the error does not show it.
func wrongAdminRefused(t *testing.T, host string, port int) {
	t.Helper()
	_, err := imap.Open(context.Background(), imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: host, Port: port},
		User:     "bob", Admin: "admin", Password: "wrong", Timeout: 30 * time.Second,
	})
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong admin password: err = %v", err)
	}
}

// TestDovecotChangedSince: after HighestModSeq, ChangedSince reports
// exactly the messages whose flags changed, on a mailbox no client had
// used CONDSTORE on before, and refuses a stale UIDVALIDITY.
func TestDovecotChangedSince(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": "pw"}})
	var msgs []imaptest.SeedMessage
	for i := range 4 {
		msgs = append(msgs, imaptest.SeedMessage{Raw: raw(i, 200), InternalDate: time.Now()})
	}
	d.Seed(t, "alice", "INBOX", msgs)
	st := dovecotStore(t, d, "alice", "pw")
	d.Doveadm(t, "flags", "add", "-u", "alice", "$Before", "mailbox", "INBOX", "uid", "4")
	validity, modseq, err := st.HighestModSeq(context.Background(), "INBOX")
	if err != nil || modseq == 0 {
		t.Fatalf("HighestModSeq: %d, %v", modseq, err)
	}
	d.Doveadm(t, "flags", "add", "-u", "alice", `\Seen`, "mailbox", "INBOX", "uid", "2")
	var changed []providers.UID
	err = st.ChangedSince(context.Background(), "INBOX", validity, modseq, func(u providers.UID, f []string) error {
		changed = append(changed, u)
		if !slices.Contains(f, `\Seen`) {
			t.Errorf("uid %d reported with flags %v", u, f)
		}
		return nil
	})
	if err != nil || !slices.Equal(changed, []providers.UID{2}) {
		t.Errorf("ChangedSince: %v, %v; want exactly uid 2", changed, err)
	}
	if err := st.ChangedSince(context.Background(), "INBOX", validity+1, modseq, func(providers.UID, []string) error { return nil }); !errors.Is(err, providers.ErrUIDValidityChanged) {
		t.Errorf("ChangedSince with a stale UIDVALIDITY: %v", err)
	}
}
