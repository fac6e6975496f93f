package imaptest

import (
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// cyrusClient logs in to cy as user with go-imap, for checks that the
// helpers under test must not do themselves.
func cyrusClient(t *testing.T, cy *Cyrus, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(cy.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func TestStartCyrus(t *testing.T) {
	var dir, addr string
	t.Run("instance", func(t *testing.T) {
		start := time.Now()
		cy := StartCyrus(t, CyrusOptions{Users: map[string]string{"alice": "pw-a", "bob": "pw-b"}, AdminUser: "boss", AdminPassword: "pw-boss"})
		t.Logf("started in %v", time.Since(start))
		dir, addr = cy.Dir, cy.Addr()
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			t.Errorf("listens on %s, want loopback", addr)
		}

		c := cyrusClient(t, cy, "alice", "pw-a")
		ns, err := c.Namespace().Wait()
		if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Prefix != "INBOX." || ns.Personal[0].Delim != '.' {
			t.Fatalf("personal namespace %+v, %v: want INBOX. with '.'", ns, err)
		}
		want := []string{"INBOX", "INBOX.Archive", "INBOX.Drafts", "INBOX.Junk", "INBOX.Sent", "INBOX.Trash"}
		if got := cy.Mailboxes(t, "alice"); !slices.Equal(got, want) {
			t.Errorf("mailboxes %q, want %q", got, want)
		}
		if got := cy.Subscriptions(t, "bob"); !slices.Equal(got, want) {
			t.Errorf("subscriptions %q, want %q", got, want)
		}
		roles := map[string]string{"INBOX.Archive": `\Archive`, "INBOX.Drafts": `\Drafts`, "INBOX.Junk": `\Junk`, "INBOX.Sent": `\Sent`, "INBOX.Trash": `\Trash`}
		if got := cy.SpecialUse(t, "bob"); !maps.Equal(got, roles) {
			t.Errorf("special use %v, want %v", got, roles)
		}

		date := time.Date(2023, 6, 7, 8, 9, 10, 0, time.FixedZone("", 2*3600))
		crlf := []byte("From: a@example.org\r\nSubject: one\r\nMessage-ID: <one@example.org>\r\n\r\nbody\r\n")
		noID := []byte("From: a@example.org\r\nSubject: no id, a bare CR\r\n\r\nline\rmore\r\n")
		cy.Seed(t, "alice", "INBOX.Projects.2026", []SeedMessage{
			{Raw: crlf, Flags: []string{`\Seen`, "$Forwarded", "Custom1"}, InternalDate: date},
			{Raw: noID, InternalDate: date.Add(time.Hour)},
		})
		if got := cy.Mailboxes(t, "alice"); !slices.Contains(got, "INBOX.Projects") || !slices.Contains(got, "INBOX.Projects.2026") {
			t.Errorf("mailboxes %q: want INBOX.Projects.2026 and its parent", got)
		}
		msgs := cy.Messages(t, "alice", "INBOX.Projects.2026")
		if len(msgs) != 2 {
			t.Fatalf("%d messages, want 2: %+v", len(msgs), msgs)
		}
		m := msgs[0]
		if m.SHA256 != sha(crlf) || m.Size != int64(len(crlf)) || m.MessageID != "<one@example.org>" ||
			!slices.Equal(m.Flags, []string{"$Forwarded", "Custom1", `\Seen`}) || !m.InternalDate.Equal(date) || m.InternalDate.Location() != time.UTC {
			t.Errorf("first message %+v", m)
		}
		if m := msgs[1]; m.SHA256 != sha(noID) || m.MessageID != "" || m.Flags != nil || m.UID <= msgs[0].UID {
			t.Errorf("second message %+v: want it byte for byte, no flags, a later UID", m)
		}
		// The helpers against a plain IMAP look.
		sel, err := c.Select("INBOX.Projects.2026", &goimap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil || sel.NumMessages != 2 || uint32(sel.UIDNext) != cy.UIDNext(t, "alice", "INBOX.Projects.2026") {
			t.Errorf("EXAMINE %+v, %v; UIDNext helper %d", sel, err, cy.UIDNext(t, "alice", "INBOX.Projects.2026"))
		}

		cy.RemoveFlags(t, "alice", "INBOX.Projects.2026", []string{"Custom1"}, msgs[0].UID)
		cy.Expunge(t, "alice", "INBOX.Projects.2026", msgs[1].UID)
		if got := cy.Messages(t, "alice", "INBOX.Projects.2026"); len(got) != 1 || !slices.Equal(got[0].Flags, []string{"$Forwarded", `\Seen`}) {
			t.Errorf("after RemoveFlags and Expunge: %+v", got)
		}
		if got := cy.Messages(t, "bob", "INBOX"); got != nil {
			t.Errorf("bob's INBOX: %+v, want nil", got)
		}
		cy.CreateMailbox(t, "bob", "INBOX.Entwürfe alt")
		cy.CreateMailbox(t, "bob", "INBOX.Entwürfe alt") // again: nothing to do
		if got := cy.Mailboxes(t, "bob"); !slices.Contains(got, "INBOX.Entwürfe alt") {
			t.Errorf("bob's mailboxes %q", got)
		}

		// The admin acts as alice through SASL PLAIN with an authzid.
		ac, err := imapclient.DialInsecure(cy.Addr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ac.Close()
		if err := ac.Authenticate(sasl.NewPlainClient("alice", "boss", "pw-boss")); err != nil {
			t.Fatalf("admin acting as alice: %v", err)
		}
		if l, err := ac.List("", "INBOX.Projects*", nil).Collect(); err != nil || len(l) != 2 {
			t.Errorf("admin as alice lists %+v, %v", l, err)
		}

		if cy.syslog != nil && !strings.Contains(cy.Log(), "alice") {
			t.Errorf("syslog is captured but has no login of alice:\n%s", cy.Log())
		}
		t.Logf("syslog captured: %v", cy.syslog != nil)
	})
	if t.Failed() || t.Skipped() || dir == "" {
		return
	}
	// Cleanup stopped the server and removed its files.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after cleanup", addr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after cleanup: %v", dir, err)
	}
}

// TestCyrusQuirks pins down what Cyrus 3.6 does that Dovecot does not, as
// docs/providers.md describes it.
func TestCyrusQuirks(t *testing.T) {
	cy := StartCyrus(t, CyrusOptions{Users: map[string]string{"alice": "pw"}, SpecialUse: map[string]string{"Sent": `\Sent`}})
	c := cyrusClient(t, cy, "alice", "pw")
	appendMsg := func(raw string) (*goimap.AppendData, error) {
		cmd := c.Append("INBOX", int64(len(raw)), nil)
		cmd.Write([]byte(raw))
		cmd.Close()
		return cmd.Wait()
	}
	for name, raw := range map[string]string{
		"a bare LF":             "From: a@b\r\n\r\nx\ny\r\n",
		"a NUL":                 "From: a@b\r\n\r\nx\x00y\r\n",
		"no bytes":              "",
		"a stray header line":   "Subject: x\r\nnot a header field\r\n\r\nbody\r\n",
		"a header without CRLF": "From: a@b\r\nSubject: header only",
	} {
		if _, err := appendMsg(raw); err == nil {
			t.Errorf("APPEND of a message with %s: accepted, want refused", name)
		}
	}
	// Everything else is kept byte for byte: a bare CR, 8-bit headers
	// (munge8bit: no), a last line without CRLF, a first line that is an
	// mbox From_ line.
	kept := "From judy@example.org Sat Mar 24 23:00:00 2007\r\nFrom: J\xc3\xbcrgen M\xfcller <j@b>\r\n\r\nCR\rend"
	data, err := appendMsg(kept)
	if err != nil {
		t.Fatal(err)
	}
	msgs := cy.Messages(t, "alice", "INBOX")
	if len(msgs) != 1 || msgs[0].UID != uint32(data.UID) || msgs[0].SHA256 != sha([]byte(kept)) {
		t.Errorf("served as %+v", msgs)
	}
	for name, err := range map[string]error{
		"a '/' in a name":   c.Create("INBOX.a/b", nil).Wait(),
		"a second \\Sent":   c.Create("INBOX.Sent Items", &goimap.CreateOptions{SpecialUse: []goimap.MailboxAttr{goimap.MailboxAttrSent}}).Wait(),
		"\\Flagged":         c.Create("INBOX.Starred", &goimap.CreateOptions{SpecialUse: []goimap.MailboxAttr{goimap.MailboxAttrFlagged}}).Wait(),
		"outside of INBOX.": c.Create("Shared", nil).Wait(),
	} {
		if err == nil {
			t.Errorf("CREATE with %s: accepted, want refused", name)
		}
	}
	// Deleting a child leaves its parent, which CREATE made a real mailbox.
	if err := c.Create("INBOX.p.q", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("INBOX.p.q").Wait(); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status("INBOX.p", &goimap.StatusOptions{UIDValidity: true}).Wait(); err != nil || st.UIDValidity == 0 {
		t.Errorf("parent after its child was deleted: %+v, %v", st, err)
	}
}

func TestCyrusNotInstalled(t *testing.T) {
	t.Setenv("CI", "")
	r := &recordingTB{TB: t}
	cyrusNotInstalled(r, os.ErrNotExist)
	if !strings.HasPrefix(r.skip, "cyrus not available") || r.fatal != "" {
		t.Errorf("outside CI: skip %q, fatal %q", r.skip, r.fatal)
	}
	t.Setenv("CI", "true")
	r = &recordingTB{TB: t}
	cyrusNotInstalled(r, os.ErrNotExist)
	if r.skip != "" || !strings.Contains(r.fatal, "CI=true") {
		t.Errorf("in CI: skip %q, fatal %q", r.skip, r.fatal)
	}
}

func TestCyrusOptionsChecked(t *testing.T) {
	for _, o := range []CyrusOptions{
		{},
		{Users: map[string]string{"Alice": "pw"}},
		{Users: map[string]string{"a.b": "pw"}},
		{Users: map[string]string{"a": "pw"}, AdminUser: "a", AdminPassword: "pw"},
		{Users: map[string]string{"a": "pw"}, AdminUser: "boss"},
		{Users: map[string]string{"a": "pw"}, SpecialUse: map[string]string{"Sent": "Sent"}},
	} {
		if _, err := normalizeCyrusOptions(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
