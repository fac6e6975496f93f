package fakecloud

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// xoauth2 is the client side of XOAUTH2, which go-sasl lacks. It answers
// the error challenge with an empty response, as Gmail expects.
type xoauth2 struct {
	user, token string
	challenges  [][]byte
}

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	x.challenges = append(x.challenges, challenge)
	return []byte{}, nil
}

// bearerAnswering wraps go-sasl's OAUTHBEARER client, which returns an
// error on the error challenge instead of answering it, with the RFC 7628
// §3.2.3 answer (a single 0x01).
type bearerAnswering struct{ sasl.Client }

func (b bearerAnswering) Next([]byte) ([]byte, error) { return []byte{1}, nil }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func dial(t *testing.T, c *Cloud, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	cl, err := imapclient.DialInsecure(c.Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := cl.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	return cl
}

func login(t *testing.T, c *Cloud, user string) *imapclient.Client {
	t.Helper()
	cl := dial(t, c, nil)
	if err := cl.Authenticate(&xoauth2{user: user, token: c.IssueToken(user)}); err != nil {
		t.Fatalf("XOAUTH2 as %s: %v", user, err)
	}
	return cl
}

func imapErr(t *testing.T, err error) *imap.Error {
	t.Helper()
	var ie *imap.Error
	if !errors.As(err, &ie) {
		t.Fatalf("got %v (%T), want an *imap.Error", err, err)
	}
	return ie
}

func wantErr(t *testing.T, err error, typ imap.StatusResponseType, code imap.ResponseCode, text string) {
	t.Helper()
	ie := imapErr(t, err)
	if ie.Type != typ || ie.Code != code || ie.Text != text {
		t.Fatalf("got %s [%s] %q, want %s [%s] %q", ie.Type, ie.Code, ie.Text, typ, code, text)
	}
}

func waitClosed(t *testing.T, cl *imapclient.Client) {
	t.Helper()
	select {
	case <-cl.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not close the connection")
	}
}

func waitActive(t *testing.T, c *Cloud, user string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.ActiveConns(user) != n {
		if time.Now().After(deadline) {
			t.Fatalf("ActiveConns(%s) = %d, want %d", user, c.ActiveConns(user), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendMsg(cl *imapclient.Client, mailbox string, raw []byte, opts *imap.AppendOptions) (*imap.AppendData, error) {
	cmd := cl.Append(mailbox, int64(len(raw)), opts)
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return nil, err
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	return cmd.Wait()
}

func msg(n int) []byte {
	return fmt.Appendf(nil, "From: a@example.com\r\nTo: b@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@example.com>\r\n\r\nBody %d.\r\n", n, n, n)
}

var flavors = []Flavor{Gmail, Office365}

// raw is a line-level client, for the exact texts on the wire.
type raw struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, c *Cloud) *raw {
	t.Helper()
	conn, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &raw{t: t, c: conn, r: bufio.NewReader(conn)}
	if g := r.line(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting %q", g)
	}
	return r
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s+"\r\n"); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) line() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// until reads up to the tagged reply for tag and returns it.
func (r *raw) until(tag string) string {
	r.t.Helper()
	for {
		if l := r.line(); strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
}

func (r *raw) eof() bool {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.r.ReadString('\n')
	return err == io.EOF
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func xoauth2IR(user, token string) string {
	return b64("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

func TestXOAUTH2(t *testing.T) {
	for _, f := range flavors {
		t.Run(f.String(), func(t *testing.T) {
			c := Start(t, Options{Flavor: f})
			c.AddUser("alice@example.com")
			cl := dial(t, c, nil)
			x := &xoauth2{user: "alice@example.com", token: c.IssueToken("alice@example.com")}
			if err := cl.Authenticate(x); err != nil {
				t.Fatal(err)
			}
			if len(x.challenges) != 0 {
				t.Errorf("challenges on success: %q", x.challenges)
			}
			// go-imap's client sets the state only after Authenticate
			// has returned (completeCommand signals first), so look at it
			// after one more round trip.
			if err := cl.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
			if st := cl.State(); st != imap.ConnStateAuthenticated {
				t.Fatalf("state %v", st)
			}
			if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			if s := c.Stats(); s.AuthOK != 1 || s.AuthFailed != 0 {
				t.Errorf("stats %+v", s)
			}
			if got := c.PeakConns("alice@example.com"); got != 1 {
				t.Errorf("PeakConns %d", got)
			}
		})
	}
}

// A refused token leaves the connection not authenticated and usable:
// the same connection takes a fresh token.
func TestXOAUTH2Refused(t *testing.T) {
	for _, f := range flavors {
		t.Run(f.String(), func(t *testing.T) {
			clk := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
			c := Start(t, Options{Flavor: f, Now: clk.Now, TokenTTL: time.Hour})
			c.AddUser("alice@example.com")
			c.AddUser("bob@example.com")

			ttlExpired := c.IssueToken("alice@example.com")
			clk.Advance(time.Hour) // exactly the TTL: no longer valid
			revoked := c.IssueToken("alice@example.com")
			c.Expire(revoked)
			cases := map[string]*xoauth2{
				"wrong user":   {user: "alice@example.com", token: c.IssueToken("bob@example.com")},
				"TTL expired":  {user: "alice@example.com", token: ttlExpired},
				"Expire()":     {user: "alice@example.com", token: revoked},
				"never issued": {user: "alice@example.com", token: "ya29.made-up"},
				"no such user": {user: "carol@example.com", token: c.IssueToken("alice@example.com")},
			}
			cl := dial(t, c, nil)
			for name, x := range cases {
				err := cl.Authenticate(x)
				if f == Gmail {
					wantErr(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed, "Invalid credentials (Failure)")
					if len(x.challenges) != 1 || string(x.challenges[0]) != gmailChallenge {
						t.Errorf("%s: challenges %q, want one %s", name, x.challenges, gmailChallenge)
					}
				} else {
					wantErr(t, err, imap.StatusResponseTypeNo, "", "AUTHENTICATE failed.")
					if len(x.challenges) != 0 {
						t.Errorf("%s: Office 365 sent challenges %q", name, x.challenges)
					}
				}
				if st := cl.State(); st != imap.ConnStateNotAuthenticated {
					t.Fatalf("%s: state %v", name, st)
				}
			}
			if err := cl.Noop().Wait(); err != nil {
				t.Fatalf("connection unusable after refusals: %v", err)
			}
			if err := cl.Authenticate(&xoauth2{user: "alice@example.com", token: c.IssueToken("alice@example.com")}); err != nil {
				t.Fatalf("fresh token on the same connection: %v", err)
			}
			if s := c.Stats(); s.AuthFailed != len(cases) || s.AuthOK != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestTokenShapes(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	g := Start(t, Options{Flavor: Gmail, Now: clk.Now})
	g.AddUser("a@gmail.com")
	t1, t2 := g.IssueToken("a@gmail.com"), g.IssueToken("a@gmail.com")
	if !strings.HasPrefix(t1, "ya29.") || t1 == t2 || strings.Count(t1, ".") != 1 {
		t.Errorf("Gmail tokens %q %q", t1, t2)
	}

	o := Start(t, Options{Flavor: Office365, Now: clk.Now, TokenTTL: 30 * time.Minute})
	o.AddUser("a@contoso.com")
	tok := o.IssueToken("a@contoso.com")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q", tok)
	}
	var header struct{ Typ, Alg string }
	var payload struct {
		Exp int64  `json:"exp"`
		Upn string `json:"upn"`
	}
	for i, v := range []any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if header.Typ != "JWT" || payload.Upn != "a@contoso.com" || payload.Exp != clk.Now().Add(30*time.Minute).Unix() {
		t.Errorf("header %+v payload %+v", header, payload)
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		t.Errorf("signature: %v", err)
	}
}

func TestOAuthBearer(t *testing.T) {
	t.Run("Gmail", func(t *testing.T) {
		c := Start(t, Options{Flavor: Gmail})
		c.AddUser("alice@gmail.com")
		cl := dial(t, c, nil)
		if !cl.Caps().Has(imap.AuthCap(sasl.OAuthBearer)) {
			t.Fatalf("caps %v", cl.Caps())
		}
		err := cl.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: "alice@gmail.com", Token: c.IssueToken("alice@gmail.com"), Host: "imap.gmail.com", Port: 993}))
		if err != nil {
			t.Fatal(err)
		}

		// The authzid is optional: the token says who it is.
		cl2 := dial(t, c, nil)
		if err := cl2.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Token: c.IssueToken("alice@gmail.com")})); err != nil {
			t.Fatal(err)
		}

		// Refused, answered per RFC 7628: NO, and the connection is usable.
		cl3 := dial(t, c, nil)
		err = cl3.Authenticate(bearerAnswering{sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: "alice@gmail.com", Token: "ya29.bogus"})})
		wantErr(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed, "Invalid credentials (Failure)")
		if err := cl3.Noop().Wait(); err != nil {
			t.Fatal(err)
		}

		// go-sasl's own client gives up on the challenge without answering,
		// so go-imap returns its error and leaves the server waiting in the
		// exchange: that connection is unusable and has to be closed.
		cl4 := dial(t, c, nil)
		err = cl4.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "alice@gmail.com", Token: "ya29.bogus"}))
		var be *sasl.OAuthBearerError
		if !errors.As(err, &be) || be.Status != "400" || be.Scope != "https://mail.google.com/" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("Office365", func(t *testing.T) {
		c := Start(t, Options{Flavor: Office365})
		c.AddUser("alice@contoso.com")
		cl := dial(t, c, nil)
		caps := cl.Caps()
		if caps.Has(imap.AuthCap(sasl.OAuthBearer)) || !caps.Has(imap.AuthCap("XOAUTH2")) {
			t.Fatalf("caps %v", caps)
		}
		err := cl.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: "alice@contoso.com", Token: c.IssueToken("alice@contoso.com")}))
		wantErr(t, err, imap.StatusResponseTypeNo, "", "AUTHENTICATE failed.")
	})
}

