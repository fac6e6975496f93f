package fakecloud

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// Reply texts, as the real services send them (sources in the comments).
var (
	// Gmail's answer to a bad password or token, after the XOAUTH2 JSON
	// challenge (Webklex/laravel-imap#390, emailjs-imap-client#131).
	gmailAuthFailed = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Invalid credentials (Failure)"}
	// Gmail's answer to an unparsable XOAUTH2 string (node-imap#233).
	gmailBadSASL = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Invalid SASL argument."}
	// Gmail beyond its 15 connections per account (wildduck#35, runt#1).
	gmailTooMany = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlert, Text: "Too many simultaneous connections. (Failure)"}
	// Gmail's rate limit, seen on FETCH (ha-email-sensor#16, mailcow#1554).
	// OVERQUOTA here means "slow down", not "mailbox full".
	gmailThrottled = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Account exceeded command or bandwidth limits."}
	// Gmail dropping an APPEND (imapsync#120).
	gmailBye = "System Error"

	// Office 365 with basic auth off (imapsync#368, MailKit#849, MailKit#690,
	// MicrosoftDocs/office-developer-exchange-docs#87): no JSON challenge,
	// a plain NO straight away, for PLAIN and for bad XOAUTH2 tokens alike.
	o365LoginFailed = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "LOGIN failed."}
	o365AuthFailed  = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "AUTHENTICATE failed."}
	// Office 365 when a connection limit is hit: login succeeds, the next
	// command fails, then BYE (email-oauth2-proxy#74, node-imap#523,
	// Webklex/php-imap#464).
	o365NotConnected = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "User is authenticated but not connected."}
	// Office 365's BYE (MailKit#849, email-oauth2-proxy#191).
	o365Bye = "Connection closed. 14"

	// Not taken from a real log: Gmail's text for a mechanism it does not
	// offer (so are "Folder is not selectable" and errSystemFolder's).
	gmailNoMech = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Unsupported AUTHENTICATE mechanism. (Failure)"}
)

// gmailChallenge is Gmail's XOAUTH2 error challenge; also used for
// OAUTHBEARER, which Gmail serves from the same backend.
const gmailChallenge = `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`

// Gmail's APPENDLIMIT (35651584 bytes, its post-login CAPABILITY).
const gmailAppendLimit = 35651584

func (c *Cloud) byeText() string {
	if c.opts.Flavor == Gmail {
		return gmailBye
	}
	return o365Bye
}

func (c *Cloud) throttleErr() error {
	if c.opts.Flavor == Gmail {
		return gmailThrottled
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo,
		Text: fmt.Sprintf("Request is throttled. Suggested Backoff Time: %d milliseconds", c.opts.ThrottleBackoff.Milliseconds())}
}

func (c *Cloud) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	s := &session{c: c, conn: conn, wire: conn.NetConn().(*wireConn)}
	if c.opts.Flavor == Gmail {
		return gmailSession{s}, nil, nil
	}
	return s, nil, nil
}

// session is one client connection. Before authentication only Login and
// the SASL methods are called (imapserver checks the state); after it, us
// is set, unless the connection was let in over Office 365's cap
// (refused), in which case every command gets "not connected" and BYE.
type session struct {
	c    *Cloud
	conn *imapserver.Conn
	wire *wireConn

	acct    *account
	us      *imapmemserver.UserSession
	counted bool
	refused bool
}

// gmailSession adds APPENDLIMIT, which imapserver advertises for any
// session type that has the method.
type gmailSession struct{ *session }

func (gmailSession) AppendLimit() uint32 { return gmailAppendLimit }

var (
	_ imapserver.SessionSASL        = (*session)(nil)
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = gmailSession{}
)

func (s *session) Close() error {
	if s.us != nil {
		s.us.Close()
	}
	if s.counted {
		s.counted = false
		s.c.release(s.acct.name)
	}
	return nil
}

// Login is the LOGIN command: always refused, as both services do once
// basic auth is off.
func (s *session) Login(username, password string) error {
	s.c.count(&s.c.stats.AuthFailed)
	if s.c.opts.Flavor == Gmail {
		return gmailAuthFailed
	}
	return o365LoginFailed
}

// AuthenticateMechanisms lists PLAIN too, as both services do, though it
// always fails: a client must pick the OAuth mechanism itself.
func (s *session) AuthenticateMechanisms() []string {
	if s.c.opts.Flavor == Gmail {
		return []string{"XOAUTH2", "PLAIN", sasl.OAuthBearer}
	}
	return []string{"PLAIN", "XOAUTH2"}
}

func (s *session) Authenticate(mech string) (sasl.Server, error) {
	for _, m := range s.AuthenticateMechanisms() {
		if m == mech {
			return &authServer{s: s, mech: mech}, nil
		}
	}
	if s.c.opts.Flavor == Gmail {
		return nil, gmailNoMech
	}
	return nil, o365AuthFailed
}

