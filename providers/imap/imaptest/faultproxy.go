package imaptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy between an IMAP client and a real server that
// forwards every byte unchanged until told to misbehave. It follows the
// conversation closely enough to misbehave at a precise point: it splits the
// client's bytes into commands (tag, command name, literals {n} and {n+}) and
// the server's into responses (tagged, untagged, "+" continuations, and the
// literals inside them), so a fault can hit "the 3rd APPEND", "after 1000
// bytes of the 2nd FETCH body" or "the OK that answers an APPEND".
//
// Faults are set at run time from any goroutine. Each fires on the matching
// events a When selects, counted from the moment the fault is set, over all
// connections. Plain IMAP only: after STARTTLS the proxy sees ciphertext and
// its parsing means nothing.
type FaultProxy struct {
	Host string // "127.0.0.1"
	Port int

	upstream string
	ln       net.Listener
	wg       sync.WaitGroup

	mu         sync.Mutex
	conns      map[*proxyConn]bool
	faults     []*Fault
	stallUntil time.Time         // every connection forwards nothing before this
	wake       chan struct{}     // closed and replaced when a stall changes
	bandwidth  int64             // bytes per second per direction and connection; 0 unlimited
	cutAfter   int64             // a connection is dropped once the client sent this many bytes; 0 never
	hidden     []string          // capabilities removed from the server's lists, upper case
	strict     *strictState      // see Strict; nil for none
	oauth      map[string]string // see OAuthGateway; nil for none
	stats      ProxyStats
	accepts    []time.Time
	closed     bool
}

// ProxyStats counts what went through a FaultProxy.
type ProxyStats struct {
	Accepted int            // connections accepted, refused ones included
	Refused  int            // connections answered with BYE by RefuseConnections
	Commands map[string]int // client commands by name ("APPEND", "UID FETCH", "LOGIN")
	Appends  int            // APPEND commands, the refused ones included
	// AppendLiterals counts the literals of APPEND commands forwarded:
	// one per message, also when MULTIAPPEND puts many in one command.
	AppendLiterals int
	Fired          int // faults fired, all kinds
	// Violations lists the commands that used an extension a strict
	// profile took away (see Strict).
	Violations []string
	// OAuthLogins counts the XOAUTH2 logins an OAuthGateway forwarded.
	OAuthLogins int
}

// When selects the matching events a fault fires on: the Nth one (1-based,
// counted from when the fault is set; 0 means 1) and then Times-1 more in a
// row (0 means once; negative means every one from the Nth on).
type When struct {
	Nth   int
	Times int
}

// Once is the first matching event only.
var Once = When{Nth: 1, Times: 1}

// Nth is the n-th matching event only.
func Nth(n int) When { return When{Nth: n, Times: 1} }

type faultKind int

const (
	faultDropFetchBody faultKind = iota + 1
	faultDropAppendLiteral
	faultDropAfterAppendOK
	faultStallCommand
	faultByeCommand
	faultRefuseCommand
	faultRefuseConnection
)

// Fault is one armed misbehaviour of a FaultProxy.
type Fault struct {
	p       *FaultProxy
	kind    faultKind
	when    When
	command string // upper case; "" matches any command
	after   int64  // drop after this many literal bytes
	stall   time.Duration
	reply   string // BYE text or the synthetic tagged status line after the tag
	seen    int    // matching events since the fault was set
	fired   int
	off     bool
}

// Fired reports how often the fault has fired.
func (f *Fault) Fired() int {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	return f.fired
}

// Disarm stops the fault from firing again.
func (f *Fault) Disarm() {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	f.off = true
}