func TestPasswordsRefused(t *testing.T) {
	for _, f := range flavors {
		t.Run(f.String(), func(t *testing.T) {
			c := Start(t, Options{Flavor: f})
			c.AddUser("alice@example.com")
			cl := dial(t, c, nil)
			if !cl.Caps().Has(imap.AuthCap("PLAIN")) {
				t.Errorf("AUTH=PLAIN not advertised; both services advertise it")
			}
			loginErr := cl.Login("alice@example.com", "hunter2").Wait()
			plainErr := cl.Authenticate(sasl.NewPlainClient("", "alice@example.com", "hunter2"))
			if f == Gmail {
				wantErr(t, loginErr, imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed, "Invalid credentials (Failure)")
				wantErr(t, plainErr, imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed, "Invalid credentials (Failure)")
			} else {
				wantErr(t, loginErr, imap.StatusResponseTypeNo, "", "LOGIN failed.")
				wantErr(t, plainErr, imap.StatusResponseTypeNo, "", "AUTHENTICATE failed.")
			}
			// A token is no password either.
			err := cl.Login("alice@example.com", c.IssueToken("alice@example.com")).Wait()
			imapErr(t, err)
			if s := c.Stats(); s.AuthFailed != 3 || s.AuthOK != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestAuthWire checks the exchange byte for byte, including how
// imapserver ends a SASL exchange whose server returns a challenge and
// then an error: the error becomes the tagged reply and the connection
// stays in the not-authenticated state.
func TestAuthWire(t *testing.T) {
	t.Run("Gmail", func(t *testing.T) {
		c := Start(t, Options{Flavor: Gmail})
		c.AddUser("alice@gmail.com")
		r := dialRaw(t, c)

		r.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2IR("alice@gmail.com", "ya29.bogus"))
		if got, want := r.line(), "+ "+b64(gmailChallenge); got != want {
			t.Fatalf("challenge %q, want %q", got, want)
		}
		if want := "+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ=="; "+ "+b64(gmailChallenge) != want {
			t.Fatalf("challenge is not Gmail's: %q", b64(gmailChallenge))
		}
		r.send("") // Gmail's clients answer with an empty line
		if got := r.until("A1"); got != "A1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)" {
			t.Fatalf("got %q", got)
		}

		r.send("A2 AUTHENTICATE XOAUTH2 " + xoauth2IR("alice@gmail.com", "ya29.bogus"))
		r.line()
		r.send("*") // cancel instead
		if got := r.until("A2"); got != "A2 BAD AUTHENTICATE cancelled" {
			t.Fatalf("got %q", got)
		}

		r.send("A3 AUTHENTICATE XOAUTH2 " + b64("garbage"))
		if got := r.until("A3"); got != "A3 BAD Invalid SASL argument." {
			t.Fatalf("got %q", got)
		}

		r.send("A4 AUTHENTICATE CRAM-MD5")
		if got := r.until("A4"); got != "A4 NO Unsupported AUTHENTICATE mechanism. (Failure)" {
			t.Fatalf("got %q", got)
		}

		r.send("A5 NOOP")
		if got := r.until("A5"); got != "A5 OK NOOP completed" {
			t.Fatalf("got %q", got)
		}

		// Without SASL-IR: an empty challenge first.
		r.send("A6 AUTHENTICATE XOAUTH2")
		if got := r.line(); got != "+ " {
			t.Fatalf("got %q", got)
		}
		r.send(xoauth2IR("alice@gmail.com", c.IssueToken("alice@gmail.com")))
		got := r.until("A6")
		if !strings.HasPrefix(got, "A6 OK [CAPABILITY ") || !strings.HasSuffix(got, "] XOAUTH2 authentication successful") {
			t.Fatalf("got %q", got)
		}
		for _, cp := range []string{" SPECIAL-USE", " MOVE", " UIDPLUS", " APPENDLIMIT=35651584", " IDLE", " NAMESPACE", " CHILDREN"} {
			if !strings.Contains(got, cp) {
				t.Errorf("post-login caps lack%s: %q", cp, got)
			}
		}
	})
	t.Run("Office365", func(t *testing.T) {
		c := Start(t, Options{Flavor: Office365})
		c.AddUser("alice@contoso.com")
		r := dialRaw(t, c)
		r.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2IR("alice@contoso.com", "bogus"))
		if got := r.line(); got != "A1 NO AUTHENTICATE failed." {
			t.Fatalf("got %q", got)
		}
		r.send(`A2 LOGIN alice@contoso.com hunter2`)
		if got := r.line(); got != "A2 NO LOGIN failed." {
			t.Fatalf("got %q", got)
		}
		r.send("A3 CAPABILITY")
		caps := r.line()
		if strings.Contains(caps, "OAUTHBEARER") || !strings.Contains(caps, " AUTH=XOAUTH2") || !strings.Contains(caps, " AUTH=PLAIN") {
			t.Errorf("caps %q", caps)
		}
	})
}

func TestCaps(t *testing.T) {
	all := func(cl *imapclient.Client) imap.CapSet {
		// Caps() right after AUTHENTICATE may still be the old set while
		// go-imap refetches it in the background.
		if err := cl.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		return cl.Caps()
	}
	g := Start(t, Options{Flavor: Gmail})
	g.AddUser("a")
	gc := all(login(t, g, "a"))
	for _, cp := range []imap.Cap{imap.CapIMAP4rev1, imap.CapUIDPlus, imap.CapMove, imap.CapUnselect, imap.CapChildren,
		imap.CapIdle, imap.CapNamespace, imap.CapSpecialUse, imap.CapListStatus, imap.CapESearch, "APPENDLIMIT=35651584"} {
		if !gc.Has(cp) {
			t.Errorf("Gmail lacks %s: %v", cp, gc)
		}
	}
	for _, cp := range []imap.Cap{imap.CapLiteralPlus, imap.CapCondStore, imap.CapIMAP4rev2} {
		if gc.Has(cp) {
			t.Errorf("Gmail has %s", cp)
		}
	}

	o := Start(t, Options{Flavor: Office365})
	o.AddUser("a")
	oc := all(login(t, o, "a"))
	for _, cp := range []imap.Cap{imap.CapIMAP4rev1, imap.CapUIDPlus, imap.CapMove, imap.CapUnselect, imap.CapChildren,
		imap.CapIdle, imap.CapNamespace, imap.CapLiteralPlus, imap.CapSpecialUse} {
		if !oc.Has(cp) {
			t.Errorf("Office365 lacks %s: %v", cp, oc)
		}
	}
	for _, cp := range []imap.Cap{imap.CapCondStore, imap.CapListExtended, imap.CapESearch} {
		if oc.Has(cp) {
			t.Errorf("Office365 has %s", cp)
		}
	}
	if _, ok := oc.AppendLimit(); ok {
		t.Errorf("Office365 advertises APPENDLIMIT")
	}

	h := Start(t, Options{Flavor: Office365, HideSpecialUseCap: true})
	h.AddUser("a")
	cl := login(t, h, "a")
	if all(cl).Has(imap.CapSpecialUse) {
		t.Errorf("HideSpecialUseCap: SPECIAL-USE still advertised")
	}
	l, err := cl.List("", "Sent Items", nil).Collect()
	if err != nil || len(l) != 1 || !slices.Contains(l[0].Attrs, imap.MailboxAttrSent) {
		t.Errorf("LIST without the cap: %+v %v", l, err)
	}
}

func TestConnCapGmail(t *testing.T) {
	c := Start(t, Options{Flavor: Gmail, MaxConnsPerUser: 2})
	c.AddUser("a")
	c.AddUser("b")
	first := login(t, c, "a")
	login(t, c, "a")
	login(t, c, "b") // the cap is per user

	third := dial(t, c, nil)
	err := third.Authenticate(&xoauth2{user: "a", token: c.IssueToken("a")})
	wantErr(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeAlert, "Too many simultaneous connections. (Failure)")
	waitClosed(t, third)
	if got := c.PeakConns("a"); got != 2 {
		t.Errorf("PeakConns %d", got)
	}
	if s := c.Stats(); s.Refused != 1 || s.AuthOK != 3 {
		t.Errorf("stats %+v", s)
	}

	// A slot comes back when a connection ends.
	if err := first.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, "a", 1)
	login(t, c, "a")
	if got := c.PeakConns("a"); got != 2 {
		t.Errorf("PeakConns %d after reuse", got)
	}
}

func TestConnCapOffice365(t *testing.T) {
	c := Start(t, Options{Flavor: Office365, MaxConnsPerUser: 2})
	c.AddUser("a")
	login(t, c, "a")
	second := login(t, c, "a")

	var wire syncBuffer
	third := dial(t, c, &imapclient.Options{DebugWriter: &wire})
	// Office 365 lets the login through and fails what follows.
	if err := third.Authenticate(&xoauth2{user: "a", token: c.IssueToken("a")}); err != nil {
		t.Fatalf("AUTHENTICATE: %v", err)
	}
	_, err := third.List("", "*", nil).Collect()
	wantErr(t, err, imap.StatusResponseTypeBad, "", "User is authenticated but not connected.")
	waitClosed(t, third)
	if !strings.Contains(wire.String(), "* BYE Connection closed. 14\r\n") {
		t.Errorf("no BYE on the wire:\n%s", wire.String())
	}
	if got := c.PeakConns("a"); got != 2 {
		t.Errorf("PeakConns %d", got)
	}
	if s := c.Stats(); s.Refused != 1 || s.AuthOK != 2 {
		t.Errorf("stats %+v", s)
	}

	second.Close()
	waitActive(t, c, "a", 1)
	cl := login(t, c, "a")
	if _, err := cl.List("", "*", nil).Collect(); err != nil {
		t.Fatal(err)
	}
}

func TestPeakConcurrent(t *testing.T) {
	c := Start(t, Options{Flavor: Gmail})
	c.AddUser("a")
	var clients []*imapclient.Client
	for range 5 {
		clients = append(clients, login(t, c, "a"))
	}
	for _, cl := range clients {
		cl.Close()
	}
	waitActive(t, c, "a", 0)
	login(t, c, "a")
	if got := c.PeakConns("a"); got != 5 {
		t.Errorf("PeakConns %d, want 5", got)
	}
}

func TestThrottle(t *testing.T) {
	for _, f := range flavors {
		t.Run(f.String(), func(t *testing.T) {
			c := Start(t, Options{Flavor: f, ThrottleEvery: 2, ThrottleBackoff: 1500 * time.Millisecond})
			c.AddUser("a")
			cl := login(t, c, "a")
			var stored int
			for i := 1; i <= 5; i++ {
				_, err := appendMsg(cl, "INBOX", msg(i), nil)
				if i%2 != 0 {
					if err != nil {
						t.Fatalf("APPEND %d: %v", i, err)
					}
					stored++
					continue
				}
				if f == Gmail {
					wantErr(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeOverQuota, "Account exceeded command or bandwidth limits.")
				} else {
					wantErr(t, err, imap.StatusResponseTypeNo, "", "Request is throttled. Suggested Backoff Time: 1500 milliseconds")
				}
			}
			if got := len(c.Messages(t, "a", "INBOX")); got != stored {
				t.Errorf("INBOX holds %d, want %d", got, stored)
			}
			if s := c.Stats(); s.Throttled != 2 || s.Appends != 3 {
				t.Errorf("stats %+v", s)
			}
			// The connection survives a throttle.
			if err := cl.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
	c := Start(t, Options{Flavor: Office365, ThrottleEvery: 1})
	c.AddUser("a")
	_, err := appendMsg(login(t, c, "a"), "INBOX", msg(1), nil)
	wantErr(t, err, imap.StatusResponseTypeNo, "", "Request is throttled. Suggested Backoff Time: 50 milliseconds")
}

func TestBye(t *testing.T) {
	for _, f := range flavors {
		t.Run(f.String(), func(t *testing.T) {
			c := Start(t, Options{Flavor: f, ByeEvery: 2, ThrottleEvery: 2})
			c.AddUser("a")
			var wire syncBuffer
			cl := dial(t, c, &imapclient.Options{DebugWriter: &wire})
			if err := cl.Authenticate(&xoauth2{user: "a", token: c.IssueToken("a")}); err != nil {
				t.Fatal(err)
			}
			if _, err := appendMsg(cl, "INBOX", msg(1), nil); err != nil {
				t.Fatal(err)
			}
			_, err := appendMsg(cl, "INBOX", msg(2), nil)
			if err == nil {
				t.Fatal("APPEND 2 succeeded")
			}
			var ie *imap.Error
			if errors.As(err, &ie) {
				t.Fatalf("got a status reply %v, want the connection gone", ie)
			}
			waitClosed(t, cl)
			bye := "* BYE Connection closed. 14\r\n"
			if f == Gmail {
				bye = "* BYE System Error\r\n"
			}
			if !strings.Contains(wire.String(), bye) {
				t.Errorf("no %q on the wire:\n%s", bye, wire.String())
			}
			waitActive(t, c, "a", 0)

			cl = login(t, c, "a")
			if _, err := appendMsg(cl, "INBOX", msg(3), nil); err != nil {
				t.Fatal(err)
			}
			got := c.Messages(t, "a", "INBOX")
			if len(got) != 2 || !bytes.Equal(got[0].Raw, msg(1)) || !bytes.Equal(got[1].Raw, msg(3)) {
				t.Errorf("INBOX %+v", got)
			}
			if s := c.Stats(); s.Byes != 1 || s.Throttled != 0 || s.Appends != 2 {
				t.Errorf("stats %+v (BYE wins over throttle)", s)
			}
		})
	}
}

func TestByeWire(t *testing.T) {
	c := Start(t, Options{Flavor: Office365, ByeEvery: 1})
	c.AddUser("a")
	r := dialRaw(t, c)
	r.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2IR("a", c.IssueToken("a")))
	r.until("A1")
	m := msg(1)
	r.send(fmt.Sprintf("A2 APPEND INBOX {%d}", len(m)))
	if got := r.line(); !strings.HasPrefix(got, "+") {
		t.Fatalf("got %q", got)
	}
	r.c.Write(m)
	r.send("")        // ends the APPEND command line
	r.send("A3 NOOP") // pipelined, unread at the close: must not become a reset
	if got := r.line(); got != "* BYE Connection closed. 14" {
		t.Fatalf("got %q", got)
	}
	if !r.eof() {
		t.Fatal("connection still open after BYE")
	}
}

func TestGmailAllMail(t *testing.T) {
	c := Start(t, Options{Flavor: Gmail})
	c.AddUser("a")
	date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)

	c.Append(t, "a", "INBOX", msg(1), []string{`\Seen`}, date)
	c.Append(t, "a", "[Gmail]/Important", msg(1), nil, date) // second label, same message
	c.Append(t, "a", "Projects", msg(2), nil, date)          // new label, created
	c.Append(t, "a", gmailAllMail, msg(3), nil, date)        // archived: no label
	c.Append(t, "a", "[Gmail]/Trash", msg(4), nil, date)     // not in All Mail
	c.Append(t, "a", "[Gmail]/Spam", msg(5), nil, date)      // not in All Mail
	c.Append(t, "a", gmailAllMail, msg(2), nil, date)        // already there: a real duplicate

	cl := login(t, c, "a")
	if _, err := appendMsg(cl, "[Gmail]/Sent Mail", msg(6), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date}); err != nil {
		t.Fatal(err)
	}
	if _, err := appendMsg(cl, "INBOX", msg(6), nil); err != nil { // labelled twice by the client
		t.Fatal(err)
	}
	_, err := appendMsg(cl, "[Gmail]", msg(7), nil)
	wantErr(t, err, imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "Folder is not selectable")

	bodies := func(mailbox string) []string {
		var out []string
		for _, m := range c.Messages(t, "a", mailbox) {
			out = append(out, strings.SplitN(string(m.Raw), "Subject: ", 2)[1][:9])
		}
		return out
	}
	for mailbox, want := range map[string][]string{
		gmailAllMail:        {"message 1", "message 2", "message 3", "message 2", "message 6"},
		"INBOX":             {"message 1", "message 6"},
		"[Gmail]/Important": {"message 1"},
		"Projects":          {"message 2"},
		"[Gmail]/Trash":     {"message 4"},
		"[Gmail]/Spam":      {"message 5"},
		"[Gmail]/Sent Mail": {"message 6"},
	} {
		if got := bodies(mailbox); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", mailbox, got, want)
		}
	}
	all := c.Messages(t, "a", gmailAllMail)
	if !slices.Equal(all[0].Flags, []string{`\Seen`}) || !all[0].InternalDate.Equal(date) {
		t.Errorf("All Mail copy lost flags or date: %+v", all[0])
	}
	if all[0].UID != 1 || all[4].UID != 5 {
		t.Errorf("UIDs %d..%d", all[0].UID, all[4].UID)
	}
	if s := c.Stats(); s.Appends != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestOffice365NoAllMail(t *testing.T) {
	c := Start(t, Options{Flavor: Office365})
	c.AddUser("a")
	c.Append(t, "a", "INBOX", msg(1), nil, time.Time{})
	if got := c.Mailboxes(t, "a"); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "All") }) {
		t.Errorf("mailboxes %q", got)
	}
	if n := len(c.Messages(t, "a", "INBOX")); n != 1 {
		t.Errorf("INBOX %d", n)
	}
}

