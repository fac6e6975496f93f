package imaptest

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStrictProxy checks that a strict profile really presents Dovecot as
// the strict server the story tests rely on: were it to let things pass,
// those tests would prove nothing.
func TestStrictProxy(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{"alice": "pw"}})
	d.Seed(t, "alice", "Full", []SeedMessage{{Raw: []byte("Subject: x\r\n\r\nbody\r\n")}})
	p := StartFaultProxy(t, d.Addr())
	p.BeStrict(Strict{Keep: []string{"UIDPLUS"}})
	c := dialIMAP(t, p.Addr())
	c.mustOK("LOGIN alice pw")
	untagged := c.mustOK("CAPABILITY")
	if caps := untagged[0].Text; !strings.Contains(caps, "IMAP4rev1") || !strings.Contains(caps, "UIDPLUS") ||
		strings.Contains(caps, "UNSELECT") || strings.Contains(caps, "MULTIAPPEND") || strings.Contains(caps, "LITERAL+") {
		t.Errorf("capabilities %q: want IMAP4rev1 and UIDPLUS only", caps)
	}

	validity := regexp.MustCompile(`UIDVALIDITY (\d+)`)
	seen := func(untagged []response) (v string, uidnext bool) {
		for _, r := range untagged {
			if m := validity.FindStringSubmatch(r.Text); m != nil {
				v = m[1]
			}
			uidnext = uidnext || strings.Contains(r.Text, "UIDNEXT")
		}
		return v, uidnext
	}
	// An empty mailbox nothing was appended to: a new UIDVALIDITY at each
	// look, and never [UIDNEXT] in EXAMINE.
	c.mustOK("CREATE Fresh")
	v1, next := seen(c.mustOK("EXAMINE Fresh"))
	v2, _ := seen(c.mustOK("EXAMINE Fresh"))
	if v1 == "" || v1 == v2 || next {
		t.Errorf("fresh mailbox: UIDVALIDITY %q then %q, [UIDNEXT] sent %v; want two different values and no UIDNEXT", v1, v2, next)
	}
	// APPEND to the EXAMINEd mailbox and DELETE of the selected one are
	// refused, as Courier refuses them.
	if st := c.appendMsg("Fresh", "", time.Time{}, []byte("Subject: y\r\n\r\nb\r\n")); !strings.HasPrefix(st, "NO") {
		t.Errorf("APPEND to the EXAMINEd mailbox: %q, want NO", st)
	}
	if _, st := c.do("DELETE Fresh"); !strings.HasPrefix(st, "NO") {
		t.Errorf("DELETE of the selected mailbox: %q, want NO", st)
	}
	// An extension not offered: BAD, and counted.
	if _, st := c.do("UNSELECT"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("UNSELECT without the extension: %q, want BAD", st)
	}
	if v := p.Stats().Violations; len(v) != 1 || !strings.Contains(v[0], "UNSELECT") {
		t.Errorf("violations %q, want the UNSELECT", v)
	}
	// Once mail is appended, the mailbox keeps its real UIDVALIDITY, the
	// one APPENDUID gives.
	c.mustOK("EXAMINE Full")
	st := c.appendMsg("Fresh", "", time.Time{}, []byte("Subject: y\r\n\r\nb\r\n"))
	m := regexp.MustCompile(`APPENDUID (\d+) `).FindStringSubmatch(st)
	if m == nil {
		t.Fatalf("APPEND: %q, want APPENDUID", st)
	}
	v3, _ := seen(c.mustOK("EXAMINE Fresh"))
	v4, _ := seen(c.mustOK("EXAMINE Fresh"))
	if v3 != m[1] || v4 != m[1] {
		t.Errorf("after an APPEND: UIDVALIDITY %q, %q; want APPENDUID's %q", v3, v4, m[1])
	}
}
