package imap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// TestAppendsBorrowTheReadConnection: a store that reads and appends
// mailbox after mailbox, as an account's copy does, logs in once (real
// Dovecot, connections counted by the fault proxy); see also
// TestTLSAppendsBorrowTheReadConnection.
func TestAppendsBorrowTheReadConnection(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": "pw-alice"}})
	p := imaptest.StartFaultProxy(t, d.Addr())
	st, err := Open(context.Background(), Config{Endpoint: Endpoint{Security: Plain, Host: p.Host, Port: p.Port},
		User: "alice", Password: "pw-alice", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for box, n := range ReadAppendRead(t, st, []string{"One", "Two", "Three"}) {
		if got := len(d.Messages(t, "alice", box)); got != n {
			t.Errorf("%s: Dovecot holds %d messages, want %d", box, got, n)
		}
	}
	if s := p.Stats(); s.Accepted != 1 || s.AppendLiterals != 18 {
		t.Errorf("%d connections for %d appended messages: want one, for reading and appending", s.Accepted, s.AppendLiterals)
	}
}

// wakeable is a socket as readGate sees it: Read waits for data, or for
// interrupt, which makes it fail with a timeout after handing over what
// the "server" sent at that moment (spoken).
type wakeable struct {
	data   chan []byte
	wake   chan struct{}
	spoken []byte
}

func (w *wakeable) Read(p []byte) (int, error) {
	select {
	case b := <-w.data:
		return copy(p, b), nil
	case <-w.wake:
		n := copy(p, w.spoken)
		return n, fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded)
	}
}

// TestReadGate: lending wakes go-imap's reader from its read and holds
// it, without an error, until the connection is given back, when it reads
// on; a server that speaks as the connection is lent makes lend refuse,
// and what it said still reaches go-imap.
func TestReadGate(t *testing.T) {
	for _, c := range []struct {
		name   string
		spoken string
	}{{"quiet", ""}, {"spoke", "* OK [ALERT] going down\r\n"}} {
		t.Run(c.name, func(t *testing.T) {
			w := &wakeable{data: make(chan []byte, 1), wake: make(chan struct{}, 1), spoken: []byte(c.spoken)}
			g := newReadGate(w)
			got := make(chan string, 2)
			go func() {
				buf := make([]byte, 64)
				for {
					n, err := g.read(buf)
					if err != nil {
						got <- "error: " + err.Error()
						return
					}
					got <- string(buf[:n])
				}
			}()
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				g.mu.Lock()
				reading := g.reading
				g.mu.Unlock()
				if reading {
					break // the reader waits in Read
				}
				if time.Now().After(deadline) {
					t.Fatal("the reader never read")
				}
			}
			quiet := g.lend(func() { w.wake <- struct{}{} })
			if quiet != (c.spoken == "") {
				t.Fatalf("lend = %v with %q said meanwhile", quiet, c.spoken)
			}
			if c.spoken != "" {
				if s := <-got; s != c.spoken {
					t.Errorf("go-imap got %q, want what the server said, %q", s, c.spoken)
				}
			}
			select {
			case s := <-got:
				t.Fatalf("the reader read %q while the connection was lent", s)
			case <-time.After(50 * time.Millisecond):
			}
			w.data <- []byte("* 1 EXISTS\r\n")
			select {
			case s := <-got:
				t.Fatalf("the reader took %q before the connection was given back", s)
			case <-time.After(50 * time.Millisecond):
			}
			g.giveBack()
			select {
			case s := <-got:
				if s != "* 1 EXISTS\r\n" {
					t.Errorf("after giving back, go-imap read %q", s)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the reader did not go on after the connection was given back")
			}
		})
	}
}

var _ io.Reader = (*wakeable)(nil)

// TestLentConnectionLost: a connection lost while lent to an appender is
// closed when the appender is given back, never pooled, and the next
// append borrows a new one.
func TestLentConnectionLost(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": "pw-alice"}})
	p := imaptest.StartFaultProxy(t, d.Addr())
	ctx := context.Background()
	st, err := Open(ctx, Config{Endpoint: Endpoint{Security: Plain, Host: p.Host, Port: p.Port},
		User: "alice", Password: "pw-alice", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.getAppender(ctx, "INBOX", 0, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.DropAll()
	for deadline := time.Now().Add(10 * time.Second); a.broken() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the appender never saw its connection go")
		}
	}
	done := make(chan struct{})
	go func() { st.putAppender(a); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("giving back a lost appender hangs")
	}
	if n := len(st.idle); n != 0 {
		t.Errorf("%d connections pooled after the loss, want the lost one closed", n)
	}
	raw := []byte("Subject: after\r\nMessage-ID: <after@x>\r\n\r\nbody\r\n")
	a, err = st.getAppender(ctx, "INBOX", 0, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got error = fmt.Errorf("no verdict")
	if err := a.Append(ctx, bytesReader(raw), int64(len(raw)), providers.MessageInfo{}, func(_ providers.UID, err error) { got = err }, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	st.putAppender(a)
	if got != nil {
		t.Errorf("append after the loss: %v", got)
	}
	if n := len(d.Messages(t, "alice", "INBOX")); n != 1 || p.Stats().Accepted != 2 {
		t.Errorf("INBOX holds %d messages over %d connections, want 1 over 2", n, p.Stats().Accepted)
	}
}