// forever is a stall that never ends by itself.
var forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// StartFaultProxy listens on 127.0.0.1:0 and forwards every connection to
// upstream (host:port). The proxy is closed, with every connection it
// holds, when the test ends.
func StartFaultProxy(tb testing.TB, upstream string) *FaultProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("imaptest: fault proxy: %v", err)
	}
	p := &FaultProxy{upstream: upstream, ln: ln, conns: map[*proxyConn]bool{}, wake: make(chan struct{}),
		stats: ProxyStats{Commands: map[string]int{}}}
	addr := ln.Addr().(*net.TCPAddr)
	p.Host, p.Port = addr.IP.String(), addr.Port
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr returns "127.0.0.1:PORT".
func (p *FaultProxy) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// Close stops listening, drops every connection and waits for its
// goroutines. It is safe to call more than once.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.kill()
	}
	p.wg.Wait()
}

// Stats returns a copy of the counters.
func (p *FaultProxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Commands = make(map[string]int, len(p.stats.Commands))
	for k, v := range p.stats.Commands {
		s.Commands[k] = v
	}
	s.Violations = slices.Clone(p.stats.Violations)
	return s
}

// Accepts returns when each connection was accepted, in order.
func (p *FaultProxy) Accepts() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.accepts...)
}

// Conns reports how many connections are being forwarded now.
func (p *FaultProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *FaultProxy) add(f *Fault) *Fault {
	f.p = p
	if f.when.Nth <= 0 {
		f.when.Nth = 1
	}
	if f.when.Times == 0 {
		f.when.Times = 1
	}
	f.command = strings.ToUpper(strings.Join(strings.Fields(f.command), " "))
	p.mu.Lock()
	p.faults = append(p.faults, f)
	p.mu.Unlock()
	return f
}

// DropFetchBody closes the connection (both sides) in the middle of a FETCH
// response, after forwarding after bytes of a whole-message literal
// (BODY[], BINARY[] or RFC822). Header-only and partial literals do not count.
func (p *FaultProxy) DropFetchBody(w When, after int64) *Fault {
	return p.add(&Fault{kind: faultDropFetchBody, when: w, after: after})
}

// DropAppendLiteral closes the connection after forwarding after bytes of
// the literal of an APPEND: the server sees half a message.
func (p *FaultProxy) DropAppendLiteral(w When, after int64) *Fault {
	return p.add(&Fault{kind: faultDropAppendLiteral, when: w, after: after})
}

// DropAfterAppendOK closes the connection when the server's tagged OK to an
// APPEND arrives, without forwarding it: the message is stored and the
// client never hears so (the "reply lost" case).
func (p *FaultProxy) DropAfterAppendOK(w When) *Fault {
	return p.add(&Fault{kind: faultDropAfterAppendOK, when: w})
}

// StallCommand freezes the connection that sends a matching command: the
// command is not forwarded and nothing moves in either direction for d
// (d <= 0: until the proxy closes), without closing anything. What the
// client sent meanwhile is held, and forwarded when the stall ends, even if
// the client has given up: a frozen server process that wakes up executes
// the commands it had received. command is a command name such as
// "APPEND", "UID FETCH" or "LOGIN"; "" matches every command.
func (p *FaultProxy) StallCommand(w When, command string, d time.Duration) *Fault {
	return p.add(&Fault{kind: faultStallCommand, when: w, command: command, stall: d})
}

// ByeCommand answers a matching command with "* BYE text" instead of
// forwarding it, and closes the connection.
func (p *FaultProxy) ByeCommand(w When, command, text string) *Fault {
	return p.add(&Fault{kind: faultByeCommand, when: w, command: command, reply: text})
}

// RefuseCommand answers a matching command itself, without forwarding it,
// with "TAG status [code] text", sent once the commands before it are
// answered, as a server would: status is "NO" or "BAD", code a response
// code such as "OVERQUOTA", "TOOBIG", "UNAVAILABLE", "LIMIT" or "INUSE"
// ("" for none). An APPEND with a synchronizing literal is refused before
// the client sends the message, as real servers refuse over-quota
// messages; one with a non-synchronizing literal is read and discarded
// first.
func (p *FaultProxy) RefuseCommand(w When, command, status, code, text string) *Fault {
	reply := strings.ToUpper(status)
	if code != "" {
		reply += " [" + code + "]"
	}
	return p.add(&Fault{kind: faultRefuseCommand, when: w, command: command, reply: reply + " " + text})
}

