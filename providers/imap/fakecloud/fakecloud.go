// Package fakecloud runs an in-process IMAP server on 127.0.0.1 that
// behaves like Gmail or Office 365 where a migration tool notices: it only
// takes OAuth 2.0 bearer tokens (XOAUTH2, and OAUTHBEARER on Gmail), it
// has the provider's folder tree with SPECIAL-USE attributes, Gmail's
// labels show up in its All Mail folder, connections per user are capped,
// and APPENDs can be throttled or cut off with BYE using the providers'
// own reply texts. That lets OAuth, presets and backoff be tested without
// network or real accounts.
//
// A refused token or password leaves the connection open and not
// authenticated, so a client may retry on it with a fresh token.
//
// It is built on go-imap's imapserver and imapmemserver, so everything
// else (FETCH, SEARCH, flags, UIDs) is imapmemserver's behaviour,
// including its lowercasing of keywords ($Label comes back as $label).
//
// It is a test fixture, but a normal package so that tests in other
// packages can import it.
package fakecloud

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Flavor is the provider being imitated.
type Flavor int

// The providers.
const (
	Gmail Flavor = iota + 1
	Office365
)

func (f Flavor) String() string {
	switch f {
	case Gmail:
		return "Gmail"
	case Office365:
		return "Office365"
	}
	return fmt.Sprintf("Flavor(%d)", int(f))
}

// Options configures a Cloud. Only Flavor is required.
type Options struct {
	Flavor Flavor

	// MaxConnsPerUser caps the authenticated connections of one user at
	// once; 0 means no cap. Gmail answers the AUTHENTICATE beyond the cap
	// with NO [ALERT] and closes; Office 365 completes it and then answers
	// the first mailbox command (anything but CAPABILITY, NOOP, LOGOUT)
	// with "BAD User is authenticated but not connected." and BYE, which
	// is how it shows an exceeded limit.
	MaxConnsPerUser int

	// ThrottleEvery makes every Nth client APPEND (counted over the whole
	// server) fail with the provider's throttling NO instead of being
	// stored; 0 means never.
	ThrottleEvery int
	// ThrottleBackoff is the wait Office 365 suggests in its throttling
	// reply ("Suggested Backoff Time: 50 milliseconds"); default 50ms.
	// Gmail's reply carries no hint.
	ThrottleBackoff time.Duration

	// ByeEvery makes every Nth client APPEND (same count as ThrottleEvery)
	// read the message, not store it, send "* BYE ..." and close the
	// connection; 0 means never. When both hit the same APPEND, BYE wins.
	ByeEvery int

	// TokenTTL is the lifetime of issued tokens; default 1h.
	TokenTTL time.Duration
	// Now is the clock tokens expire by; default time.Now.
	Now func() time.Time

	// TLS serves implicit TLS (as on port 993) with a throwaway
	// certificate; see Cloud.ClientTLSConfig.
	TLS bool

	// HideSpecialUseCap leaves SPECIAL-USE out of CAPABILITY while LIST
	// still carries the attributes. That is what the real Office 365 does;
	// the default advertises it on both flavours.
	HideSpecialUseCap bool

	// Logf receives the server's log lines, with every issued token and
	// internal password masked; default tb.Logf.
	Logf func(format string, args ...any)
}

// Message is one stored message.
type Message struct {
	Raw          []byte
	Flags        []string // sorted; keywords lowercased by imapmemserver
	InternalDate time.Time
	UID          uint32
}

// Stats counts what the server did.
type Stats struct {
	AuthOK     int // AUTHENTICATEs that gave a usable session
	AuthFailed int // refused credentials: bad or expired tokens, wrong user, LOGIN, PLAIN, malformed
	Throttled  int // APPENDs answered with the throttling NO
	Byes       int // APPENDs answered with BYE and a closed connection
	Refused    int // valid logins refused by MaxConnsPerUser
	Appends    int // client APPENDs stored (seeding with Cloud.Append is not counted)
}

// Cloud is a running fake provider. Its methods are safe for concurrent
// use; the ones taking a testing.TB call tb.Fatal and so belong on the
// test's goroutine.
type Cloud struct {
	opts    Options
	srv     *imapserver.Server
	ln      net.Listener
	mem     *imapmemserver.Server
	admin   *imapserver.Server
	adminLn *pipeListener
	rootTLS *tls.Config

	appendSeq atomic.Int64

	mu       sync.Mutex
	accounts map[string]*account
	tokens   map[string]*tokenInfo
	stats    Stats
	wires    map[*wireConn]struct{}

	logMu     sync.Mutex
	logClosed bool
}

