package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/providers"
)

// A server saves each APPEND command as a transaction of its own: Dovecot
// syncs the mailbox and fsyncs for every one, so one connection appends a
// few hundred messages a second however well the commands are pipelined.
// MULTIAPPEND (RFC 3502) puts many messages in one command and one
// transaction; with non-synchronizing literals (LITERAL+, RFC 7888) the
// client streams them without waiting for the server. Measured against
// Dovecot 2.3 on this project's test machine: 436 messages/s with
// pipelined single APPENDs, 393 with LITERAL+ alone, 2,266 with 100
// messages per MULTIAPPEND (docs/benchmarks.md).
//
// go-imap v2 has neither, so the appender speaks just enough IMAP on a
// connection of its own: log in, then APPEND. Each message still streams
// from the source FETCH into the command; nothing is buffered whole.

const (
	groupMessages  = 100
	groupBytes     = 16 << 20
	groupsInFlight = 2
)

// errGroupRefused is what the messages of a MULTIAPPEND get when the
// server refused the command for one of them (too big, unparsable): the
// whole command is then undone (RFC 3502), so none is stored, and the next
// attempt sends them one by one to find the culprit.
var errGroupRefused = errors.New("the server refused a group of messages; retrying them one by one")

type appender struct {
	s        *Store
	w        *watchConn
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	name     string // canonical mailbox name
	arg      string // the mailbox as written in the command
	validity uint32
	tag      int

	open       *group      // being written, nil if none
	inflight   chan *group // sent, awaiting the tagged reply, in order
	pending    sync.WaitGroup
	readerDone chan struct{}

	mu  sync.Mutex
	err error // set once the connection is unusable
}

type group struct {
	tag   string
	dones []func(providers.UID, error)
	bytes int64
}

// canMultiAppend reports whether appends to name should use an appender.
func (s *Store) canMultiAppend(name string) bool {
	if s.cfg.NoMultiAppend || !s.caps.Has(goimap.CapMultiAppend) || !s.caps.Has(goimap.CapLiteralPlus) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.singleAppend[name]
}

// useSingleAppend makes later appends to name go one by one.
func (s *Store) useSingleAppend(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.singleAppend == nil {
		s.singleAppend = map[string]bool{}
	}
	s.singleAppend[name] = true
}

// errNoSlot: every connection the caps allow is in use.
var errNoSlot = errors.New("no free connection slot")

// newAppender opens the raw connection if the store's and the host's caps
// have room now; it never waits for room, since the connections holding
// it may be waiting for this one's appends.
func (s *Store) newAppender(ctx context.Context, name string, validity uint32) (*appender, error) {
	if !s.tryAcquire() {
		return nil, errNoSlot
	}
	a := &appender{s: s, name: name, arg: astring(encodeMUTF7(s.ns.native(name))), validity: validity,
		inflight: make(chan *group, groupsInFlight), readerDone: make(chan struct{})}
	if err := a.connect(ctx); err != nil {
		s.observe(err)
		s.release()
		return nil, err
	}
	go a.read()
	return a, nil
}

func (a *appender) connect(ctx context.Context) error {
	cfg := &a.s.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", cfg.Endpoint.Addr())
	if err != nil {
		return providers.WithClass(providers.ClassTransient, fmt.Errorf("connect to %s: %w", cfg.Endpoint.Addr(), err))
	}
	a.w = newWatchConn(raw, cfg.Timeout)
	a.w.begin()
	defer a.w.end()
	stop := context.AfterFunc(ctx, func() { a.w.Close() })
	defer stop()
	err = a.handshake()
	if err != nil {
		a.w.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s as %s (append connection): %w", cfg.Endpoint.Addr(), cfg.User, classifyLogin(err))
	}
	return nil
}

func (a *appender) handshake() error {
	a.conn = a.w
	if a.s.cfg.Endpoint.Security == TLS {
		a.conn = tls.Client(a.w, a.s.tlsConfig())
	}
	a.br, a.bw = bufio.NewReader(a.conn), bufio.NewWriterSize(a.conn, 64<<10)
	greeting, err := a.readLine()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return &goimap.Error{Type: goimap.StatusResponseTypeBye, Text: strings.TrimSpace(greeting)}
	}
	if a.s.cfg.Endpoint.Security == StartTLS {
		if err := a.command("STARTTLS", ""); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		a.conn = tls.Client(a.w, a.s.tlsConfig())
		a.br, a.bw = bufio.NewReader(a.conn), bufio.NewWriterSize(a.conn, 64<<10)
	}
	cfg := &a.s.cfg
	authUser := cfg.User
	if cfg.Admin != "" {
		authUser = cfg.Admin
	}
	if cfg.Admin == "" && !a.s.caps.Has(goimap.CapLoginDisabled) {
		return a.command("LOGIN "+astring(authUser)+" "+astring(string(cfg.Password)), "")
	}
	authz := ""
	if cfg.Admin != "" {
		authz = cfg.User
	}
	ir := base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authUser + "\x00" + string(cfg.Password)))
	return a.command("AUTHENTICATE PLAIN", ir)
}