// authServer runs one AUTHENTICATE exchange. imapserver calls Next with
// the initial response (nil without SASL-IR), writes each challenge as a
// continuation, and ends the command with the first error Next returns
// as the tagged reply. So Gmail's failure is: a JSON challenge now, then
// the NO (pending) on whatever the client answers.
type authServer struct {
	s       *session
	mech    string
	asked   bool
	pending error
}

func (a *authServer) Next(resp []byte) ([]byte, bool, error) {
	if a.pending != nil {
		return nil, false, a.pending
	}
	if resp == nil && !a.asked {
		a.asked = true
		return nil, false, nil // "+ ": send the initial response
	}
	c := a.s.c
	gmail := c.opts.Flavor == Gmail
	var user, token string
	var ok bool
	switch a.mech {
	case "XOAUTH2":
		user, token, ok = parseXOAuth2(resp)
	case sasl.OAuthBearer:
		user, token, ok = parseOAuthBearer(resp)
		if ok && user == "" {
			user = c.tokenUser(token) // the authzid is optional in RFC 7628
		}
	default: // PLAIN: never accepted
		c.count(&c.stats.AuthFailed)
		if gmail {
			return nil, false, gmailAuthFailed
		}
		return nil, false, o365AuthFailed
	}
	if !ok {
		c.count(&c.stats.AuthFailed)
		if gmail {
			return nil, false, gmailBadSASL
		}
		return nil, false, o365AuthFailed
	}
	if c.account(user) == nil || !c.tokenOK(user, token) {
		c.count(&c.stats.AuthFailed)
		if !gmail {
			return nil, false, o365AuthFailed
		}
		a.pending = gmailAuthFailed
		return []byte(gmailChallenge), false, nil
	}
	acct := c.account(user)
	if !c.admit(user) {
		if gmail {
			a.s.wire.closeAfterNextWrite(nil) // the NO, then hang up
			return nil, false, gmailTooMany
		}
		a.s.acct, a.s.refused = acct, true
		return nil, true, nil
	}
	a.s.acct, a.s.counted = acct, true
	a.s.us = imapmemserver.NewUserSession(acct.mem)
	return nil, true, nil
}

// parseXOAuth2 splits "user=" USER "\x01auth=Bearer " TOKEN "\x01\x01".
func parseXOAuth2(b []byte) (user, token string, ok bool) {
	s, found := strings.CutSuffix(string(b), "\x01\x01")
	if !found {
		return "", "", false
	}
	u, rest, found := strings.Cut(s, "\x01")
	if !found || !strings.HasPrefix(u, "user=") {
		return "", "", false
	}
	k, v, found := strings.Cut(rest, "=")
	if !found || k != "auth" || len(v) < 7 || !strings.EqualFold(v[:7], "Bearer ") {
		return "", "", false
	}
	return u[len("user="):], v[7:], v[7:] != ""
}

// parseOAuthBearer reads RFC 7628's gs2 header "n,a=USER," then
// \x01-separated key=value pairs (host, port, auth) ending in \x01\x01.
// Written here rather than go-sasl's server, which indexes an empty
// response and panics, and returns a non-IMAP error that imapserver turns
// into "NO [SERVERBUG]".
func parseOAuthBearer(b []byte) (user, token string, ok bool) {
	parts := bytes.SplitN(b, []byte{','}, 3)
	if len(parts) != 3 || string(parts[0]) != "n" {
		return "", "", false
	}
	if len(parts[1]) > 0 {
		a, found := bytes.CutPrefix(parts[1], []byte("a="))
		if !found {
			return "", "", false
		}
		user = string(a)
	}
	kv, found := bytes.CutSuffix(parts[2], []byte{1, 1})
	if !found || len(kv) == 0 || kv[0] != 1 {
		return "", "", false
	}
	for _, p := range bytes.Split(kv[1:], []byte{1}) {
		k, v, found := strings.Cut(string(p), "=")
		if !found {
			return "", "", false
		}
		if k == "auth" {
			if len(v) < 7 || !strings.EqualFold(v[:7], "Bearer ") {
				return "", "", false
			}
			token = v[7:]
		}
	}
	return user, token, token != ""
}

func (c *Cloud) tokenUser(token string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.tokens[token]; t != nil {
		return t.user
	}
	return ""
}

// guard makes a refused Office 365 session answer its first command with
// "BAD User is authenticated but not connected." followed by BYE.
func (s *session) guard() error {
	if !s.refused {
		return nil
	}
	s.wire.closeAfterNextWrite([]byte("* BYE " + o365Bye + "\r\n"))
	return o365NotConnected
}

func (s *session) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if err := s.guard(); err != nil {
		return nil, err
	}
	return s.us.Select(mailbox, options)
}

func (s *session) Create(mailbox string, options *imap.CreateOptions) error {
	if err := s.guard(); err != nil {
		return err
	}
	return s.acct.create(mailbox)
}

var errSystemFolder = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "System folders cannot be deleted or renamed"}

func (s *session) Delete(mailbox string) error {
	if err := s.guard(); err != nil {
		return err
	}
	a := s.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	if f := a.folders[mailbox]; f != nil && f.system {
		return errSystemFolder
	}
	if err := a.mem.Delete(mailbox); err != nil {
		return err
	}
	delete(a.folders, mailbox)
	return nil
}

