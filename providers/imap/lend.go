package imap

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mailferry/mailferry/providers"
)

// An appender is not a connection of its own: it borrows an idle pooled
// connection and gives it back when the mailbox is flushed. A login costs
// a server more than a small mailbox does (Dovecot: about 14 ms of CPU,
// starting an imap-login and an imap process), and an ordinary account
// copies its mailboxes one after another, so an account needs one
// connection to its destination, not one to read and one to append.
//
// go-imap's reader goroutine reads the connection all the time. While
// the connection is lent it is held in readGate.read: the socket's read
// deadline is set in the past to wake it from the read it is in, and the
// timeout it gets is kept from go-imap. Only an idle connection with no
// mailbox selected is lent, so the server has nothing to say to go-imap
// meanwhile; if it speaks anyway (an alert, a BYE) as the connection is
// lent, the connection is not lent but closed.

// errSpoke is a connection whose server spoke as it was being lent.
var errSpoke = providers.WithClass(providers.ClassTransient, errors.New("the server spoke while the connection was being lent for APPEND"))

// readGate holds go-imap's reader while the connection is lent.
type readGate struct {
	r io.Reader

	mu      sync.Mutex
	cond    sync.Cond
	lent    bool
	reading bool // go-imap's reader is in r.Read
	spoke   bool // an interrupted read brought bytes
}

func newReadGate(r io.Reader) *readGate {
	g := &readGate{r: r}
	g.cond.L = &g.mu
	return g
}

func (g *readGate) read(p []byte) (int, error) {
	for {
		g.mu.Lock()
		for g.lent {
			g.cond.Wait()
		}
		g.reading = true
		g.mu.Unlock()
		n, err := g.r.Read(p)
		g.mu.Lock()
		g.reading = false
		interrupted := g.lent && errors.Is(err, os.ErrDeadlineExceeded)
		if interrupted && n > 0 {
			g.spoke = true
		}
		g.cond.Broadcast()
		g.mu.Unlock()
		switch {
		case interrupted && n == 0:
			continue // read again once given back
		case interrupted:
			return n, nil // what came is go-imap's; lend refuses the connection
		}
		return n, err
	}
}

// lend stops go-imap's reader, waking it with interrupt, and reports
// whether the connection is quiet: false if the server spoke meanwhile.
func (g *readGate) lend(interrupt func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lent = true
	if g.reading {
		interrupt()
	}
	for g.reading {
		g.cond.Wait()
	}
	return !g.spoke
}

// giveBack lets go-imap's reader go on.
func (g *readGate) giveBack() {
	g.mu.Lock()
	g.lent = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// interrupt wakes whatever reads the session's socket, with a timeout.
func (se *session) interrupt() { se.w.Conn.SetReadDeadline(time.Now()) }

// resume lets reads of the session's socket wait again.
func (se *session) resume() { se.w.Conn.SetReadDeadline(time.Time{}) }

// getAppender lends a pooled connection, or a new one, within the caps,
// as an appender pointed at the mailbox. A pooled connection the server
// hung up a moment ago fails as it is lent: another is tried.
func (s *Store) getAppender(ctx context.Context, name string, validity uint32, fresh bool, adopt func(uint32)) (*appender, error) {
	for attempt := 1; ; attempt++ {
		cn, err := s.get(ctx)
		if err != nil {
			return nil, err
		}
		pooled := !cn.idleFrom.IsZero()
		a, err := s.lend(ctx, cn)
		if err != nil {
			s.put(cn, err)
			if pooled && attempt < 3 && ctx.Err() == nil && !cn.w.stalled.Load() {
				continue
			}
			return nil, err
		}
		a.target(name, validity)
		a.fresh, a.adopt = fresh, adopt
		go a.read() // after target: the reader reads what it set
		return a, nil
	}
}

// lend makes cn an appender, whose reader the caller starts. Its
// selected mailbox is left first: no
// APPEND goes to a mailbox its connection has EXAMINEd (Courier refuses
// that: "Current box is selected READ-ONLY").
func (s *Store) lend(ctx context.Context, cn *conn) (*appender, error) {
	if cn.selected != "" {
		if err := cn.do(ctx, func() error { return s.leave(cn) }); err != nil {
			return nil, classify(err, opOther)
		}
	}
	if !cn.gate.lend(cn.se.interrupt) {
		cn.gate.giveBack()
		return nil, errSpoke
	}
	cn.se.resume()
	return &appender{s: s, se: cn.se, lent: cn, inflight: make(chan *group, s.cfg.PipelineDepth+1),
		window: semaphore.NewWeighted(int64(s.cfg.PipelineDepth)), cont: make(chan bool, 1), readDone: make(chan struct{})}, nil
}

// putAppender flushes an appender and gives its connection back to the
// pool, or closes it if it broke.
func (s *Store) putAppender(a *appender) {
	err := a.Flush(context.Background())
	if err == nil {
		// Nothing is in flight: the reader is woken from its read and
		// stops, and go-imap's goes on.
		a.stopping.Store(true)
		a.se.interrupt()
	}
	// Nothing more is sent. A reader that lost the connection meanwhile
	// goes through what was in flight, which closing ends.
	close(a.inflight)
	<-a.readDone
	if err == nil {
		a.se.resume()
		err = a.broken()
	}
	a.lent.gate.giveBack()
	s.put(a.lent, err)
}