func TestListSpecialUse(t *testing.T) {
	want := map[Flavor]map[string][]imap.MailboxAttr{
		Gmail: {
			"INBOX":             {imap.MailboxAttrHasNoChildren},
			"[Gmail]":           {imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren},
			"[Gmail]/All Mail":  {imap.MailboxAttrAll, imap.MailboxAttrHasNoChildren},
			"[Gmail]/Drafts":    {imap.MailboxAttrDrafts, imap.MailboxAttrHasNoChildren},
			"[Gmail]/Important": {imap.MailboxAttrImportant, imap.MailboxAttrHasNoChildren},
			"[Gmail]/Sent Mail": {imap.MailboxAttrSent, imap.MailboxAttrHasNoChildren},
			"[Gmail]/Spam":      {imap.MailboxAttrJunk, imap.MailboxAttrHasNoChildren},
			"[Gmail]/Starred":   {imap.MailboxAttrFlagged, imap.MailboxAttrHasNoChildren},
			"[Gmail]/Trash":     {imap.MailboxAttrTrash, imap.MailboxAttrHasNoChildren},
		},
		Office365: {
			"INBOX":                {imap.MailboxAttrHasNoChildren},
			"Archive":              {imap.MailboxAttrArchive, imap.MailboxAttrHasNoChildren},
			"Conversation History": {imap.MailboxAttrHasNoChildren},
			"Deleted Items":        {imap.MailboxAttrTrash, imap.MailboxAttrHasNoChildren},
			"Drafts":               {imap.MailboxAttrDrafts, imap.MailboxAttrHasNoChildren},
			"Junk Email":           {imap.MailboxAttrJunk, imap.MailboxAttrHasNoChildren},
			"Outbox":               {imap.MailboxAttrHasNoChildren},
			"Sent Items":           {imap.MailboxAttrSent, imap.MailboxAttrHasNoChildren},
		},
	}
	sorted := func(a []imap.MailboxAttr) []imap.MailboxAttr {
		a = slices.Clone(a)
		slices.Sort(a)
		return a
	}
	for _, f := range flavors {
		t.Run(f.String(), func(t *testing.T) {
			c := Start(t, Options{Flavor: f})
			c.AddUser("a")
			cl := login(t, c, "a")
			for _, opts := range []*imap.ListOptions{nil, {ReturnSpecialUse: true}} {
				l, err := cl.List("", "*", opts).Collect()
				if err != nil {
					t.Fatal(err)
				}
				if len(l) != len(want[f]) || l[0].Mailbox != "INBOX" {
					t.Errorf("LIST %v: %d mailboxes, first %q", opts, len(l), l[0].Mailbox)
				}
				for _, d := range l {
					if d.Delim != '/' {
						t.Errorf("%s: delim %q", d.Mailbox, d.Delim)
					}
					if w, ok := want[f][d.Mailbox]; !ok || !slices.Equal(sorted(d.Attrs), sorted(w)) {
						t.Errorf("LIST %v: %s %v, want %v", opts, d.Mailbox, d.Attrs, w)
					}
				}
			}
			var names []string
			for n := range want[f] {
				names = append(names, n)
			}
			sort.Strings(names)
			names = append([]string{"INBOX"}, slices.DeleteFunc(names, func(s string) bool { return s == "INBOX" })...)
			if got := c.Mailboxes(t, "a"); !slices.Equal(got, names) {
				t.Errorf("Mailboxes %q, want %q", got, names)
			}

			l, err := cl.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range l {
				if d.Mailbox == "INBOX" || d.Mailbox == "[Gmail]" || d.Mailbox == "Outbox" {
					t.Errorf("SELECT SPECIAL-USE returned %s", d.Mailbox)
				}
			}
			if l, err := cl.List("", "", nil).Collect(); err != nil || len(l) != 1 || l[0].Delim != '/' {
				t.Errorf(`LIST "" "": %+v %v`, l, err)
			}
		})
	}
}

