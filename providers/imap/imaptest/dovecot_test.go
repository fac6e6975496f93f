package imaptest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// imapForm is what IMAP FETCH BODY[] returns for a stored message, as
// documented on Message.SHA256: a CR before every LF that lacks one, NUL as
// 0x80.
func imapForm(raw []byte) []byte {
	out := make([]byte, 0, len(raw)+len(raw)/32)
	for i, c := range raw {
		switch {
		case c == '\n' && (i == 0 || raw[i-1] != '\r'):
			out = append(out, '\r', '\n')
		case c == 0:
			out = append(out, 0x80)
		default:
			out = append(out, c)
		}
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// seedCase is a message to seed together with what Dovecot must report.
type seedCase struct {
	name      string
	msg       SeedMessage
	flags     []string // sorted
	messageID string
}

func awkwardCases() []seedCase {
	ist := time.FixedZone("IST", 5*3600+1800)
	big := bigMessage(2 << 20)
	return []seedCase{
		{
			name: "crlf",
			msg: SeedMessage{
				Raw:          []byte("Message-ID: <crlf@example.com>\r\nSubject: crlf\r\n\r\nHello\r\n"),
				Flags:        []string{`\Seen`, `\Answered`, "$Forwarded"},
				InternalDate: time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC),
			},
			flags:     []string{"$Forwarded", `\Answered`, `\Seen`},
			messageID: "<crlf@example.com>",
		},
		{
			name: "bare LF, folded Message-ID",
			msg: SeedMessage{
				Raw:          []byte("Subject: lf\nMessage-ID:\n  <folded@example.com>\n\nline one\nline two\n"),
				Flags:        []string{"Custom1", "$Label1", `\Flagged`},
				InternalDate: time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC),
			},
			flags:     []string{"$Label1", "Custom1", `\Flagged`},
			messageID: "<folded@example.com>",
		},
		{
			name: "NUL, 8-bit, form feeds and fake pager framing",
			msg: SeedMessage{
				Raw: []byte("Message-Id: <odd@example.com>\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\n" +
					"nul:\x00: invalid utf-8:\xff\xfe\xc3\x28 latin1:\xe9\r\n" +
					"\f\nuid: 99\nflags: \\Deleted\n\f\nbody.:\n\f"),
				Flags:        []string{`\Draft`, `\Deleted`, "$Forwarded"},
				InternalDate: time.Date(2024, 2, 29, 12, 0, 0, 0, ist),
			},
			flags:     []string{"$Forwarded", `\Deleted`, `\Draft`},
			messageID: "<odd@example.com>",
		},
		{
			name: "no Message-ID, no final newline, no flags",
			msg: SeedMessage{
				Raw:          []byte("Subject: bare\n\nno newline at the end"),
				InternalDate: time.Date(2010, 6, 7, 8, 9, 10, 0, time.UTC),
			},
		},
		{
			name: "CR CR LF and bare CR kept as stored",
			msg: SeedMessage{
				Raw:          []byte("Message-ID: <cr@example.com>\r\n\r\nx\r\r\ny\rz\r"),
				Flags:        []string{`\seen`}, // system flags are case-insensitive
				InternalDate: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC),
			},
			flags:     []string{`\Seen`},
			messageID: "<cr@example.com>",
		},
		{
			name: "2 MB",
			msg: SeedMessage{
				Raw:          big,
				Flags:        []string{"$Forwarded", "Custom1", "$Label1", "$MDNSent", `\Seen`},
				InternalDate: time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC),
			},
			flags:     []string{"$Forwarded", "$Label1", "$MDNSent", "Custom1", `\Seen`},
			messageID: "<big@example.com>",
		},
	}
}