// RefuseConnections greets matching new connections with "* BYE text" and
// closes them without contacting the server, as a server does when a user
// has too many connections.
func (p *FaultProxy) RefuseConnections(w When, text string) *Fault {
	return p.add(&Fault{kind: faultRefuseConnection, when: w, reply: text})
}

// Stall freezes every connection, open or new, for d (d <= 0: until
// Resume): nothing is forwarded in either direction and nothing is closed.
func (p *FaultProxy) Stall(d time.Duration) {
	until := forever
	if d > 0 {
		until = time.Now().Add(d)
	}
	p.mu.Lock()
	p.stallUntil = until
	p.wakeLocked()
	p.mu.Unlock()
}

// Resume ends a Stall.
func (p *FaultProxy) Resume() {
	p.mu.Lock()
	p.stallUntil = time.Time{}
	p.wakeLocked()
	p.mu.Unlock()
}

func (p *FaultProxy) wakeLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// CutConnectionsAfter drops every connection, open or new, once its client
// has sent n bytes on it (n <= 0: never), as a proxy or firewall does that
// ends long transfers.
func (p *FaultProxy) CutConnectionsAfter(n int64) {
	p.mu.Lock()
	p.cutAfter = max(n, 0)
	p.mu.Unlock()
}

// SetBandwidth limits each direction of each connection to bytesPerSecond
// (0: unlimited).
func (p *FaultProxy) SetBandwidth(bytesPerSecond int64) {
	p.mu.Lock()
	p.bandwidth = max(bytesPerSecond, 0)
	p.mu.Unlock()
}

// HideCapabilities removes the named capabilities (such as "MULTIAPPEND"
// or "LITERAL+") from every capability list the server sends from now on:
// in the greeting, in CAPABILITY responses and in the [CAPABILITY ...]
// code of a tagged OK. The client then believes the server lacks them.
// This is the one change to the server's bytes the proxy makes without a
// fault.
func (p *FaultProxy) HideCapabilities(caps ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range caps {
		p.hidden = append(p.hidden, strings.ToUpper(c))
	}
}

// hideCaps returns line without the hidden capabilities (and, under a
// strict profile, those it does not keep), if it lists any: the words
// after "CAPABILITY" up to the end of the line or of its [CAPABILITY ...]
// code.
func (p *FaultProxy) hideCaps(line []byte) []byte {
	p.mu.Lock()
	hidden, st := p.hidden, p.strict
	p.mu.Unlock()
	if len(hidden) == 0 && st == nil {
		return line
	}
	i := bytes.Index(bytes.ToUpper(line), []byte("CAPABILITY "))
	if i < 0 {
		return line
	}
	start := i + len("CAPABILITY ")
	end := len(bytes.TrimRight(line, "\r\n"))
	if i > 0 && line[i-1] == '[' {
		if j := bytes.IndexByte(line[start:], ']'); j >= 0 {
			end = start + j
		}
	}
	var kept [][]byte
	for _, w := range bytes.Fields(line[start:end]) {
		word := strings.ToUpper(string(w))
		if slices.Contains(hidden, word) || (st != nil && !st.keepsCap(word)) {
			continue
		}
		kept = append(kept, w)
	}
	out := append([]byte(nil), line[:start]...)
	out = append(out, bytes.Join(kept, []byte(" "))...)
	return append(out, line[end:]...)
}

// Bye sends "* BYE text" to every open connection, between two responses,
// and closes it.
func (p *FaultProxy) Bye(text string) {
	for _, c := range p.openConns() {
		go c.bye(text)
	}
}

// DropAll closes every open connection at once.
func (p *FaultProxy) DropAll() {
	for _, c := range p.openConns() {
		c.kill()
	}
}

func (p *FaultProxy) openConns() []*proxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

// match counts one event of kind (command being its command name, if any)
// against every armed fault and returns the fault that fires, or nil.
func (p *FaultProxy) match(kind faultKind, command string) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var hit *Fault
	for _, f := range p.faults {
		if f.off || f.kind != kind || (f.command != "" && f.command != command) {
			continue
		}
		f.seen++
		if hit == nil && f.seen >= f.when.Nth && (f.when.Times < 0 || f.fired < f.when.Times) {
			f.fired++
			p.stats.Fired++
			hit = f
		}
	}
	return hit
}

