package imaptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers/imap"
)

// step is one exchange of a scripted conversation: the client sends send,
// then the server, having read exactly send, answers reply.
type step struct {
	send, reply string
}

// scriptServer is a fake IMAP server that plays a script on each
// connection: it greets, then for each step reads exactly the bytes the
// client is to send and answers. It records every byte it received.
type scriptServer struct {
	ln     net.Listener
	script []step
	mu     sync.Mutex
	got    []*bytes.Buffer // per connection, what the server received
	wg     sync.WaitGroup
}

const greeting = "* OK [CAPABILITY IMAP4rev1 LITERAL+] fake ready\r\n"

func startScriptServer(t *testing.T, script []step) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{ln: ln, script: script}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := &bytes.Buffer{}
			s.mu.Lock()
			s.got = append(s.got, buf)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(conn, greeting); err != nil {
					return
				}
				for _, st := range s.script {
					b := make([]byte, len(st.send))
					n, err := io.ReadFull(conn, b)
					s.mu.Lock()
					buf.Write(b[:n])
					s.mu.Unlock()
					if err != nil {
						return
					}
					if _, err := io.WriteString(conn, st.reply); err != nil {
						return
					}
				}
				// Record whatever else arrives until the client goes.
				rest, _ := io.ReadAll(conn)
				s.mu.Lock()
				buf.Write(rest)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// received returns what connection i sent the server so far.
func (s *scriptServer) received(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.got) {
		return ""
	}
	return s.got[i].String()
}

// scriptClient talks to addr by the same script and returns everything it
// received. A step's bytes are sent only once the previous reply arrived
// in full; reading stops early, without failing, when the connection ends
// or nothing comes for quiet.
func scriptClient(t *testing.T, addr string, script []step, quiet time.Duration) (string, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got bytes.Buffer
	readN := func(n int) error {
		conn.SetReadDeadline(time.Now().Add(quiet))
		_, err := io.CopyN(&got, conn, int64(n))
		return err
	}
	if err := readN(len(greeting)); err != nil {
		return got.String(), err
	}
	for _, st := range script {
		if _, err := io.WriteString(conn, st.send); err != nil {
			return got.String(), err
		}
		if err := readN(len(st.reply)); err != nil {
			return got.String(), err
		}
	}
	return got.String(), nil
}

// binary returns n random bytes salted with things a careless parser
// would take for protocol: CRLFs, literal announcements and tags.
func binary(rng *rand.Rand, n int) string {
	traps := []string{"\r\n", "{12}\r\n", "{3+}\r\n", "A9 OK done\r\n", "* 1 FETCH (BODY[] {4}\r\n", "+ go\r\n", "\n", "\r"}
	var b strings.Builder
	for b.Len() < n {
		if rng.IntN(8) == 0 {
			b.WriteString(traps[rng.IntN(len(traps))])
			continue
		}
		b.WriteByte(byte(rng.IntN(256)))
	}
	return b.String()[:n]
}

// text returns n bytes of lines that survive a Dovecot APPEND unchanged,
// salted with protocol look-alikes.
func text(rng *rand.Rand, n int) string {
	traps := []string{"{12}\r\n", "{3+}\r\n", "A9 OK done\r\n", "* 1 FETCH (BODY[] {4}\r\n", "+ go\r\n", ")\r\n"}
	var b strings.Builder
	for b.Len() < n {
		if rng.IntN(20) == 0 {
			b.WriteString(traps[rng.IntN(len(traps))])
			continue
		}
		b.WriteByte(byte(' ' + rng.IntN(95)))
	}
	// A cut CRLF would leave a CR that Dovecot drops before a CRLF.
	return strings.TrimSuffix(b.String()[:n], "\r")
}