type tokenInfo struct {
	user    string
	exp     time.Time
	expired bool
}

// account is one user: imapmemserver's store plus the folder list, which
// is kept here because imapmemserver never sets SPECIAL-USE attributes
// and has no \Noselect mailboxes.
type account struct {
	name string
	pass string // for the internal admin server only
	mem  *imapmemserver.User

	mu      sync.Mutex
	folders map[string]*folder

	labelMu sync.Mutex // serialises Gmail's All Mail check-and-copy

	// under Cloud.mu
	active, peak int
}

type folder struct {
	attrs      []imap.MailboxAttr // special-use, plus \Noselect
	system     bool               // part of the flavour's tree: no DELETE/RENAME
	noselect   bool
	subscribed bool
}

const delim = '/'

// Gmail's folders that a migration tool maps.
const (
	gmailAllMail = "[Gmail]/All Mail"
)

type folderSpec struct {
	name     string
	attr     imap.MailboxAttr
	noselect bool
}

var trees = map[Flavor][]folderSpec{
	Gmail: {
		{name: "INBOX"},
		{name: "[Gmail]", noselect: true},
		{name: gmailAllMail, attr: imap.MailboxAttrAll},
		{name: "[Gmail]/Drafts", attr: imap.MailboxAttrDrafts},
		{name: "[Gmail]/Important", attr: imap.MailboxAttrImportant},
		{name: "[Gmail]/Sent Mail", attr: imap.MailboxAttrSent},
		{name: "[Gmail]/Spam", attr: imap.MailboxAttrJunk},
		{name: "[Gmail]/Starred", attr: imap.MailboxAttrFlagged},
		{name: "[Gmail]/Trash", attr: imap.MailboxAttrTrash},
	},
	Office365: {
		{name: "INBOX"},
		{name: "Archive", attr: imap.MailboxAttrArchive},
		{name: "Conversation History"},
		{name: "Deleted Items", attr: imap.MailboxAttrTrash},
		{name: "Drafts", attr: imap.MailboxAttrDrafts},
		{name: "Junk Email", attr: imap.MailboxAttrJunk},
		{name: "Outbox"},
		{name: "Sent Items", attr: imap.MailboxAttrSent},
	},
}

// Start listens on 127.0.0.1 on a free port and stops at tb.Cleanup.
func Start(tb testing.TB, opts Options) *Cloud {
	tb.Helper()
	if _, ok := trees[opts.Flavor]; !ok {
		tb.Fatalf("fakecloud: unknown flavor %v", opts.Flavor)
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ThrottleBackoff <= 0 {
		opts.ThrottleBackoff = 50 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	c := &Cloud{
		opts:     opts,
		mem:      imapmemserver.New(),
		accounts: make(map[string]*account),
		tokens:   make(map[string]*tokenInfo),
		wires:    make(map[*wireConn]struct{}),
	}

	// The admin server reads and seeds mailboxes for the test with plain
	// imapmemserver sessions, over in-memory pipes, so it is unreachable
	// from the network and never shows up in Stats or connection counts.
	c.adminLn = newPipeListener()
	c.admin = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return c.mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}},
		InsecureAuth: true,
		Logger:       redactLogger{c, "fakecloud admin: "},
	})

	c.srv = imapserver.New(&imapserver.Options{
		NewSession:   c.newSession,
		Caps:         c.caps(),
		InsecureAuth: true, // plain TCP on loopback unless Options.TLS
		Logger:       redactLogger{c, "fakecloud: "},
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakecloud: %v", err)
	}
	if opts.TLS {
		cert, pool, err := selfSigned()
		if err != nil {
			ln.Close()
			tb.Fatalf("fakecloud: %v", err)
		}
		c.rootTLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}})
	}
	c.ln = ln
	wl := &wireListener{Listener: ln, c: c, started: newStartSignal()}
	go c.srv.Serve(wl)
	go c.admin.Serve(c.adminLn)
	<-wl.started.ch
	<-c.adminLn.started.ch
	tb.Cleanup(c.close)
	return c
}

func (c *Cloud) close() {
	c.logMu.Lock()
	c.logClosed = true
	c.logMu.Unlock()
	c.srv.Close()
	c.admin.Close()
	c.adminLn.Close()
	c.mu.Lock()
	wires := c.wires
	c.wires = map[*wireConn]struct{}{}
	c.mu.Unlock()
	for w := range wires {
		w.kill()
	}
}