// command runs one command synchronously (before the reader starts). A
// continuation request is answered with cont (the SASL response). Errors
// quote the server's reply, never the command, which may hold a password.
func (a *appender) command(cmd, cont string) error {
	a.tag++
	tag := "c" + strconv.Itoa(a.tag)
	if _, err := a.bw.WriteString(tag + " " + cmd + "\r\n"); err != nil {
		return err
	}
	if err := a.bw.Flush(); err != nil {
		return err
	}
	for {
		line, err := a.readLine()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "+"):
			a.bw.WriteString(cont + "\r\n")
			if err := a.bw.Flush(); err != nil {
				return err
			}
		case strings.HasPrefix(line, tag+" "):
			return statusError(strings.TrimPrefix(line, tag+" "))
		case strings.HasPrefix(line, "* BYE"):
			return statusError(strings.TrimPrefix(line, "* "))
		}
	}
}

// readLine reads one response line, skipping the contents of any literal
// it announces (untagged data the appender has no use for).
func (a *appender) readLine() (string, error) {
	line, err := a.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	for {
		n, ok := trailingLiteral(line)
		if !ok {
			return strings.TrimRight(line, "\r\n"), nil
		}
		if _, err := io.CopyN(io.Discard, a.br, n); err != nil {
			return "", err
		}
		more, err := a.br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n") + " " + more
	}
}

// trailingLiteral reports a line ending in {n}.
func trailingLiteral(line string) (int64, bool) {
	l := strings.TrimRight(line, "\r\n")
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(l[i+1:len(l)-1], "+"), 10, 64)
	return n, err == nil && n >= 0
}

// statusError parses "OK ...", "NO [CODE] text" or "BAD text"; nil for OK.
func statusError(rest string) error {
	typ, text, _ := strings.Cut(rest, " ")
	e := &goimap.Error{Type: goimap.StatusResponseType(strings.ToUpper(typ))}
	if strings.HasPrefix(text, "[") {
		if j := strings.IndexByte(text, ']'); j > 0 {
			code, _, _ := strings.Cut(text[1:j], " ")
			e.Code = goimap.ResponseCode(strings.ToUpper(code))
			text = strings.TrimSpace(text[j+1:])
		}
	}
	e.Text = text
	if e.Type == goimap.StatusResponseTypeOK {
		return nil
	}
	return e
}

func (a *appender) broken() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// fail marks the connection unusable and closes it; the reader then fails
// every group still awaiting a reply.
func (a *appender) fail(err error) error {
	a.mu.Lock()
	if a.err == nil {
		if a.w.stalled.Load() && !errors.Is(err, errStalled) {
			// Whatever broke first, the watchdog is why: say so.
			err = providers.WithClass(providers.ClassTransient, fmt.Errorf("%w: %w", errStalled, err))
		}
		a.err = err
		a.w.Close()
	}
	err = a.err
	a.mu.Unlock()
	return err
}

// Append adds one message to the open MULTIAPPEND command, streaming its
// bytes; done is called when the server answers the whole command.
func (a *appender) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error), buf []byte) error {
	if err := a.broken(); err != nil {
		return err
	}
	a.w.begin()
	defer a.w.end()
	stop := context.AfterFunc(ctx, func() { a.fail(ctx.Err()) })
	defer stop()
	lr, ok := r.(*literalReader)
	if !ok {
		lr = &literalReader{r: r, left: size}
	}
	if a.open == nil {
		a.tag++
		a.open = &group{tag: "m" + strconv.Itoa(a.tag)}
		a.bw.WriteString(a.open.tag + " APPEND " + a.arg)
	}
	a.bw.WriteString(" (")
	for i, f := range toFlags(info.Flags) {
		if i > 0 {
			a.bw.WriteByte(' ')
		}
		a.bw.WriteString(string(f))
	}
	a.bw.WriteString(")")
	if !info.InternalDate.IsZero() {
		a.bw.WriteString(` "` + info.InternalDate.Format("02-Jan-2006 15:04:05 -0700") + `"`)
	}
	a.bw.WriteString(" {" + strconv.FormatInt(size, 10) + "+}\r\n")
	n, err := io.CopyBuffer(a.bw, io.LimitReader(lr, size), buf)
	if err == nil && n != size {
		err = fmt.Errorf("%w: the message ended %d bytes short of its size", io.ErrUnexpectedEOF, size-n)
	}
	if err != nil {
		// Half a literal is on the wire: the command cannot be finished.
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if lr.err != nil {
			err = lr.err
		} else {
			err = providers.WithClass(providers.ClassTransient, fmt.Errorf("append to %q: %w", a.name, err))
		}
		a.fail(err)
		a.abandonOpen(err)
		return err
	}
	a.open.dones = append(a.open.dones, done)
	a.open.bytes += size
	if len(a.open.dones) >= groupMessages || a.open.bytes >= groupBytes {
		return a.send()
	}
	return nil
}