// conversation is a script that exercises every construct the proxy
// parses: synchronizing and non-synchronizing literals in commands,
// literals in FETCH responses (one large enough to span many reads), a
// continuation, pipelining and UID commands.
func conversation(rng *rand.Rand) (script []step, bodies []string) {
	msg1, msg2, big := binary(rng, 3000), binary(rng, 700), binary(rng, 300<<10)
	bodies = []string{msg1, msg2, big}
	script = []step{
		{"A1 LOGIN {5}\r\n", "+ go ahead\r\n"},
		{"alice {2+}\r\npw\r\n", "A1 OK logged in\r\n"},
		{fmt.Sprintf("A2 APPEND INBOX (\\Seen) \"07-Jun-2023 08:09:10 +0000\" {%d}\r\n", len(msg1)), "+ Ready for literal data\r\n"},
		{msg1 + "\r\n", "A2 OK [APPENDUID 7 1] Append completed.\r\n"},
		{fmt.Sprintf("A3 APPEND INBOX {%d+}\r\n%s\r\nA4 NOOP\r\n", len(msg2), msg2), "A3 OK [APPENDUID 7 2] done\r\nA4 OK NOOP done\r\n"},
		{"A5 UID FETCH 1:* (UID BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n",
			fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}\r\n%s BODY[HEADER.FIELDS (MESSAGE-ID)] {2}\r\n\r\n)\r\n", len(msg1), msg1) +
				fmt.Sprintf("* 2 FETCH (UID 2 BODY[] {%d}\r\n%s)\r\n", len(msg2), msg2) +
				fmt.Sprintf("* 3 FETCH (UID 3 BODY[] {%d}\r\n%s)\r\n", len(big), big) +
				"A5 OK Fetch completed.\r\n"},
		{"A6 LOGOUT\r\n", "* BYE Logging out\r\nA6 OK Logout completed.\r\n"},
	}
	return script, bodies
}

func joinSends(script []step) string {
	var b strings.Builder
	for _, st := range script {
		b.WriteString(st.send)
	}
	return b.String()
}

func joinReplies(script []step) string {
	var b strings.Builder
	b.WriteString(greeting)
	for _, st := range script {
		b.WriteString(st.reply)
	}
	return b.String()
}

const quiet = 5 * time.Second