// bigMessage builds a message of about n bytes with mixed line endings and
// 8-bit content.
func bigMessage(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString("Message-ID: <big@example.com>\r\nSubject: big\r\nContent-Type: application/octet-stream\r\n\r\n")
	line := make([]byte, 57)
	for i := 0; b.Len() < n; i++ {
		for j := range line {
			line[j] = byte(rng.Uint32())
		}
		if i%3 == 0 {
			b.WriteString(base64.StdEncoding.EncodeToString(line))
		} else {
			b.Write(bytes.ReplaceAll(bytes.ReplaceAll(line, []byte{'\n'}, nil), []byte{'\r'}, nil))
		}
		if i%2 == 0 {
			b.WriteString("\r\n")
		} else {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

func seedMessages(cases []seedCase) []SeedMessage {
	var msgs []SeedMessage
	for _, c := range cases {
		msgs = append(msgs, c.msg)
	}
	return msgs
}

// checkMessages compares what Dovecot reports with what was seeded.
func checkMessages(t *testing.T, got []Message, cases []seedCase) {
	t.Helper()
	if len(got) != len(cases) {
		t.Fatalf("got %d messages, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		m := got[i]
		if i > 0 && m.UID <= got[i-1].UID {
			t.Errorf("%s: UID %d not above previous %d", c.name, m.UID, got[i-1].UID)
		}
		if !slices.Equal(m.Flags, c.flags) {
			t.Errorf("%s: flags %q, want %q", c.name, m.Flags, c.flags)
		}
		if !m.InternalDate.Equal(c.msg.InternalDate) {
			t.Errorf("%s: internal date %v, want %v", c.name, m.InternalDate, c.msg.InternalDate)
		}
		want := imapForm(c.msg.Raw)
		if m.Size != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", c.name, m.Size, len(want))
		}
		if m.SHA256 != sha(want) {
			t.Errorf("%s: SHA256 %s, want %s", c.name, m.SHA256, sha(want))
		}
		if m.MessageID != c.messageID {
			t.Errorf("%s: Message-ID %q, want %q", c.name, m.MessageID, c.messageID)
		}
	}
}

// fetched is one message as seen over IMAP.
type fetched struct {
	uid          uint32
	flags        []string
	size         int64
	internalDate time.Time
	body         []byte
}

// fetchAll fetches every message of the selected mailbox over raw IMAP.
func fetchAll(t *testing.T, c *rawIMAP) []fetched {
	t.Helper()
	uidRe := regexp.MustCompile(`\bUID (\d+)`)
	flagsRe := regexp.MustCompile(`\bFLAGS \(([^)]*)\)`)
	sizeRe := regexp.MustCompile(`\bRFC822\.SIZE (\d+)`)
	dateRe := regexp.MustCompile(`\bINTERNALDATE "([^"]+)"`)
	var out []fetched
	for _, r := range c.mustOK("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])") {
		if !strings.Contains(r.Text, " FETCH ") {
			continue
		}
		uid := uidRe.FindStringSubmatch(r.Text)
		flags := flagsRe.FindStringSubmatch(r.Text)
		size := sizeRe.FindStringSubmatch(r.Text)
		date := dateRe.FindStringSubmatch(r.Text)
		if uid == nil || flags == nil || size == nil || date == nil || len(r.Literals) != 1 {
			t.Fatalf("cannot parse %q", r.Text)
		}
		var f fetched
		n, _ := strconv.ParseUint(uid[1], 10, 32)
		f.uid = uint32(n)
		for fl := range strings.FieldsSeq(flags[1]) {
			if fl != `\Recent` {
				f.flags = append(f.flags, fl)
			}
		}
		slices.Sort(f.flags)
		f.size, _ = strconv.ParseInt(size[1], 10, 64)
		var err error
		if f.internalDate, err = time.Parse(imapDateTime, date[1]); err != nil {
			t.Fatal(err)
		}
		f.body = r.Literals[0]
		out = append(out, f)
	}
	return out
}

// checkAgainstIMAP checks Messages against a raw IMAP FETCH of the same
// mailbox: this is what proves that SHA256 hashes exactly BODY[].
func checkAgainstIMAP(t *testing.T, d *Dovecot, user, password, mailbox string, msgs []Message) {
	t.Helper()
	c := dialIMAP(t, d.Addr())
	c.mustOK("LOGIN %s %s", quoteIMAP(user), quoteIMAP(password))
	c.mustOK("EXAMINE %s", quoteIMAP(mailbox))
	got := fetchAll(t, c)
	if len(got) != len(msgs) {
		t.Fatalf("IMAP FETCH returned %d messages, doveadm %d", len(got), len(msgs))
	}
	for i, f := range got {
		m := msgs[i]
		if f.uid != m.UID || !slices.Equal(f.flags, m.Flags) || f.size != m.Size ||
			!f.internalDate.Equal(m.InternalDate) || sha(f.body) != m.SHA256 || int64(len(f.body)) != f.size {
			t.Errorf("IMAP says UID %d flags %q size %d date %v sha %s (%d bytes);\ndoveadm says UID %d flags %q size %d date %v sha %s",
				f.uid, f.flags, f.size, f.internalDate, sha(f.body), len(f.body),
				m.UID, m.Flags, m.Size, m.InternalDate, m.SHA256)
		}
	}
}

func TestSeedAndMessages(t *testing.T) {
	t.Parallel()
	const user, pass = "alice@example.com", "secret"
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}})

	if got := d.Messages(t, user, "INBOX"); got != nil {
		t.Fatalf("fresh INBOX: %v", got)
	}
	if got := d.Messages(t, user, "Sent"); got != nil {
		t.Fatalf("special-use Sent before first use: %v", got)
	}

	cases := awkwardCases()
	start := time.Now()
	d.Seed(t, user, "INBOX", seedMessages(cases))
	t.Logf("seeded %d messages in %v", len(cases), time.Since(start))
	got := d.Messages(t, user, "INBOX")
	checkMessages(t, got, cases)
	checkAgainstIMAP(t, d, user, pass, "INBOX", got)

	// A second Seed appends after the first, in order, and reuses the
	// keyword letters already registered.
	more := []seedCase{
		{name: "later 1", msg: SeedMessage{Raw: []byte("Subject: 1\n\n1\n"), Flags: []string{"Custom1", "New2"}}, flags: []string{"Custom1", "New2"}},
		{name: "later 2", msg: SeedMessage{Raw: []byte("Subject: 2\n\n2\n"), Flags: []string{"$Label1"}}, flags: []string{"$Label1"}},
	}
	now := time.Now()
	d.Seed(t, user, "INBOX", seedMessages(more))
	got = d.Messages(t, user, "INBOX")
	if len(got) != len(cases)+len(more) {
		t.Fatalf("after second seed: %d messages", len(got))
	}
	for i, m := range got[len(cases):] {
		// Zero InternalDate means now.
		if d := m.InternalDate.Sub(now); d < -2*time.Second || d > time.Minute {
			t.Errorf("%s: internal date %v, want about %v", more[i].name, m.InternalDate, now)
		}
		more[i].msg.InternalDate = m.InternalDate
	}
	checkMessages(t, got[len(cases):], more)
	if got[len(cases)].UID <= got[len(cases)-1].UID {
		t.Errorf("second seed got UID %d after %d", got[len(cases)].UID, got[len(cases)-1].UID)
	}

	// Seeding creates mailboxes, including configured special-use ones.
	d.Seed(t, user, "Sent", seedMessages(cases[:1]))
	d.Seed(t, user, "Projects/2024", seedMessages(cases[1:2]))
	checkMessages(t, d.Messages(t, user, "Sent"), cases[:1])
	checkMessages(t, d.Messages(t, user, "Projects/2024"), cases[1:2])
	wantBoxes := []string{"Archive", "Drafts", "INBOX", "Junk", "Projects", "Projects/2024", "Sent", "Trash"}
	if got := d.Mailboxes(t, user); !slices.Equal(got, wantBoxes) {
		t.Errorf("mailboxes %q, want %q", got, wantBoxes)
	}
	wantSubs := []string{"Archive", "Drafts", "Junk", "Sent", "Trash"}
	if got := d.Subscriptions(t, user); !slices.Equal(got, wantSubs) {
		t.Errorf("subscriptions %q, want %q", got, wantSubs)
	}

	// AllMessages is Messages of every mailbox that holds mail, at once.
	all := d.AllMessages(t, user)
	for _, box := range wantBoxes {
		if one := d.Messages(t, user, box); !reflect.DeepEqual(all[box], one) {
			t.Errorf("AllMessages[%q] = %d messages, Messages gives %d (or they differ)", box, len(all[box]), len(one))
		}
	}
	if len(all) != 3 {
		t.Errorf("AllMessages has %d mailboxes, want the 3 that hold mail", len(all))
	}
}

