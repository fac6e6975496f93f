// Package memserver runs go-imap's in-memory IMAP server on loopback, for
// the demo and for fast tests. It is not a stand-in for a real server: it
// lowercases keywords, has no SPECIAL-USE attributes and keeps everything in
// RAM.
package memserver

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sort"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Server is a running in-memory IMAP server.
type Server struct {
	ln    net.Listener
	srv   *imapserver.Server
	users map[string]string
}

// Start listens on 127.0.0.1 on a free port with the given users
// (login -> password), each with an empty INBOX.
func Start(users map[string]string) (*Server, error) { return StartTLS(users, nil, false) }

// StartTLS is Start with TLS: implicit TLS on the port when implicit is
// set, else STARTTLS offered on a plain port.
func StartTLS(users map[string]string, cfg *tls.Config, implicit bool) (*Server, error) {
	mem := imapmemserver.New()
	for name, pass := range users {
		u := imapmemserver.NewUser(name, pass)
		if err := u.Create("INBOX", nil); err != nil {
			return nil, err
		}
		mem.AddUser(u)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{mem.NewSession()}, nil, nil
		},
		Caps: goimap.CapSet{
			goimap.CapIMAP4rev1: {}, goimap.CapUIDPlus: {}, goimap.CapLiteralPlus: {}, goimap.CapSpecialUse: {},
			goimap.CapListStatus: {}, goimap.CapListExtended: {}, goimap.CapNamespace: {}, goimap.CapMove: {},
			goimap.CapUnselect: {}, goimap.CapESearch: {},
		},
		InsecureAuth: true,
		TLSConfig:    cfg,
		// A client hanging up (the demo kills one) is not news.
		Logger: log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if implicit {
		ln = tls.NewListener(ln, cfg)
	}
	go srv.Serve(ln)
	return &Server{ln: ln, srv: srv, users: users}, nil
}

// session fixes one flaw of imapmemserver that matters to a migration
// demo: when a client drops mid-APPEND, it stores the truncated literal as
// a message. A real server discards it; so does this one.
type session struct{ imapserver.Session }

var (
	_ imapserver.SessionMove      = (*session)(nil)
	_ imapserver.SessionNamespace = (*session)(nil)
)

func (s *session) Append(mailbox string, r goimap.LiteralReader, opts *goimap.AppendOptions) (*goimap.AppendData, error) {
	return s.Session.Append(mailbox, &wholeLiteral{LiteralReader: r}, opts)
}

func (s *session) Move(w *imapserver.MoveWriter, numSet goimap.NumSet, dest string) error {
	return s.Session.(imapserver.SessionMove).Move(w, numSet, dest)
}

func (s *session) Namespace() (*goimap.NamespaceData, error) {
	return s.Session.(imapserver.SessionNamespace).Namespace()
}

// wholeLiteral turns an early end of a literal into an error.
type wholeLiteral struct {
	goimap.LiteralReader
	n int64
}

func (w *wholeLiteral) Read(p []byte) (int, error) {
	n, err := w.LiteralReader.Read(p)
	w.n += int64(n)
	if err == io.EOF && w.n < w.Size() {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port is the TCP port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Message is one message to seed.
type Message struct {
	Raw   []byte
	Flags []string
	Date  time.Time
}

// Seed logs in as user with go-imap directly and appends msgs to mailbox,
// creating it first. It does not use mailferry's own IMAP code, so what it
// puts there is independent of what is being tested.
func (s *Server) Seed(user, mailbox string, msgs []Message) error {
	pass, ok := s.users[user]
	if !ok {
		return fmt.Errorf("no user %q", user)
	}
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		return err
	}
	if mailbox != "INBOX" {
		var ie *goimap.Error
		if err := c.Create(mailbox, nil).Wait(); err != nil && !(errors.As(err, &ie) && ie.Code == goimap.ResponseCodeAlreadyExists) {
			return fmt.Errorf("create %q: %w", mailbox, err)
		}
	}
	for _, m := range msgs {
		flags := make([]goimap.Flag, len(m.Flags))
		for i, f := range m.Flags {
			flags[i] = goimap.Flag(f)
		}
		cmd := c.Append(mailbox, int64(len(m.Raw)), &goimap.AppendOptions{Flags: flags, Time: m.Date})
		if _, err := cmd.Write(m.Raw); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("append to %q: %w", mailbox, err)
		}
	}
	return c.Logout().Wait()
}

// Snapshot reads a mailbox with go-imap directly, independent of
// mailferry's adapter, and returns one line per message: the sha256 of its
// bytes, its sorted flags and its internal date, sorted. Two mailboxes with
// equal snapshots hold the same messages byte for byte.
func (s *Server) Snapshot(user, mailbox string) ([]string, error) {
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, s.users[user]).Wait(); err != nil {
		return nil, err
	}
	sel, err := c.Select(mailbox, &goimap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("select %q: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var all goimap.SeqSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &goimap.FetchOptions{Flags: true, InternalDate: true,
		BodySection: []*goimap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch %q: %w", mailbox, err)
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		flags := make([]string, 0, len(m.Flags))
		for _, f := range m.Flags {
			flags = append(flags, string(f))
		}
		sort.Strings(flags)
		body := m.FindBodySection(&goimap.FetchItemBodySection{})
		out = append(out, fmt.Sprintf("%x %v %s", sha256.Sum256(body), flags, m.InternalDate.UTC().Format(time.RFC3339)))
	}
	sort.Strings(out)
	return out, nil
}

// AddFlag adds flag to the first message of a mailbox with go-imap
// directly, as a user's mail client would.
func (s *Server) AddFlag(user, mailbox, flag string) error {
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, s.users[user]).Wait(); err != nil {
		return err
	}
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		return fmt.Errorf("select %q: %w", mailbox, err)
	}
	store := c.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.Flag(flag)}}, nil)
	if err := store.Close(); err != nil {
		return fmt.Errorf("store in %q: %w", mailbox, err)
	}
	return c.Logout().Wait()
}