func (s *session) Rename(mailbox, newName string, options *imap.RenameOptions) error {
	if err := s.guard(); err != nil {
		return err
	}
	a := s.acct
	newName = strings.TrimRight(newName, string(delim))
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.folders[mailbox]
	if f != nil && f.system {
		return errSystemFolder
	}
	if a.folders[newName] != nil {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox already exists"}
	}
	if err := a.mem.Rename(mailbox, newName, options); err != nil {
		return err
	}
	delete(a.folders, mailbox)
	a.folders[newName] = f
	return nil
}

func (s *session) Subscribe(mailbox string) error   { return s.setSubscribed(mailbox, true) }
func (s *session) Unsubscribe(mailbox string) error { return s.setSubscribed(mailbox, false) }

func (s *session) setSubscribed(mailbox string, on bool) error {
	if err := s.guard(); err != nil {
		return err
	}
	a := s.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.folders[mailbox]
	if f == nil {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	}
	f.subscribed = on
	return nil
}

// List is written here, not delegated, because imapmemserver cannot
// produce SPECIAL-USE attributes or \Noselect folders. Like both real
// services it sends the special-use attributes in every LIST, asked for
// or not, plus \HasChildren/\HasNoChildren.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if err := s.guard(); err != nil {
		return err
	}
	if len(patterns) == 0 { // LIST "" "": the delimiter
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	a := s.acct
	for _, name := range a.names() {
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(name, delim, ref, p) {
				match = true
				break
			}
		}
		f := a.folder(name)
		if !match || f == nil {
			continue
		}
		a.mu.Lock()
		subscribed, attrs, noselect := f.subscribed, append([]imap.MailboxAttr(nil), f.attrs...), f.noselect
		a.mu.Unlock()
		special := len(attrs) > 0 && !(noselect && len(attrs) == 1)
		if options.SelectSubscribed && !subscribed || options.SelectSpecialUse && !special {
			continue
		}
		if a.hasChildren(name) {
			attrs = append(attrs, imap.MailboxAttrHasChildren)
		} else {
			attrs = append(attrs, imap.MailboxAttrHasNoChildren)
		}
		if subscribed && (options.SelectSubscribed || options.ReturnSubscribed) {
			attrs = append(attrs, imap.MailboxAttrSubscribed)
		}
		data := &imap.ListData{Mailbox: name, Delim: delim, Attrs: attrs}
		if options.ReturnStatus != nil && !noselect {
			st, err := a.mem.Status(name, options.ReturnStatus)
			if err != nil {
				return err
			}
			data.Status = st
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	if err := s.guard(); err != nil {
		return nil, err
	}
	return s.us.Status(mailbox, options)
}

// Append applies the fault injections, then stores the message.
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if err := s.guard(); err != nil {
		return nil, err
	}
	c := s.c
	n := c.appendSeq.Add(1)
	if every := int64(c.opts.ByeEvery); every > 0 && n%every == 0 {
		// Read the literal first so that the close is a clean FIN after
		// BYE, not a reset that can eat the BYE.
		io.Copy(io.Discard, r)
		c.count(&c.stats.Byes)
		s.conn.Bye(c.byeText())
		// imapserver tries to write this as the tagged reply, onto the
		// closed connection, which fails quietly.
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: c.byeText()}
	}
	if every := int64(c.opts.ThrottleEvery); every > 0 && n%every == 0 {
		c.count(&c.stats.Throttled)
		return nil, c.throttleErr() // imapserver discards the literal
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) != r.Size() { // the client hung up mid-literal
		return nil, io.ErrUnexpectedEOF
	}
	data, err := c.store(s.acct, mailbox, raw, options)
	if err == nil {
		c.count(&c.stats.Appends)
	}
	return data, err
}

// Poll runs after every successful command, CAPABILITY included, which
// go-imap's client sends right after AUTHENTICATE and which Office 365
// answers even on a refused session; so a refused session lets it be.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.refused {
		return nil
	}
	return s.us.Poll(w, allowExpunge)
}

func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.refused {
		return s.conn.Bye(o365Bye)
	}
	return s.us.Idle(w, stop)
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	if err := s.guard(); err != nil {
		return nil, err
	}
	return s.us.Namespace()
}

func (s *session) Unselect() error {
	if err := s.guard(); err != nil {
		return err
	}
	return s.us.Unselect()
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if err := s.guard(); err != nil {
		return err
	}
	return s.us.Expunge(w, uids)
}

func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	if err := s.guard(); err != nil {
		return nil, err
	}
	return s.us.Search(kind, criteria, options)
}

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if err := s.guard(); err != nil {
		return err
	}
	return s.us.Fetch(w, numSet, options)
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if err := s.guard(); err != nil {
		return err
	}
	return s.us.Store(w, numSet, flags, options)
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	if err := s.guard(); err != nil {
		return nil, err
	}
	return s.us.Copy(numSet, dest)
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if err := s.guard(); err != nil {
		return err
	}
	return s.us.Move(w, numSet, dest)
}