func TestTwoInstances(t *testing.T) {
	t.Parallel()
	const user, pass = "bob", "pw"
	a := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}})
	b := StartDovecot(t, DovecotOptions{
		Users:      map[string]string{user: pass},
		Separator:  ".",
		Prefix:     "INBOX.",
		SpecialUse: map[string]string{"Sent Items": `\Sent`, "Deleted Items": `\Trash`},
	})
	if a.Port == b.Port || a.Dir == b.Dir {
		t.Fatalf("instances share port or dir: %v %v", a, b)
	}

	cases := awkwardCases()
	a.Seed(t, user, "Archive", seedMessages(cases))
	b.CreateMailbox(t, user, "INBOX.Archive.2024")
	b.CreateMailbox(t, user, "INBOX.Archive.2024") // no-op when it exists
	b.Seed(t, user, "INBOX.Archive.2024", seedMessages(cases))

	b.Seed(t, user, "INBOX", seedMessages(cases[:2]))

	ma, mb := a.Messages(t, user, "Archive"), b.Messages(t, user, "INBOX.Archive.2024")
	checkMessages(t, ma, cases)
	checkMessages(t, mb, cases)
	checkAgainstIMAP(t, b, user, pass, "INBOX.Archive.2024", mb)
	checkMessages(t, b.Messages(t, user, "INBOX"), cases[:2])
	for i := range ma {
		if ma[i].SHA256 != mb[i].SHA256 {
			t.Errorf("message %d: SHA256 differs between instances", i)
		}
	}

	wantB := []string{"INBOX", "INBOX.Archive", "INBOX.Archive.2024", "INBOX.Deleted Items", "INBOX.Sent Items"}
	if got := b.Mailboxes(t, user); !slices.Equal(got, wantB) {
		t.Errorf("mailboxes %q, want %q", got, wantB)
	}
	if got, want := b.Subscriptions(t, user), []string{"INBOX.Deleted Items", "INBOX.Sent Items"}; !slices.Equal(got, want) {
		t.Errorf("subscriptions %q, want %q", got, want)
	}

	// Over IMAP: "." separator and the special-use attributes.
	c := dialIMAP(t, b.Addr())
	c.mustOK("LOGIN %s %s", user, pass)
	var list []string
	for _, r := range c.mustOK(`LIST "" "*"`) {
		list = append(list, r.Text)
	}
	for _, want := range []string{
		`* LIST (\HasNoChildren \Sent) "." "INBOX.Sent Items"`,
		`* LIST (\HasNoChildren \Trash) "." "INBOX.Deleted Items"`,
		`* LIST (\Noselect \HasChildren) "." INBOX.Archive`, // a parent Dovecot did not create as a mailbox
	} {
		if !slices.Contains(list, want) {
			t.Errorf("LIST lacks %s; got:\n%s", want, strings.Join(list, "\n"))
		}
	}

	// Both instances keep running independently.
	if got := a.Mailboxes(t, user); !slices.Contains(got, "Archive") || slices.Contains(got, "INBOX.Archive") {
		t.Errorf("instance a mailboxes %q", got)
	}
}