// abandonOpen fails the messages of the command being written: it never
// reached its end, so the server stored none of them.
func (a *appender) abandonOpen(err error) {
	if a.open == nil {
		return
	}
	for _, d := range a.open.dones {
		d(0, err)
	}
	a.open = nil
}

// send finishes the open command and hands it to the reader.
func (a *appender) send() error {
	g := a.open
	a.open = nil
	a.bw.WriteString("\r\n")
	if err := a.bw.Flush(); err != nil {
		err = providers.WithClass(providers.ClassTransient, fmt.Errorf("append to %q: %w", a.name, err))
		a.fail(err)
		for _, d := range g.dones {
			d(0, err)
		}
		return err
	}
	a.pending.Add(1)
	a.w.begin()
	a.inflight <- g
	return nil
}

// read resolves the groups in order as their tagged replies arrive. Once
// the connection is gone, it fails every group sent, until Close closes
// the queue.
func (a *appender) read() {
	defer close(a.readerDone)
	var lost error
	for lost == nil {
		line, err := a.readLine()
		switch {
		case err != nil:
			lost = a.fail(providers.WithClass(providers.ClassTransient, fmt.Errorf("append connection to %s: %w", a.s.cfg.Endpoint.Addr(), err)))
		case strings.HasPrefix(line, "* BYE"):
			a.s.observe(statusError(strings.TrimPrefix(line, "* ")))
		case strings.HasPrefix(line, "m"):
			tag, rest, _ := strings.Cut(line, " ")
			g := <-a.inflight
			if g.tag != tag {
				lost = a.fail(providers.WithClass(providers.ClassTransient, fmt.Errorf("append connection: reply %q to %s", tag, g.tag)))
				a.resolve(g, nil, lost)
				continue
			}
			a.resolve(g, appendUIDs(rest, a.validity), a.refusal(statusError(rest)))
		}
		// Other untagged data and continuations need nothing.
	}
	// The outcome of what was sent is unknown: the copier looks for those
	// messages on the destination before sending them again.
	for g := range a.inflight {
		a.resolve(g, nil, lost)
	}
}

// refusal classifies a NO or BAD to a MULTIAPPEND.
func (a *appender) refusal(status error) error {
	if status == nil {
		return nil
	}
	a.s.observe(status)
	err := fmt.Errorf("append to %q: %w", a.name, classify(status, opAppend))
	if providers.ClassOf(err) == providers.ClassMessage {
		// One message spoiled the group and none was stored; alone, each
		// will get its own verdict.
		a.s.useSingleAppend(a.name)
		err = providers.WithClass(providers.ClassTransient, fmt.Errorf("%w (%v)", errGroupRefused, status))
	}
	return err
}

// resolve calls the dones of one group with its outcome.
func (a *appender) resolve(g *group, uids []providers.UID, err error) {
	defer a.pending.Done()
	defer a.w.end()
	for i, d := range g.dones {
		switch {
		case err != nil:
			d(0, err)
		case len(uids) == len(g.dones):
			d(uids[i], nil)
		default:
			d(0, nil)
		}
	}
}

// appendUIDs reads "[APPENDUID validity uid-set]" from an OK reply; nil if
// absent or for another UIDVALIDITY.
func appendUIDs(rest string, validity uint32) []providers.UID {
	i := strings.Index(strings.ToUpper(rest), "[APPENDUID ")
	if i < 0 {
		return nil
	}
	j := strings.IndexByte(rest[i:], ']')
	if j < 0 {
		return nil
	}
	f := strings.Fields(rest[i+len("[APPENDUID ") : i+j])
	if len(f) != 2 {
		return nil
	}
	v, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || uint32(v) != validity {
		return nil
	}
	var out []providers.UID
	for _, part := range strings.Split(f[1], ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 32)
		}
		if err1 != nil || err2 != nil {
			return nil
		}
		if a > b {
			a, b = b, a
		}
		for u := a; u <= b && len(out) <= groupMessages; u++ {
			out = append(out, providers.UID(u))
		}
	}
	return out
}

// Flush sends the open command and waits for every reply.
func (a *appender) Flush(ctx context.Context) error {
	if a.open != nil {
		if err := a.broken(); err != nil {
			a.abandonOpen(err)
		} else {
			a.send()
		}
	}
	finished := make(chan struct{})
	go func() {
		a.pending.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		a.fail(ctx.Err())
		<-finished
	}
	return a.broken()
}

// Close flushes, logs out and releases the connection slot.
func (a *appender) Close() error {
	err := a.Flush(context.Background())
	if err == nil {
		a.bw.WriteString("z LOGOUT\r\n")
		a.bw.Flush()
	}
	a.fail(errors.New("append connection closed"))
	close(a.inflight)
	<-a.readerDone
	a.s.release()
	return err
}

// astring writes s as an IMAP quoted string, or a literal+ when it has
// characters a quoted string cannot carry.
func astring(s string) string {
	if strings.ContainsAny(s, "\r\n\x00") || !isASCII(s) {
		return "{" + strconv.Itoa(len(s)) + "+}\r\n" + s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