// caps are as close to the real services' as imapserver allows: it adds
// SASL-IR, LITERAL-, ENABLE, IDLE, UNSELECT and UTF8=ACCEPT by itself and
// has no way to advertise ID, XLIST, QUOTA or X-GM-EXT-1.
func (c *Cloud) caps() imap.CapSet {
	caps := imap.CapSet{
		imap.CapIMAP4rev1:  {},
		imap.CapNamespace:  {},
		imap.CapUIDPlus:    {},
		imap.CapMove:       {},
		imap.CapChildren:   {},
		imap.CapSpecialUse: {},
	}
	switch c.opts.Flavor {
	case Gmail:
		for _, cp := range []imap.Cap{imap.CapESearch, imap.CapListExtended, imap.CapListStatus} {
			caps[cp] = struct{}{}
		}
	case Office365:
		caps[imap.CapLiteralPlus] = struct{}{}
		if c.opts.HideSpecialUseCap {
			delete(caps, imap.CapSpecialUse)
		}
	}
	return caps
}

// Addr is host:port.
func (c *Cloud) Addr() string { return c.ln.Addr().String() }

// Port is the TCP port.
func (c *Cloud) Port() int { return c.ln.Addr().(*net.TCPAddr).Port }

// Flavor is the provider imitated.
func (c *Cloud) Flavor() Flavor { return c.opts.Flavor }

// ClientTLSConfig trusts the server's certificate, which is valid for
// 127.0.0.1, localhost, imap.gmail.com and outlook.office365.com, so a
// preset's ServerName can be kept. Nil unless Options.TLS.
func (c *Cloud) ClientTLSConfig() *tls.Config {
	if c.rootTLS == nil {
		return nil
	}
	return c.rootTLS.Clone()
}