func TestFaultProxyForwardsExactly(t *testing.T) {
	for _, bw := range []int64{0, 4 << 20} {
		t.Run(fmt.Sprintf("bandwidth=%d", bw), func(t *testing.T) {
			script, _ := conversation(rand.New(rand.NewPCG(uint64(bw), 1)))
			srv := startScriptServer(t, script)
			p := StartFaultProxy(t, srv.ln.Addr().String())
			p.SetBandwidth(bw)
			got, err := scriptClient(t, p.Addr(), script, quiet)
			if err != nil {
				t.Fatalf("client: %v after %d bytes", err, len(got))
			}
			if want := joinReplies(script); got != want {
				t.Errorf("client received %d bytes, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
			}
			waitFor(t, func() bool { return srv.received(0) == joinSends(script) }, "server to receive the client's bytes")
			st := p.Stats()
			if st.Accepted != 1 || st.Appends != 2 || st.AppendLiterals != 2 || st.Commands["UID FETCH"] != 1 || st.Commands["LOGIN"] != 1 || st.Commands["NOOP"] != 1 || st.Fired != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// upTo returns the script's replies as the client sees them, cut just
// after the first occurrence of marker plus extra bytes.
func upTo(t *testing.T, s, marker string, extra int) string {
	t.Helper()
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("marker %q not in script", marker)
	}
	return s[:i+len(marker)+extra]
}

func TestFaultProxyFaults(t *testing.T) {
	script, bodies := conversation(rand.New(rand.NewPCG(9, 9)))
	replies, sends := joinReplies(script), joinSends(script)
	tests := []struct {
		name string
		arm  func(p *FaultProxy) *Fault
		// What the client and the server must have received.
		client, server string
		clientErr      bool // the client's script must break off
	}{{
		name:   "drop mid FETCH body",
		arm:    func(p *FaultProxy) *Fault { return p.DropFetchBody(Nth(3), 1000) },
		client: upTo(t, replies, fmt.Sprintf("{%d}\r\n", len(bodies[2])), 1000),
		server: upTo(t, sends, "HEADER.FIELDS (MESSAGE-ID)])\r\n", 0), clientErr: true,
	}, {
		name:   "drop mid FETCH body, header literals do not count",
		arm:    func(p *FaultProxy) *Fault { return p.DropFetchBody(Nth(2), 0) },
		client: upTo(t, replies, fmt.Sprintf("* 2 FETCH (UID 2 BODY[] {%d}\r\n", len(bodies[1])), 0),
		server: upTo(t, sends, "HEADER.FIELDS (MESSAGE-ID)])\r\n", 0), clientErr: true,
	}, {
		name:   "drop mid APPEND literal",
		arm:    func(p *FaultProxy) *Fault { return p.DropAppendLiteral(Once, 10) },
		client: upTo(t, replies, "+ Ready for literal data\r\n", 0),
		server: upTo(t, sends, fmt.Sprintf("{%d}\r\n", len(bodies[0])), 10), clientErr: true,
	}, {
		name:   "drop mid non-synchronizing APPEND literal",
		arm:    func(p *FaultProxy) *Fault { return p.DropAppendLiteral(Nth(2), 5) },
		client: upTo(t, replies, "A2 OK [APPENDUID 7 1] Append completed.\r\n", 0),
		server: upTo(t, sends, fmt.Sprintf("{%d+}\r\n", len(bodies[1])), 5), clientErr: true,
	}, {
		name:   "reply to APPEND lost",
		arm:    func(p *FaultProxy) *Fault { return p.DropAfterAppendOK(Once) },
		client: upTo(t, replies, "+ Ready for literal data\r\n", 0),
		server: upTo(t, sends, bodies[0]+"\r\n", 0), clientErr: true,
	}, {
		name:   "BYE instead of UID FETCH",
		arm:    func(p *FaultProxy) *Fault { return p.ByeCommand(Once, "uid fetch", "Server shutting down") },
		client: upTo(t, replies, "A4 OK NOOP done\r\n", 0) + "* BYE Server shutting down\r\n",
		server: upTo(t, sends, "A4 NOOP\r\n", 0), clientErr: true,
	}, {
		name:   "stall forever on the second APPEND",
		arm:    func(p *FaultProxy) *Fault { return p.StallCommand(Nth(2), "APPEND", 0) },
		client: upTo(t, replies, "A2 OK [APPENDUID 7 1] Append completed.\r\n", 0),
		server: upTo(t, sends, bodies[0]+"\r\n", 0), clientErr: true,
	}, {
		name:   "stall that ends",
		arm:    func(p *FaultProxy) *Fault { return p.StallCommand(Once, "LOGIN", 200*time.Millisecond) },
		client: replies, server: sends,
	}, {
		name:   "stall of another command never fires",
		arm:    func(p *FaultProxy) *Fault { return p.StallCommand(Once, "SELECT", 0) },
		client: replies, server: sends,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScriptServer(t, script)
			p := StartFaultProxy(t, srv.ln.Addr().String())
			f := tc.arm(p)
			wait := quiet
			if tc.clientErr {
				wait = time.Second // a stall shows as silence
			}
			got, err := scriptClient(t, p.Addr(), script, wait)
			if (err != nil) != tc.clientErr {
				t.Errorf("client error %v, want error: %v", err, tc.clientErr)
			}
			if got != tc.client {
				t.Errorf("client received %d bytes, want %d (first difference at %d)\nend of got:  %q\nend of want: %q",
					len(got), len(tc.client), firstDiff(got, tc.client), lastBytes(got), lastBytes(tc.client))
			}
			if strings.Contains(tc.name, "never") {
				if f.Fired() != 0 {
					t.Errorf("fault fired %d times", f.Fired())
				}
			} else if f.Fired() != 1 {
				t.Errorf("fault fired %d times, want 1", f.Fired())
			}
			p.Close() // ends a stall for good, so the server sees the end
			waitFor(t, func() bool { return srv.received(0) == tc.server }, "the server's bytes")
		})
	}
}

func lastBytes(s string) string {
	return s[max(0, len(s)-60):]
}

// TestFaultProxyRefuseCommand checks the synthetic replies: a command is
// answered by the proxy and never reaches the server, whatever literals it
// carries.
func TestFaultProxyRefuseCommand(t *testing.T) {
	msg := strings.Repeat("x", 100)
	script := []step{
		{"A1 LOGIN alice pw\r\n", "A1 OK logged in\r\n"},
		{"A3 NOOP\r\n", "A3 OK done\r\n"},
	}
	srv := startScriptServer(t, script)
	p := StartFaultProxy(t, srv.ln.Addr().String())
	sync := p.RefuseCommand(Once, "APPEND", "NO", "OVERQUOTA", "Quota exceeded (mailbox for user is full)")
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(quiet))
	buf := make([]byte, 4096)
	expect := func(want string) {
		t.Helper()
		var got []byte
		for len(got) < len(want) {
			n, err := conn.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("read: %v after %q", err, got)
			}
		}
		if string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expect(greeting)
	io.WriteString(conn, script[0].send)
	expect(script[0].reply)
	// A synchronizing literal is refused before the client sends it.
	io.WriteString(conn, "A2 APPEND INBOX {100}\r\n")
	expect("A2 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n")
	// A non-synchronizing one is swallowed whole, with the rest of the line.
	tooBig := p.RefuseCommand(Once, "append", "BAD", "", "Message too big")
	io.WriteString(conn, "A7 APPEND INBOX (\\Seen) {100+}\r\n"+msg+"\r\n")
	expect("A7 BAD Message too big\r\n")
	io.WriteString(conn, script[1].send)
	expect(script[1].reply)
	if sync.Fired() != 1 || tooBig.Fired() != 1 {
		t.Errorf("fired %d and %d, want 1 each", sync.Fired(), tooBig.Fired())
	}
	conn.Close()
	waitFor(t, func() bool { return srv.received(0) == script[0].send+script[1].send }, "the server's bytes")
	if st := p.Stats(); st.Appends != 2 || st.Fired != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestFaultProxyServerRefusesLiteral: when the real server answers a
// synchronizing literal with its tagged NO instead of "+", the proxy knows
// the literal will not come and reads the next command as a command.
func TestFaultProxyServerRefusesLiteral(t *testing.T) {
	script := []step{
		{"A1 APPEND INBOX {100}\r\n", "A1 NO [OVERQUOTA] Quota exceeded\r\n"},
		{"A2 APPEND INBOX {3}\r\n", "+ OK\r\n"},
		{"abc\r\n", "A2 OK done\r\n"},
	}
	srv := startScriptServer(t, script)
	p := StartFaultProxy(t, srv.ln.Addr().String())
	f := p.DropAppendLiteral(Once, 1) // counts literals sent, not commands
	got, err := scriptClient(t, p.Addr(), script, time.Second)
	if err == nil {
		t.Fatalf("client finished the script: %q", got)
	}
	if want := greeting + script[0].reply + script[1].reply; got != want {
		t.Errorf("client got %q, want %q", got, want)
	}
	p.Close()
	waitFor(t, func() bool { return srv.received(0) == script[0].send+script[1].send+"a" }, "the server's bytes")
	if f.Fired() != 1 || p.Stats().Appends != 2 {
		t.Errorf("fired %d, stats %+v", f.Fired(), p.Stats())
	}
}

func TestFaultProxyRefuseConnections(t *testing.T) {
	script := []step{{"A1 NOOP\r\n", "A1 OK done\r\n"}}
	srv := startScriptServer(t, script)
	p := StartFaultProxy(t, srv.ln.Addr().String())
	f := p.RefuseConnections(When{Times: 2}, "Too many connections")
	for i := range 3 {
		got, err := scriptClient(t, p.Addr(), script, quiet)
		if i < 2 {
			if got != "* BYE Too many connections\r\n" || err == nil {
				t.Errorf("connection %d: got %q, %v; want the BYE and the end", i, got, err)
			}
			continue
		}
		if err != nil || got != joinReplies(script) {
			t.Errorf("connection %d: got %q, %v", i, got, err)
		}
	}
	st := p.Stats()
	if st.Accepted != 3 || st.Refused != 2 || f.Fired() != 2 || len(p.Accepts()) != 3 {
		t.Errorf("stats %+v, fired %d", st, f.Fired())
	}
	if srv.received(1) != "" || srv.received(0) != script[0].send {
		t.Errorf("refused connections reached the server")
	}
	// A disarmed fault fires no more.
	f = p.RefuseConnections(When{Times: -1}, "Go away")
	if got, _ := scriptClient(t, p.Addr(), script, quiet); got != "* BYE Go away\r\n" {
		t.Errorf("armed: got %q", got)
	}
	f.Disarm()
	if got, err := scriptClient(t, p.Addr(), script, quiet); err != nil || got != joinReplies(script) {
		t.Errorf("disarmed: got %q, %v", got, err)
	}
}

func TestFaultProxyStallAndBye(t *testing.T) {
	script := []step{
		{"A1 NOOP\r\n", "A1 OK done\r\n"},
		{"A2 NOOP\r\n", "A2 OK done\r\n"},
	}
	srv := startScriptServer(t, script)
	p := StartFaultProxy(t, srv.ln.Addr().String())
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func(d time.Duration) (string, error) {
		conn.SetReadDeadline(time.Now().Add(d))
		b := make([]byte, 4096)
		n, err := conn.Read(b)
		return string(b[:n]), err
	}
	if g, err := read(quiet); g != greeting {
		t.Fatalf("greeting %q, %v", g, err)
	}
	p.Stall(0)
	io.WriteString(conn, script[0].send)
	var ne net.Error
	if got, err := read(300 * time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled proxy passed %q, %v", got, err)
	}
	if srv.received(0) != "" {
		t.Errorf("stalled proxy forwarded %q", srv.received(0))
	}
	p.Resume()
	if got, err := read(quiet); got != script[0].reply {
		t.Fatalf("after Resume: %q, %v", got, err)
	}
	p.Bye("Shutting down")
	if got, _ := read(quiet); got != "* BYE Shutting down\r\n" {
		t.Errorf("Bye sent %q", got)
	}
	if got, err := read(quiet); err != io.EOF {
		t.Errorf("after BYE: %q, %v; want EOF", got, err)
	}
	waitFor(t, func() bool { return p.Conns() == 0 }, "the connection to go")
}

func TestFaultProxyBandwidth(t *testing.T) {
	body := strings.Repeat("b", 100<<10)
	script := []step{{"A1 FETCH 1 BODY[]\r\n", fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s)\r\nA1 OK done\r\n", len(body), body)}}
	srv := startScriptServer(t, script)
	p := StartFaultProxy(t, srv.ln.Addr().String())
	const rate = 200 << 10
	p.SetBandwidth(rate)
	start := time.Now()
	got, err := scriptClient(t, p.Addr(), script, quiet)
	took := time.Since(start)
	if err != nil || got != joinReplies(script) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	// 100 KiB at 200 KiB/s takes half a second; allow for the first burst.
	if min := 400 * time.Millisecond; took < min {
		t.Errorf("100 KiB at %d B/s took %v, want at least %v", rate, took, min)
	}
}

func TestLiteralAt(t *testing.T) {
	for _, tc := range []struct {
		line       string
		n          int64
		sync, isLi bool
	}{
		{"A1 APPEND INBOX {123}\r\n", 123, true, true},
		{"A1 APPEND INBOX {123+}\r\n", 123, false, true},
		{"A1 APPEND INBOX ~{7}\r\n", 7, true, true},
		{"* 1 FETCH (BODY[] {0}\r\n", 0, true, true},
		{"A1 OK {x}\r\n", 0, false, false},
		{"A1 OK }\r\n", 0, false, false},
		{"A1 OK {}\r\n", 0, false, false},
		{"A1 OK {99999999999999999999}\r\n", 0, false, false},
		{"A1 NOOP\r\n", 0, false, false},
		{"{5}\n", 5, true, true},
	} {
		n, sync, ok := literalAt([]byte(tc.line))
		if n != tc.n || sync != tc.sync || ok != tc.isLi {
			t.Errorf("literalAt(%q) = %d, %v, %v; want %d, %v, %v", tc.line, n, sync, ok, tc.n, tc.sync, tc.isLi)
		}
	}
}

// TestFaultProxyMigratesExactly migrates through proxies in front of both
// real Dovecots, with no fault set, and compares both sides with doveadm:
// the proxy must be invisible.
func TestFaultProxyMigratesExactly(t *testing.T) {
	t.Parallel()
	const user, pass = "erin", "pw"
	src := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}})
	dst := StartDovecot(t, DovecotOptions{Users: map[string]string{user: pass}, Separator: ".", Prefix: "INBOX."})
	var cases []seedCase
	for _, c := range awkwardCases() {
		if !bytes.Contains(c.msg.Raw, []byte("\r\r\n")) {
			cases = append(cases, c) // see TestDovecotAppendNormalisation
		}
	}
	src.Seed(t, user, "INBOX", seedMessages(cases))
	rng := rand.New(rand.NewPCG(3, 4))
	var work []SeedMessage
	for i := range 30 {
		raw := fmt.Sprintf("Message-ID: <%d@proxy.test>\r\nSubject: %d\r\n\r\n%s\r\n", i, i, text(rng, 100<<(i%8)))
		work = append(work, SeedMessage{Raw: []byte(raw), Flags: []string{`\Seen`, "Kw" + fmt.Sprint(i%3)}, InternalDate: time.Date(2020, 1, 2, 3, 4, i, 0, time.UTC)})
	}
	src.Seed(t, user, "Work", work)

	ps, pd := StartFaultProxy(t, src.Addr()), StartFaultProxy(t, dst.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func(p *FaultProxy) *imap.Store {
		st, err := imap.Open(ctx, imap.Config{Endpoint: imap.Endpoint{Security: imap.Plain, Host: p.Host, Port: p.Port},
			User: user, Password: pass, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	ledger, err := checkpoint.Open(filepath.Join(t.TempDir(), "run.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	sum, err := migrate.Migrate(ctx, migrate.Account{ID: user, Source: open(ps), Dest: open(pd)}, ledger, migrate.Options{})
	if err != nil || !sum.OK() {
		t.Fatalf("migrate: %v %+v", err, sum)
	}
	for from, to := range map[string]string{"INBOX": "INBOX", "Work": "INBOX.Work"} {
		a, b := src.Messages(t, user, from), dst.Messages(t, user, to)
		if len(a) != len(b) {
			t.Fatalf("%s: %d messages, copy has %d", from, len(a), len(b))
		}
		want, got := map[string]int{}, map[string]int{}
		for i := range a {
			want[fmt.Sprint(a[i].SHA256, a[i].Flags, a[i].InternalDate.Unix())]++
			got[fmt.Sprint(b[i].SHA256, b[i].Flags, b[i].InternalDate.Unix())]++
		}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("%s: message %s: %d on the destination, want %d", from, k, got[k], n)
			}
		}
		for k, n := range got {
			if want[k] != n {
				t.Errorf("%s: destination message %s: %d, want %d", from, k, n, want[k])
			}
		}
	}
	if st := pd.Stats(); st.AppendLiterals != len(cases)+len(work) || st.Appends == 0 || st.Fired != 0 {
		t.Errorf("destination proxy stats %+v, want %d messages APPENDed", st, len(cases)+len(work))
	}
	if ps.Stats().Commands["UID FETCH"] == 0 {
		t.Errorf("source proxy saw no UID FETCH: %+v", ps.Stats())
	}
}

func TestFaultProxyHideCapabilities(t *testing.T) {
	script := []step{
		{"A1 CAPABILITY\r\n", "* CAPABILITY IMAP4rev1 MULTIAPPEND LITERAL+\r\nA1 OK [CAPABILITY IMAP4rev1 MULTIAPPEND] done\r\n"},
		{"A2 FETCH 1 BODY[]\r\n", "* 1 FETCH (BODY[] {32}\r\n* CAPABILITY MULTIAPPEND xxxxx)\r\nA2 OK done\r\n"},
	}
	srv := startScriptServer(t, script)
	p := StartFaultProxy(t, srv.ln.Addr().String())
	p.HideCapabilities("multiappend", "LITERAL+")
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(quiet))
	want := "* OK [CAPABILITY IMAP4rev1] fake ready\r\n" +
		"* CAPABILITY IMAP4rev1\r\nA1 OK [CAPABILITY IMAP4rev1] done\r\n" +
		script[1].reply // a literal's bytes are never touched
	io.WriteString(conn, script[0].send+script[1].send)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}

// TestFaultProxyRefusesInOrder: a synthetic reply waits for the replies to
// the commands sent before it, as a server's would.
func TestFaultProxyRefusesInOrder(t *testing.T) {
	script := []step{{"A1 NOOP\r\n", "* 3 EXISTS\r\nA1 OK done\r\n"}}
	srv := startScriptServer(t, script)
	p := StartFaultProxy(t, srv.ln.Addr().String())
	p.RefuseCommand(Once, "APPEND", "NO", "OVERQUOTA", "full")
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(quiet))
	io.WriteString(conn, "A1 NOOP\r\nA2 APPEND INBOX {10}\r\n")
	want := greeting + script[0].reply + "A2 NO [OVERQUOTA] full\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}