// commandFaults are checked, in this order, when a command starts.
var commandFaults = []faultKind{faultRefuseCommand, faultByeCommand, faultStallCommand}

func (p *FaultProxy) matchCommand(command string) *Fault {
	for _, k := range commandFaults {
		if f := p.match(k, command); f != nil {
			return f
		}
	}
	return nil
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.stats.Accepted++
		p.accepts = append(p.accepts, time.Now())
		p.mu.Unlock()
		if f := p.match(faultRefuseConnection, ""); f != nil {
			p.mu.Lock()
			p.stats.Refused++
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				client.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(client, "* BYE %s\r\n", f.reply)
				closeGently(client)
			}()
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve connects a client to the upstream server and forwards between them.
func (p *FaultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil {
		client.Close()
		return
	}
	c := &proxyConn{p: p, client: client, server: server, tags: map[string]string{}, boxes: map[string]string{}, done: make(chan struct{})}
	c.answered = sync.NewCond(&c.mu)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.kill()
		return
	}
	p.conns[c] = true
	p.mu.Unlock()
	defer func() {
		c.kill()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.clientToServer()
		c.kill()
	}()
	go func() {
		defer wg.Done()
		c.serverToClient()
		c.kill()
	}()
	wg.Wait()
}

// closeGently half-closes conn and waits briefly for the peer to close, so
// that a last line is read before the connection goes (closing with unread
// input would reset it and could destroy that line).
func closeGently(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, conn)
	}
	conn.Close()
}

// proxyConn is one client connection and its upstream connection.
type proxyConn struct {
	p              *FaultProxy
	client, server net.Conn

	cw sync.Mutex // held while a whole response (or an injected line) goes to the client

	mu         sync.Mutex
	answered   *sync.Cond        // on mu: a tagged reply went to the client, or the connection ended
	tags       map[string]string // tag -> command name, for commands awaiting their tagged reply
	contTag    string            // a synchronizing literal of this command awaits "+" or its tagged reply
	contCh     chan bool         // receives true on "+", false on the tagged reply
	stallUntil time.Time         // guarded by p.mu, like the proxy's stall
	// For a strict profile: the mailbox argument of commands awaiting
	// their reply, the mailbox selected (and how), and the one a SELECT
	// under way is about.
	boxes      map[string]string
	sentUp     int64 // bytes sent to the server (only the client pump counts)
	selected   string
	readOnly   bool
	pendingBox string

	done      chan struct{}
	closeOnce sync.Once
}

var errDropped = errors.New("connection dropped by the fault proxy")

func (c *proxyConn) kill() {
	c.closeOnce.Do(func() {
		c.ended()
		c.client.Close()
		c.server.Close()
	})
}

// ended marks the connection as over, waking whoever waits on it.
func (c *proxyConn) ended() {
	close(c.done)
	c.mu.Lock()
	c.answered.Broadcast()
	c.mu.Unlock()
}