// AddUser creates user with the flavour's folder tree.
func (c *Cloud) AddUser(user string) {
	a := &account{name: user, pass: randString(24), folders: make(map[string]*folder)}
	a.mem = imapmemserver.NewUser(user, a.pass)
	for _, f := range trees[c.opts.Flavor] {
		fo := &folder{system: true, subscribed: true, noselect: f.noselect}
		if f.noselect {
			fo.attrs = append(fo.attrs, imap.MailboxAttrNoSelect)
		} else if err := a.mem.Create(f.name, nil); err != nil {
			panic(fmt.Sprintf("fakecloud: create %q: %v", f.name, err))
		}
		if f.attr != "" {
			fo.attrs = append(fo.attrs, f.attr)
		}
		a.folders[f.name] = fo
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.accounts[user] != nil {
		panic(fmt.Sprintf("fakecloud: user %q added twice", user))
	}
	c.accounts[user] = a
	c.mem.AddUser(a.mem)
}

func (c *Cloud) account(user string) *account {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accounts[user]
}

// IssueToken returns a new access token for user, valid for
// Options.TokenTTL. Gmail's are opaque ("ya29." + random); Office 365's
// are JWT-shaped, with "exp" and "upn" in the payload so that a client
// can read the expiry, as it can with real Entra ID tokens.
func (c *Cloud) IssueToken(user string) string {
	if c.account(user) == nil {
		panic(fmt.Sprintf("fakecloud: IssueToken for unknown user %q", user))
	}
	now := c.opts.Now()
	exp := now.Add(c.opts.TokenTTL)
	var tok string
	switch c.opts.Flavor {
	case Gmail:
		tok = "ya29." + randString(64)
	case Office365:
		tok = jwt(user, now, exp)
	}
	c.mu.Lock()
	c.tokens[tok] = &tokenInfo{user: user, exp: exp}
	c.mu.Unlock()
	return tok
}

func jwt(user string, iat, exp time.Time) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	const tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
	header := struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{"JWT", "RS256", "fakecloud"}
	payload := struct {
		Aud        string `json:"aud"`
		Iss        string `json:"iss"`
		Iat        int64  `json:"iat"`
		Nbf        int64  `json:"nbf"`
		Exp        int64  `json:"exp"`
		Scp        string `json:"scp"`
		Tid        string `json:"tid"`
		Upn        string `json:"upn"`
		UniqueName string `json:"unique_name"`
		Uti        string `json:"uti"`
		Ver        string `json:"ver"`
	}{
		Aud: "https://outlook.office.com", Iss: "https://sts.windows.net/" + tenant + "/",
		Iat: iat.Unix(), Nbf: iat.Unix(), Exp: exp.Unix(),
		Scp: "IMAP.AccessAsUser.All", Tid: tenant, Upn: user, UniqueName: user,
		Uti: randString(16), Ver: "1.0",
	}
	sig := make([]byte, 64)
	rand.Read(sig)
	return enc(header) + "." + enc(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Expire makes token invalid from now on, as a revoked or lapsed token.
func (c *Cloud) Expire(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.tokens[token]; t != nil {
		t.expired = true
	}
}

// tokenOK reports whether token was issued for exactly user and is live.
func (c *Cloud) tokenOK(user, token string) bool {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tokens[token]
	return t != nil && !t.expired && t.user == user && now.Before(t.exp)
}

// admit takes one of user's connection slots; false when the cap is hit.
func (c *Cloud) admit(user string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.accounts[user]
	if c.opts.MaxConnsPerUser > 0 && a.active >= c.opts.MaxConnsPerUser {
		c.stats.Refused++
		return false
	}
	a.active++
	a.peak = max(a.peak, a.active)
	c.stats.AuthOK++
	return true
}

func (c *Cloud) release(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accounts[user].active--
}

func (c *Cloud) count(field *int) {
	c.mu.Lock()
	*field++
	c.mu.Unlock()
}

// PeakConns is the highest number of simultaneous authenticated
// connections of user seen so far.
func (c *Cloud) PeakConns(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.accounts[user]; a != nil {
		return a.peak
	}
	return 0
}

// ActiveConns is the number of user's authenticated connections now. The
// server notices a client's LOGOUT or hang-up a moment after the client
// does, so a test that reconnects at once may need to wait for this.
func (c *Cloud) ActiveConns(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.accounts[user]; a != nil {
		return a.active
	}
	return 0
}

// Stats returns the counters so far.
func (c *Cloud) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Append seeds a message into mailbox, bypassing authentication,
// throttling and Stats, creating the mailbox if it does not exist. On
// Gmail it applies the same All Mail rule as a client APPEND.
func (c *Cloud) Append(tb testing.TB, user, mailbox string, raw []byte, flags []string, date time.Time) {
	tb.Helper()
	a := c.account(user)
	if a == nil {
		tb.Fatalf("fakecloud: no user %q", user)
	}
	if f := a.folder(mailbox); f == nil {
		if err := a.create(mailbox); err != nil {
			tb.Fatalf("fakecloud: create %q: %v", mailbox, err)
		}
	}
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	if _, err := c.store(a, mailbox, raw, opts); err != nil {
		tb.Fatalf("fakecloud: append to %q: %v", mailbox, err)
	}
}

// store saves raw and, on Gmail, gives a labelled message its All Mail
// copy: in Gmail a label is a view on one message, and every message but
// spam and trash is in All Mail. One copy per distinct raw message, so a
// message with two labels is one All Mail message; one appended straight
// to All Mail is archived, with no label.
func (c *Cloud) store(a *account, mailbox string, raw []byte, opts *imap.AppendOptions) (*imap.AppendData, error) {
	if f := a.folder(mailbox); f != nil && f.noselect {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Folder is not selectable"}
	}
	if c.opts.Flavor != Gmail || !a.isLabel(mailbox) {
		return a.mem.Append(mailbox, newLiteral(raw), opts)
	}
	a.labelMu.Lock()
	defer a.labelMu.Unlock()
	data, err := a.mem.Append(mailbox, newLiteral(raw), opts)
	if err != nil {
		return nil, err
	}
	has, err := c.allMailHas(a, raw)
	if err != nil {
		return nil, fmt.Errorf("fakecloud: checking All Mail: %w", err)
	}
	if !has {
		if _, err := a.mem.Append(gmailAllMail, newLiteral(raw), opts); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// allMailHas looks for a byte-identical message in All Mail: a size
// search in-process first, bodies over the admin server only if needed.
func (c *Cloud) allMailHas(a *account, raw []byte) (bool, error) {
	us := imapmemserver.NewUserSession(a.mem)
	defer us.Close()
	if _, err := us.Select(gmailAllMail, &imap.SelectOptions{ReadOnly: true}); err != nil {
		return false, err
	}
	n := int64(len(raw))
	crit := &imap.SearchCriteria{Smaller: n + 1}
	if n > 0 {
		crit.Larger = n - 1
	}
	found, err := us.Search(imapserver.NumKindUID, crit, &imap.SearchOptions{})
	if err != nil || found.Count == 0 {
		return false, err
	}
	msgs, err := c.fetch(a, gmailAllMail, found.All.(imap.UIDSet))
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if bytes.Equal(m.Raw, raw) {
			return true, nil
		}
	}
	return false, nil
}

// Messages returns the messages of mailbox in UID order.
func (c *Cloud) Messages(tb testing.TB, user, mailbox string) []Message {
	tb.Helper()
	a := c.account(user)
	if a == nil {
		tb.Fatalf("fakecloud: no user %q", user)
	}
	msgs, err := c.fetch(a, mailbox, nil)
	if err != nil {
		tb.Fatalf("fakecloud: reading %s %q: %v", user, mailbox, err)
	}
	return msgs
}

// fetch reads messages (all when uids is nil) over the admin server.
func (c *Cloud) fetch(a *account, mailbox string, uids imap.NumSet) ([]Message, error) {
	conn, err := c.adminLn.dial()
	if err != nil {
		return nil, err
	}
	cl := imapclient.New(conn, nil)
	defer cl.Close()
	if err := cl.Login(a.name, a.pass).Wait(); err != nil {
		return nil, err
	}
	sel, err := cl.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	if uids == nil {
		var all imap.SeqSet
		all.AddRange(1, 0)
		uids = all
	}
	bufs, err := cl.Fetch(uids, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(bufs))
	for _, b := range bufs {
		m := Message{Raw: b.FindBodySection(&imap.FetchItemBodySection{Peek: true}), InternalDate: b.InternalDate, UID: uint32(b.UID)}
		if m.Raw == nil {
			m.Raw = []byte{}
		}
		for _, f := range b.Flags {
			m.Flags = append(m.Flags, string(f))
		}
		sort.Strings(m.Flags)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

// Mailboxes lists user's mailboxes, INBOX first, including \Noselect ones.
func (c *Cloud) Mailboxes(tb testing.TB, user string) []string {
	tb.Helper()
	a := c.account(user)
	if a == nil {
		tb.Fatalf("fakecloud: no user %q", user)
	}
	return a.names()
}

func (a *account) folder(name string) *folder {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.folders[name]
}

func (a *account) isLabel(name string) bool {
	f := a.folder(name)
	if f == nil || f.noselect {
		return false
	}
	for _, at := range f.attrs {
		switch at {
		case imap.MailboxAttrAll, imap.MailboxAttrTrash, imap.MailboxAttrJunk:
			return false
		}
	}
	return true
}

func (a *account) create(name string) error {
	name = strings.TrimRight(name, string(delim))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.folders[name] != nil {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox already exists"}
	}
	if err := a.mem.Create(name, nil); err != nil {
		return err
	}
	a.folders[name] = &folder{subscribed: true}
	return nil
}

func (a *account) names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.folders))
	for n := range a.folders {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "INBOX") != (names[j] == "INBOX") {
			return names[i] == "INBOX"
		}
		return names[i] < names[j]
	})
	return names
}