// TestIMAPCopy copies messages from one instance to the other the way a
// migration does (FETCH BODY[], APPEND with flags and date) and shows that
// equal SHA256 values are what a byte-exact copy yields.
func TestIMAPCopy(t *testing.T) {
	t.Parallel()
	const user, pass = "carol", "pw"
	src := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}})
	dst := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}, Separator: ".", Prefix: "INBOX."})

	var cases []seedCase
	for _, c := range awkwardCases() {
		if !bytes.Contains(c.msg.Raw, []byte("\r\r\n")) {
			cases = append(cases, c) // see TestDovecotAppendNormalisation
		}
	}
	src.Seed(t, user, "INBOX", seedMessages(cases))

	from := dialIMAP(t, src.Addr())
	from.mustOK("LOGIN %s %s", user, pass)
	from.mustOK("EXAMINE INBOX")
	to := dialIMAP(t, dst.Addr())
	to.mustOK("LOGIN %s %s", user, pass)
	to.mustOK("CREATE INBOX.Copy")
	for _, f := range fetchAll(t, from) {
		if st := to.appendMsg("INBOX.Copy", strings.Join(f.flags, " "), f.internalDate, f.body); !strings.HasPrefix(st, "OK") {
			t.Fatalf("APPEND UID %d: %s", f.uid, st)
		}
	}

	ms, md := src.Messages(t, user, "INBOX"), dst.Messages(t, user, "INBOX.Copy")
	if len(ms) != len(md) {
		t.Fatalf("copied %d of %d", len(md), len(ms))
	}
	for i := range ms {
		s, d := ms[i], md[i]
		if s.SHA256 != d.SHA256 || s.Size != d.Size || !slices.Equal(s.Flags, d.Flags) ||
			!s.InternalDate.Equal(d.InternalDate) || s.MessageID != d.MessageID {
			t.Errorf("message %d differs:\nsrc %+v\ndst %+v", i, s, d)
		}
	}
}