// isDone reports whether the connection is over.
func (c *proxyConn) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// gate blocks while the connection is stalled.
func (c *proxyConn) gate() error {
	p := c.p
	for {
		p.mu.Lock()
		until := p.stallUntil
		if c.stallUntil.After(until) {
			until = c.stallUntil
		}
		wake := p.wake
		p.mu.Unlock()
		if until.IsZero() || !time.Now().Before(until) {
			select {
			case <-c.done:
				return errDropped
			default:
				return nil
			}
		}
		t := time.NewTimer(time.Until(until))
		select {
		case <-c.done:
			t.Stop()
			return errDropped
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pacer spaces one direction's writes to the proxy's bandwidth.
type pacer struct{ next time.Time }

// send writes b to w through the stall gate and the bandwidth limit.
func (c *proxyConn) send(w io.Writer, pc *pacer, b []byte) error {
	for len(b) > 0 {
		if err := c.gate(); err != nil {
			return err
		}
		c.p.mu.Lock()
		bw := c.p.bandwidth
		c.p.mu.Unlock()
		chunk := b
		if bw > 0 {
			// Twenty writes a second keep the flow smooth at any rate.
			chunk = b[:min(int64(len(b)), max(bw/20, 1))]
			now := time.Now()
			if pc.next.Before(now) {
				pc.next = now
			}
			if d := time.Until(pc.next); d > 0 {
				select {
				case <-time.After(d):
				case <-c.done:
					return errDropped
				}
			}
			pc.next = pc.next.Add(time.Duration(float64(len(chunk)) / float64(bw) * float64(time.Second)))
		}
		if w == c.server {
			c.p.mu.Lock()
			cut := c.p.cutAfter
			c.p.mu.Unlock()
			if cut > 0 && c.sentUp+int64(len(chunk)) > cut {
				if left := cut - c.sentUp; left > 0 {
					w.Write(chunk[:left])
				}
				c.kill()
				return errDropped
			}
			c.sentUp += int64(len(chunk))
		}
		n, err := w.Write(chunk)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// maxLine bounds one line of the conversation; IMAP servers allow 64 KiB.
const maxLine = 1 << 20

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if err == nil {
			return line, nil
		}
		if err != bufio.ErrBufferFull {
			return line, err
		}
		if len(line) > maxLine {
			return nil, errors.New("line too long")
		}
	}
}

// literalAt reports the literal announced at the end of line ("{n}" or
// "{n+}" before the CRLF; also literal8 "~{n}").
func literalAt(line []byte) (n int64, sync, ok bool) {
	s := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if !bytes.HasSuffix(s, []byte("}")) {
		return 0, false, false
	}
	i := bytes.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false, false
	}
	digits := s[i+1 : len(s)-1]
	sync = true
	if bytes.HasSuffix(digits, []byte("+")) || bytes.HasSuffix(digits, []byte("-")) {
		digits, sync = digits[:len(digits)-1], false
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false, false
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, sync, err == nil
}

// parseCommand returns the tag and the upper-case command name of a
// command's first line ("UID FETCH" for UID commands).
func parseCommand(line []byte) (tag, name string) {
	f := strings.Fields(string(bytes.TrimRight(line, "\r\n")))
	if len(f) < 2 {
		return "", ""
	}
	tag, name = f[0], strings.ToUpper(f[1])
	if strings.HasPrefix(name, "{") {
		return tag, ""
	}
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(f[2])
	}
	return tag, name
}

// isBodyLiteral reports whether the literal announced at the end of line
// (a piece of an untagged FETCH response) is a whole message.
func isBodyLiteral(line []byte) bool {
	s := bytes.TrimRight(line, "\r\n")
	s = bytes.TrimRight(s[:bytes.LastIndexByte(s, '{')], " ~")
	// A partial fetch of the whole message, BODY[]<0>, counts too.
	if bytes.HasSuffix(s, []byte(">")) {
		if i := bytes.LastIndexByte(s, '<'); i >= 0 {
			s = s[:i]
		}
	}
	u := bytes.ToUpper(s)
	return bytes.HasSuffix(u, []byte("BODY[]")) || bytes.HasSuffix(u, []byte("BINARY[]")) ||
		bytes.HasSuffix(u, []byte(" RFC822")) || bytes.HasSuffix(u, []byte("(RFC822"))
}

// copyLiteral copies an n-byte literal from br to w. If drop >= 0, the
// connection is dropped after min(drop, n) bytes.
func (c *proxyConn) copyLiteral(w io.Writer, pc *pacer, br *bufio.Reader, n, drop int64) error {
	limit := n
	if drop >= 0 && drop < n {
		limit = drop
	}
	buf := make([]byte, 32<<10)
	for limit > 0 {
		k, err := br.Read(buf[:min(int64(len(buf)), limit)])
		if k > 0 {
			if err := c.send(w, pc, buf[:k]); err != nil {
				return err
			}
			limit -= int64(k)
			n -= int64(k)
		}
		if err != nil {
			return err
		}
	}
	if drop >= 0 {
		c.kill()
		return errDropped
	}
	return nil
}

// discard reads and drops n bytes from br.
func discard(br *bufio.Reader, n int64) error {
	_, err := io.CopyN(io.Discard, br, n)
	return err
}

// inject writes one line to the client between two responses.
func (c *proxyConn) inject(line string) error {
	c.cw.Lock()
	defer c.cw.Unlock()
	if err := c.gate(); err != nil {
		return err
	}
	_, err := io.WriteString(c.client, line)
	return err
}

// bye sends "* BYE text" between two responses and closes the connection.
func (c *proxyConn) bye(text string) {
	c.cw.Lock()
	if c.gate() == nil {
		fmt.Fprintf(c.client, "* BYE %s\r\n", text)
	}
	c.closeOnce.Do(func() {
		c.ended()
		c.server.Close()
		closeGently(c.client)
	})
	c.cw.Unlock()
}

func (c *proxyConn) clientToServer() {
	p := c.p
	br := bufio.NewReaderSize(c.client, 64<<10)
	var pc pacer
	for {
		line, err := readLine(br)
		if err != nil {
			return
		}
		tag, name := parseCommand(line)
		if name != "" {
			p.mu.Lock()
			p.stats.Commands[name]++
			if name == "APPEND" {
				p.stats.Appends++
			}
			p.mu.Unlock()
		}
		if login, ok := p.gatewayLogin(line); ok {
			line = login
		}
		var f *Fault
		if name != "" {
			f = p.matchCommand(name)
		}
		if f != nil {
			switch f.kind {
			case faultRefuseCommand:
				if err := c.refuse(br, line, tag, f.reply); err != nil {
					return
				}
				continue
			case faultByeCommand:
				c.bye(f.reply)
				return
			case faultStallCommand:
				until := forever
				if f.stall > 0 {
					until = time.Now().Add(f.stall)
				}
				p.mu.Lock()
				c.stallUntil = until
				p.mu.Unlock()
			}
		}
		if st := p.strictProfile(); st != nil && name != "" {
			if reply := c.strictCommand(st, line, tag, name); reply != "" {
				if err := c.refuse(br, line, tag, reply); err != nil {
					return
				}
				continue
			}
		}
		if tag != "" && name != "" {
			c.mu.Lock()
			c.tags[tag] = name
			c.mu.Unlock()
		}
		if err := c.forward(br, &pc, line, tag, name); err != nil {
			return
		}
	}
}

// forward sends one command to the server: its first line, then each
// literal and the line that follows it.
func (c *proxyConn) forward(br *bufio.Reader, pc *pacer, line []byte, tag, name string) error {
	for {
		n, sync, ok := literalAt(line)
		var cont chan bool
		if ok && sync {
			// Listen for the server's answer before it can come.
			cont = c.expectContinuation(tag)
		}
		if err := c.send(c.server, pc, line); err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if sync {
			select {
			case proceed := <-cont:
				if !proceed {
					return nil // the server refused the literal: the command is over
				}
			case <-c.done:
				return errDropped
			}
		}
		drop := int64(-1)
		if name == "APPEND" {
			c.p.mu.Lock()
			c.p.stats.AppendLiterals++
			c.p.mu.Unlock()
			if f := c.p.match(faultDropAppendLiteral, ""); f != nil {
				drop = f.after
			}
		}
		if err := c.copyLiteral(c.server, pc, br, n, drop); err != nil {
			return err
		}
		var err error
		if line, err = readLine(br); err != nil {
			return err
		}
		if st := c.p.strictProfile(); st != nil {
			if ext := st.continuation(line, name); ext != "" {
				// Half a command is with the server: it cannot be refused
				// cleanly any more.
				c.p.violated(name, ext)
				c.kill()
				return errDropped
			}
		}
	}
}

// expectContinuation returns the channel that learns, after the client
// announced a synchronizing literal, whether the server sent "+" (true) or
// its tagged reply refusing the command (false). The client waits for the
// same thing before it sends the literal, so waiting for it costs nothing.
func (c *proxyConn) expectContinuation(tag string) chan bool {
	ch := make(chan bool, 1)
	c.mu.Lock()
	c.contTag, c.contCh = tag, ch
	c.mu.Unlock()
	return ch
}

// continued tells a waiting client-to-server pump what the server said.
func (c *proxyConn) continued(tag string, plus bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.contCh == nil || (!plus && tag != c.contTag) {
		return
	}
	c.contCh <- plus
	c.contCh, c.contTag = nil, ""
}

// refuse answers a command with a synthetic tagged reply instead of
// forwarding it. line is its first line.
func (c *proxyConn) refuse(br *bufio.Reader, line []byte, tag, reply string) error {
	for {
		n, sync, ok := literalAt(line)
		if !ok || sync {
			// The end of the command, or a literal the client sends only
			// after a "+" that will not come.
			break
		}
		if err := discard(br, n); err != nil {
			return err
		}
		var err error
		if line, err = readLine(br); err != nil {
			return err
		}
	}
	// A server answers in order: the commands sent before this one are
	// answered before it is.
	c.mu.Lock()
	for len(c.tags) > 0 && !c.isDone() {
		c.answered.Wait()
	}
	c.mu.Unlock()
	return c.inject(tag + " " + reply + "\r\n")
}

func (c *proxyConn) serverToClient() {
	br := bufio.NewReaderSize(c.server, 64<<10)
	var pc pacer
	for {
		line, err := readLine(br)
		if err != nil {
			return
		}
		if err := c.response(br, &pc, line); err != nil {
			return
		}
	}
}

// response forwards one server response whose first line is line.
func (c *proxyConn) response(br *bufio.Reader, pc *pacer, line []byte) error {
	p := c.p
	var tag, status string
	isFetch := false
	switch {
	case bytes.HasPrefix(line, []byte("+")):
		c.continued("", true)
	case bytes.HasPrefix(line, []byte("* ")):
		f := strings.Fields(string(line[2:]))
		isFetch = len(f) >= 2 && strings.EqualFold(f[1], "FETCH")
	default:
		if f := strings.Fields(string(line)); len(f) >= 2 {
			tag, status = f[0], strings.ToUpper(f[1])
		}
	}
	if tag != "" {
		c.mu.Lock()
		name := c.tags[tag]
		c.mu.Unlock()
		c.continued(tag, false)
		if name == "APPEND" && status == "OK" {
			if f := p.match(faultDropAfterAppendOK, ""); f != nil {
				c.kill()
				return errDropped
			}
		}
	}
	if _, _, lit := literalAt(line); !lit {
		if st := p.strictProfile(); st != nil {
			line = c.strictResponse(st, line, tag, status)
		}
		line = p.addsXOAUTH2(p.hideCaps(line))
	}
	if err := c.forwardResponse(br, pc, line, isFetch); err != nil {
		return err
	}
	if tag != "" {
		// Only now, with the reply on its way, is the command answered.
		c.mu.Lock()
		delete(c.tags, tag)
		c.answered.Broadcast()
		c.mu.Unlock()
	}
	return nil
}

// forwardResponse sends one response, its literals included, to the
// client.
func (c *proxyConn) forwardResponse(br *bufio.Reader, pc *pacer, line []byte, isFetch bool) error {
	p := c.p
	c.cw.Lock()
	defer c.cw.Unlock()
	for {
		if err := c.send(c.client, pc, line); err != nil {
			return err
		}
		n, _, ok := literalAt(line)
		if !ok {
			return nil
		}
		drop := int64(-1)
		if isFetch && isBodyLiteral(line) {
			if f := p.match(faultDropFetchBody, ""); f != nil {
				drop = f.after
			}
		}
		if err := c.copyLiteral(c.client, pc, br, n, drop); err != nil {
			return err
		}
		var err error
		if line, err = readLine(br); err != nil {
			return err
		}
	}
}