func (a *account) hasChildren(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for n := range a.folders {
		if strings.HasPrefix(n, name+string(delim)) {
			return true
		}
	}
	return false
}

// literal is an imap.LiteralReader over bytes already in memory.
type literal struct {
	*bytes.Reader
	n int64
}

func newLiteral(b []byte) literal { return literal{bytes.NewReader(b), int64(len(b))} }

func (l literal) Size() int64 { return l.n }

func randString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// redactLogger masks every issued token and internal password before a
// line reaches Options.Logf, and drops lines once the test is over (a
// late tb.Logf panics).
type redactLogger struct {
	c      *Cloud
	prefix string
}

func (l redactLogger) Printf(format string, args ...any) {
	l.c.logf(l.prefix + fmt.Sprintf(format, args...))
}

func (c *Cloud) logf(line string) {
	c.mu.Lock()
	var secrets []string
	for t := range c.tokens {
		secrets = append(secrets, t)
	}
	for _, a := range c.accounts {
		secrets = append(secrets, a.pass)
	}
	c.mu.Unlock()
	for _, s := range secrets {
		line = strings.ReplaceAll(line, s, "[redacted]")
	}
	if i := strings.Index(line, "auth=Bearer "); i >= 0 {
		line = line[:i] + "auth=Bearer [redacted]"
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	if !c.logClosed {
		c.opts.Logf("%s", line)
	}
}