func TestListStatusAndFolders(t *testing.T) {
	c := Start(t, Options{Flavor: Gmail})
	c.AddUser("a")
	c.Append(t, "a", "INBOX", msg(1), nil, time.Time{})
	cl := login(t, c, "a")
	l, err := cl.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range l {
		switch {
		case d.Mailbox == "[Gmail]" && d.Status != nil:
			t.Errorf("status for \\Noselect [Gmail]")
		case d.Mailbox == "INBOX" && (d.Status == nil || *d.Status.NumMessages != 1):
			t.Errorf("INBOX status %+v", d.Status)
		}
	}

	if err := cl.Create("Work/2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, cl.Create("[Gmail]", nil).Wait(), imap.StatusResponseTypeNo, imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	wantErr(t, cl.Delete("[Gmail]/Trash").Wait(), imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "System folders cannot be deleted or renamed")
	wantErr(t, cl.Rename("INBOX", "Old", nil).Wait(), imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "System folders cannot be deleted or renamed")
	if err := cl.Rename("Work/2024", "Work/2025", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	l, err = cl.List("", "Work%", nil).Collect()
	if err != nil || len(l) != 1 || !slices.Contains(l[0].Attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("LIST Work%%: %+v %v", l, err)
	}
	if err := cl.Unsubscribe("Work").Wait(); err != nil {
		t.Fatal(err)
	}
	l, err = cl.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || slices.ContainsFunc(l, func(d *imap.ListData) bool { return d.Mailbox == "Work" }) {
		t.Errorf("unsubscribed Work listed: %v", err)
	}
	if err := cl.Delete("Work/2025").Wait(); err != nil {
		t.Fatal(err)
	}
	if got := c.Mailboxes(t, "a"); !slices.Contains(got, "Work") || slices.Contains(got, "Work/2025") {
		t.Errorf("Mailboxes %q", got)
	}
	if _, err := cl.Select("[Gmail]", nil).Wait(); err == nil {
		t.Errorf("SELECT [Gmail] succeeded")
	}
	ns, err := cl.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("NAMESPACE %+v %v", ns, err)
	}
}

func TestSeedRoundTrip(t *testing.T) {
	c := Start(t, Options{Flavor: Office365})
	c.AddUser("a")
	date := time.Date(2019, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))
	c.Append(t, "a", "Sent Items", msg(1), []string{`\Seen`, `\Flagged`}, date)
	c.Append(t, "a", "Sent Items", msg(2), nil, date)
	got := c.Messages(t, "a", "Sent Items")
	if len(got) != 2 || !bytes.Equal(got[0].Raw, msg(1)) || got[0].UID != 1 || got[1].UID != 2 ||
		!slices.Equal(got[0].Flags, []string{`\Flagged`, `\Seen`}) || !got[0].InternalDate.Equal(date) || len(got[1].Flags) != 0 {
		t.Errorf("got %+v", got)
	}
	if got := c.Messages(t, "a", "Drafts"); len(got) != 0 {
		t.Errorf("Drafts %+v", got)
	}
	// Seeding does not count as client traffic.
	if s := c.Stats(); s != (Stats{}) {
		t.Errorf("stats %+v", s)
	}
	// A client sees what was seeded.
	cl := login(t, c, "a")
	st, err := cl.Status("Sent Items", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 2 {
		t.Errorf("STATUS %+v %v", st, err)
	}
}

func TestTLS(t *testing.T) {
	c := Start(t, Options{Flavor: Gmail, TLS: true})
	c.AddUser("a")
	cfg := c.ClientTLSConfig()
	cfg.ServerName = "imap.gmail.com" // as a preset would dial
	cl, err := imapclient.DialTLS(c.Addr(), &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Authenticate(&xoauth2{user: "a", token: c.IssueToken("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := appendMsg(cl, "INBOX", msg(1), nil); err != nil {
		t.Fatal(err)
	}
	if Start(t, Options{Flavor: Gmail}).ClientTLSConfig() != nil {
		t.Error("ClientTLSConfig without TLS")
	}
}

// TestNoSecretsInLogs provokes the server's log lines (hang-ups during
// AUTHENTICATE and APPEND, garbage) and checks no token or password is
// in them.
func TestNoSecretsInLogs(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for _, f := range flavors {
		c := Start(t, Options{Flavor: f, Logf: logf, ThrottleEvery: 3, ByeEvery: 4, MaxConnsPerUser: 1})
		c.AddUser("a")
		c.AddUser("b")
		good, other := c.IssueToken("a"), c.IssueToken("b")
		c.Expire(other)
		secrets := []string{good, other, "hunter2"}

		cl := dial(t, c, nil)
		cl.Login("a", "hunter2").Wait()
		cl.Authenticate(&xoauth2{user: "a", token: other})
		cl.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "a", Token: other})) // leaves the exchange hanging
		cl.Close()

		cl = login(t, c, "a")
		for i := range 5 {
			appendMsg(cl, "INBOX", msg(i), nil)
		}
		cl.Close()

		for _, cmd := range []string{
			"A1 AUTHENTICATE XOAUTH2 " + b64("user=a\x01auth=Bearer "+good), // malformed, token inside
			"A2 AUTHENTICATE XOAUTH2 %%%" + good,                            // not base64
			"A3 AUTHENTICATE PLAIN " + b64("\x00a\x00hunter2"),
			"A4 AUTHENTICATE XOAUTH2", // then hang up
		} {
			r := dialRaw(t, c)
			r.send(cmd)
			r.line()
			r.c.Close()
		}
		waitActive(t, c, "a", 0) // MaxConnsPerUser is 1
		r := dialRaw(t, c)
		r.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2IR("a", c.IssueToken("a")))
		if got := r.until("A1"); !strings.HasPrefix(got, "A1 OK") {
			t.Fatalf("%v: %q", f, got)
		}
		r.send("A2 APPEND INBOX {100}")
		r.line()
		r.c.Write([]byte("Subject: " + good + "\r\n")) // then hang up mid-literal
		r.c.Close()

		c.logf("direct: user=a\x01auth=Bearer " + good + " and " + c.account("a").pass)
		secrets = append(secrets, c.account("a").pass)

		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := len(lines)
			mu.Unlock()
			if n >= 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitActive(t, c, "a", 0)
		mu.Lock()
		for _, l := range lines {
			for _, s := range secrets {
				if strings.Contains(l, s) {
					t.Errorf("%v: log line has a secret: %q", f, l)
				}
			}
		}
		if len(lines) == 0 {
			t.Errorf("%v: no log lines at all: the test proves nothing", f)
		}
		lines = nil
		mu.Unlock()
	}
}

// TestConcurrent is for the race detector: many connections, caps,
// throttling and Gmail's All Mail copies at once.
func TestConcurrent(t *testing.T) {
	c := Start(t, Options{Flavor: Gmail, MaxConnsPerUser: 4, ThrottleEvery: 7})
	c.AddUser("a")
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := map[int]bool{}
	for w := range 6 {
		wg.Go(func() {
			cl, err := imapclient.DialInsecure(c.Addr(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			if err := cl.Authenticate(&xoauth2{user: "a", token: c.IssueToken("a")}); err != nil {
				return // over the cap
			}
			for i := range 10 {
				n := w*100 + i
				if _, err := appendMsg(cl, []string{"INBOX", "[Gmail]/Sent Mail"}[i%2], msg(n), nil); err == nil {
					mu.Lock()
					stored[n] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	if s.AuthOK+s.Refused != 6 || s.AuthOK > 4 || c.PeakConns("a") > 4 {
		t.Errorf("stats %+v peak %d", s, c.PeakConns("a"))
	}
	if got := len(c.Messages(t, "a", gmailAllMail)); got != len(stored) || s.Appends != len(stored) {
		t.Errorf("All Mail %d, stored %d, stats %+v", got, len(stored), s)
	}
}