// TestDovecotAppendNormalisation pins down how Dovecot 2.3's maildir changes
// an APPENDed message (it stores LF line endings): "\r\r\n" becomes "\r\n" and
// a final bare CR is dropped, so such messages cannot arrive byte-exact on a
// Dovecot destination whatever the client does. A bare CR elsewhere and a NUL
// (served as 0x80) survive.
func TestDovecotAppendNormalisation(t *testing.T) {
	t.Parallel()
	const user, pass = "dave", "pw"
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}})
	c := dialIMAP(t, d.Addr())
	c.mustOK("LOGIN %s %s", user, pass)
	tests := []struct{ sent, served string }{
		{"Subject: a\r\n\r\nx\r\r\ny\r\n", "Subject: a\r\n\r\nx\r\ny\r\n"},
		{"Subject: b\r\n\r\nends in CR\r", "Subject: b\r\n\r\nends in CR"},
		{"Subject: c\r\n\r\nbare\rCR\r\n", "Subject: c\r\n\r\nbare\rCR\r\n"},
		{"Subject: d\r\n\r\nNUL\x00\r\n", "Subject: d\r\n\r\nNUL\x80\r\n"},
		{"Subject: e\n\nbare LF\n", "Subject: e\r\n\r\nbare LF\r\n"},
	}
	for _, tt := range tests {
		if st := c.appendMsg("INBOX", "", time.Time{}, []byte(tt.sent)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("APPEND %q: %s", tt.sent, st)
		}
	}
	msgs := d.Messages(t, user, "INBOX")
	if len(msgs) != len(tests) {
		t.Fatalf("%d messages, want %d", len(msgs), len(tests))
	}
	for i, tt := range tests {
		if msgs[i].SHA256 != sha([]byte(tt.served)) {
			t.Errorf("APPEND %q: Dovecot no longer serves %q; update the comments on Message.SHA256 and this test", tt.sent, tt.served)
		}
	}
}

func TestMasterUser(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, DovecotOptions{
		Users:          map[string]string{"erin": "userpw", "frank": "pw2"},
		MasterUser:     "admin",
		MasterPassword: "adminpw",
	})
	d.Seed(t, "erin", "INBOX", seedMessages(awkwardCases()[:3]))

	c := dialIMAP(t, d.Addr())
	c.mustOK(`LOGIN "erin*admin" adminpw`)
	untagged := c.mustOK("SELECT INBOX")
	if !slices.ContainsFunc(untagged, func(r response) bool { return r.Text == "* 3 EXISTS" }) {
		t.Errorf("master login does not see erin's 3 messages: %v", untagged)
	}

	// SASL PLAIN with authorization id = user, authentication id = master,
	// which mailferry's --from-admin uses.
	c2 := dialIMAP(t, d.Addr())
	c2.mustOK("AUTHENTICATE PLAIN %s", base64.StdEncoding.EncodeToString([]byte("erin\x00admin\x00adminpw")))
	if untagged := c2.mustOK("STATUS INBOX (MESSAGES)"); len(untagged) == 0 || !strings.Contains(untagged[0].Text, "MESSAGES 3") {
		t.Errorf("SASL PLAIN as erin via admin: %v", untagged)
	}

	c3 := dialIMAP(t, d.Addr())
	for _, login := range []string{`"erin*admin" wrong`, `"erin*frank" pw2`, `"nobody*admin" adminpw`, `admin adminpw`} {
		if _, st := c3.do("LOGIN %s", login); !strings.HasPrefix(st, "NO") {
			t.Errorf("LOGIN %s: %s, want NO", login, st)
		}
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	const user, pass = "gina", "pw"
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}, QuotaBytes: 20_000})
	d.Seed(t, user, "INBOX", []SeedMessage{{Raw: []byte("Subject: big\r\n\r\n" + strings.Repeat("x", 15_000) + "\r\n")}})

	c := dialIMAP(t, d.Addr())
	c.mustOK("LOGIN %s %s", user, pass)
	small := []byte("Subject: small\r\n\r\n" + strings.Repeat("s", 1_000) + "\r\n")
	if st := c.appendMsg("INBOX", "", time.Time{}, small); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND within quota: %s", st)
	}
	large := []byte("Subject: large\r\n\r\n" + strings.Repeat("l", 10_000) + "\r\n")
	if st := c.appendMsg("INBOX", "", time.Time{}, large); !strings.HasPrefix(st, "NO [OVERQUOTA]") {
		t.Fatalf("APPEND beyond quota: %s, want NO [OVERQUOTA]", st)
	}
	if n := len(d.Messages(t, user, "INBOX")); n != 2 {
		t.Errorf("%d messages after the refused APPEND, want 2", n)
	}
}

func TestSeedSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 5,000 messages")
	}
	t.Parallel()
	const user, n = "hank", 5000
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{user: "pw"}})
	msgs := make([]SeedMessage, n)
	base := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 68)
	for i := range msgs {
		msgs[i] = SeedMessage{
			Raw:          fmt.Appendf(nil, "Message-ID: <%d@speed.example>\r\nSubject: message %d\r\n\r\n%s", i, i, body),
			Flags:        []string{`\Seen`, fmt.Sprintf("$Label%d", i%5+1)},
			InternalDate: base.Add(time.Duration(i) * time.Minute),
		}
	}
	start := time.Now()
	d.Seed(t, user, "INBOX", msgs)
	seeded := time.Since(start)
	start = time.Now()
	got := d.Messages(t, user, "INBOX")
	listed := time.Since(start)
	t.Logf("Seed of %d messages of %d bytes: %v; Messages: %v", n, len(msgs[0].Raw), seeded, listed)

	if len(got) != n {
		t.Fatalf("%d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if want := fmt.Sprintf("<%d@speed.example>", i); m.MessageID != want || m.UID != uint32(i+1) {
			t.Fatalf("message %d: UID %d Message-ID %s, want UID %d %s", i, m.UID, m.MessageID, i+1, want)
		}
		if !m.InternalDate.Equal(msgs[i].InternalDate) || !slices.Contains(m.Flags, msgs[i].Flags[1]) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

func TestParseFetch(t *testing.T) {
	body1 := "Message-ID: <1@x>\r\n\r\nbody with \f\r\nuid: 7\r\nflags: \\Seen\r\n\f\r\nand \x80 no newline"
	stored1 := "Message-ID: <1@x>\n\nbody with \f\nuid: 7\nflags: \\Seen\n\f\nand \x00 no newline"
	body2 := ""
	out := fmt.Sprintf("uid: 3\nflags: \\Seen \\Recent Custom1 $Forwarded\ndate.received.unixtime: 1000000000\nsize.virtual: %d\nsize.physical: %d\ntext:\n%sbody.:\n%s"+
		"\f\nuid: 9\nflags: \ndate.received.unixtime: 0\nsize.virtual: 0\nsize.physical: 0\ntext:\nbody.:\n%s",
		len(body1), len(stored1), stored1, body1, body2)
	got, err := parseFetch(strings.NewReader(out), "INBOX", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{Mailbox: "INBOX", UID: 3, Flags: []string{"$Forwarded", "Custom1", `\Seen`}, InternalDate: time.Unix(1e9, 0).UTC(),
			Size: int64(len(body1)), SHA256: sha([]byte(body1)), ExactSHA256: sha([]byte(strings.Replace(body1, "\x80", "\x00", 1))), MessageID: "<1@x>"},
		{Mailbox: "INBOX", UID: 9, InternalDate: time.Unix(0, 0).UTC(), SHA256: sha(nil), ExactSHA256: sha(nil)},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	for _, bad := range []string{
		out + "garbage", // after the last record
		strings.Replace(out, "size.virtual: 0", "size.virtual: 5", 1), // truncated body
		"uid: x\n",
	} {
		if _, err := parseFetch(strings.NewReader(bad), "INBOX", false); err == nil {
			t.Errorf("parseFetch(%q) succeeded", bad)
		}
	}
	if got, err := parseFetch(strings.NewReader(""), "INBOX", false); err != nil || got != nil {
		t.Errorf("empty output: %v, %v", got, err)
	}
}

func TestHeaderValue(t *testing.T) {
	for _, tt := range []struct{ msg, want string }{
		{"Message-ID: <a@b>\r\n\r\n", "<a@b>"},
		{"message-id:<a@b>  \n\n", "<a@b>"},
		{"Subject: x\nMessage-ID:\n <folded@b>\n\t\nX: y\n\n", "<folded@b>"},
		{"Subject: x\n\nMessage-ID: <in-body@b>\n", ""},
		{"Message-ID: <first@b>\nMessage-ID: <second@b>\n\n", "<first@b>"},
		{"Subject: no header end", ""},
	} {
		if got := headerValue([]byte(tt.msg), "Message-ID"); got != tt.want {
			t.Errorf("headerValue(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

// recordingTB records Fatalf and Skipf instead of stopping the test.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()                      {}
func (r *recordingTB) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recordingTB) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...) }

func TestNotInstalled(t *testing.T) {
	_, err := findBinary("imaptest-no-such-binary", t.TempDir())
	if err == nil {
		t.Fatal("findBinary found a missing binary")
	}

	t.Setenv("CI", "")
	r := &recordingTB{TB: t}
	notInstalled(r, err)
	if r.skip != "dovecot not installed: install dovecot-imapd to run integration tests" || r.fatal != "" {
		t.Errorf("outside CI: skip %q, fatal %q", r.skip, r.fatal)
	}

	t.Setenv("CI", "true")
	r = &recordingTB{TB: t}
	notInstalled(r, err)
	if r.skip != "" || !strings.Contains(r.fatal, "imaptest-no-such-binary") {
		t.Errorf("in CI: skip %q, fatal %q", r.skip, r.fatal)
	}
}

// TestSeedAccount: SeedAccount leaves an account as Seed of each mailbox
// would: every message in order with its flags and date, keywords apart
// per mailbox, empty mailboxes created, a second call appending after the
// first. A name with doveadm batch's separator takes the slow way.
func TestSeedAccount(t *testing.T) {
	t.Parallel()
	const user, pass = "bob@example.com", "secret"
	d := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass, "carol": pass}})
	cases := awkwardCases()
	// An account with nothing on disk yet and only INBOX to seed: no
	// CREATE makes its maildir, and INBOX cannot be created.
	d.SeedAccount(t, "carol", map[string][]SeedMessage{"INBOX": seedMessages(cases[:2])})
	checkMessages(t, d.Messages(t, "carol", "INBOX"), cases[:2])
	boxes := map[string][]SeedMessage{
		"INBOX":          seedMessages(cases[:3]),
		"Sent":           seedMessages(cases[3:4]),
		"Archive/2023":   seedMessages(cases[4:]),
		"Archive":        nil,
		"Family":         nil,
		"Lists/go-dev":   seedMessages(cases[1:2]),
		"Projects/Alpha": seedMessages(cases[:1]),
	}
	d.SeedAccount(t, user, boxes)
	checkMessages(t, d.Messages(t, user, "INBOX"), cases[:3])
	checkMessages(t, d.Messages(t, user, "Sent"), cases[3:4])
	checkMessages(t, d.Messages(t, user, "Archive/2023"), cases[4:])
	checkMessages(t, d.Messages(t, user, "Lists/go-dev"), cases[1:2])
	checkMessages(t, d.Messages(t, user, "Projects/Alpha"), cases[:1])
	for _, box := range []string{"Archive", "Family", "Projects"} {
		if !slices.Contains(d.Mailboxes(t, user), box) {
			t.Errorf("mailbox %q not created", box)
		}
		if got := d.Messages(t, user, box); got != nil {
			t.Errorf("%s holds %d messages, want none", box, len(got))
		}
	}
	d.SeedAccount(t, user, map[string][]SeedMessage{"INBOX": seedMessages(cases[3:4]), "a:b": seedMessages(cases[:1])})
	got := d.Messages(t, user, "INBOX")
	checkMessages(t, got[3:], cases[3:4])
	checkMessages(t, d.Messages(t, user, "a:b"), cases[:1])
}
