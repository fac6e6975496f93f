package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	goimap "github.com/emersion/go-imap/v2"
	"golang.org/x/sync/semaphore"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mutf7"
)

// Every APPEND goes through an appender: a session of its own (session.go)
// that never selects a mailbox, so no APPEND ever goes to a mailbox its
// connection has EXAMINEd (Courier refuses that: "Current box is selected
// READ-ONLY"). It speaks just enough IMAP to stream messages from the
// source FETCH into APPEND commands, nothing buffered whole but what the
// choice of literal8 needs (below), with what the server offers and
// nothing more:
//
//   - MULTIAPPEND (RFC 3502): many messages in one command, one server
//     transaction. Dovecot syncs and fsyncs for every APPEND command, so
//     one connection appends a few hundred messages a second however well
//     single APPENDs are pipelined; measured on this project's test
//     machine: 436 messages/s with pipelined single APPENDs, 2,266 with
//     100 messages per MULTIAPPEND (docs/benchmarks.md).
//   - LITERAL+ (RFC 7888), or LITERAL- for small messages: literals sent
//     without waiting for "+"; without them each literal waits, one round
//     trip a message.
//   - BINARY (RFC 3516): literal8 for a message holding NUL bytes, so it
//     is stored exactly; only for those, since a server may re-encode what
//     comes as literal8 (Dovecot turns Content-Transfer-Encoding: binary
//     parts into base64). Without BINARY, or for a message over probeMax
//     that cannot be looked at first, NUL cannot travel in a literal (RFC
//     3501 §4.3): each is sent as 0x80, as Dovecot serves such a message,
//     and the message is reported as altered.
//
// go-imap v2 has none of MULTIAPPEND, literal8 or streaming APPEND with an
// appender's pipelining, hence this file. An appender borrows a pooled
// connection of the store (lend.go): an account's mailboxes reuse it for
// reading and appending, so a mailbox costs no login.

const (
	groupMessages = 100
	groupBytes    = 16 << 20
	// groupsInFlight bounds the MULTIAPPEND commands awaiting a reply;
	// single APPENDs are bounded by Config.PipelineDepth.
	groupsInFlight = 2
)

// errGroupRefused is what the messages of a MULTIAPPEND get when the
// server refused the command for one of them (too big, unparsable): the
// whole command is then undone (RFC 3502), so none is stored, and the next
// attempt sends them one by one to find the culprit.
var errGroupRefused = errors.New("the server refused a group of messages; retrying them one by one")

type appender struct {
	s    *Store
	se   *session
	lent *conn // the pooled connection it borrowed (lend.go)

	// The mailbox appended to; set by target.
	name     string // canonical
	arg      string // as written in the command
	validity uint32
	multi    bool
	// groupMax and groupBytes bound a MULTIAPPEND command (see
	// shrinkGroups).
	groupMax   int
	groupBytes int64
	// fresh: the mailbox was empty when opened. A server that numbers a
	// mailbox only once it stores mail in it (Courier) showed a UIDVALIDITY
	// that its first APPENDUID replaces: adopt is told the real one.
	fresh bool
	adopt func(uint32)

	open     *group      // being written, nil if none
	inflight chan *group // whose first line is sent, in order; the reader resolves them
	window   *semaphore.Weighted
	pending  sync.WaitGroup
	cont     chan bool // "+" (true) or the tagged reply (false) to the group being written
	readDone chan struct{}
	// stopping: the reader is woken from its read to give the connection
	// back, so a timeout ends it quietly.
	stopping atomic.Bool
	held     []byte // see hold
	// loggingOut: LOGOUT was sent, so a BYE is its answer, not the
	// server saying it is overloaded.
	loggingOut atomic.Bool

	mu  sync.Mutex
	err error // set once the connection is unusable
}

type group struct {
	tag    string
	dones  []func(providers.UID, error)
	bytes  int64
	weight int64
	// waiting: the writer waits for "+" before a literal of this group;
	// refused is the reader's verdict when the server refused instead.
	waiting bool
	refused error
}

// target points the appender at a mailbox.
func (a *appender) target(name string, validity uint32) {
	s := a.s
	a.name, a.arg, a.validity = name, mailboxArg(mutf7.Encode(s.ns.native(name)), a.se.caps), validity
	a.multi = !s.cfg.NoMultiAppend && a.se.caps.Has(goimap.CapMultiAppend) && !s.singleAppendTo(name)
	a.groupMax = s.groupLimit(name)
	a.groupBytes = groupBytes * int64(a.groupMax) / groupMessages
}

// groupLimit is how many messages a MULTIAPPEND to name may carry.
func (s *Store) groupLimit(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.groupMax[name]; ok {
		return n
	}
	return groupMessages
}

// shrinkGroups halves the MULTIAPPEND groups to name, down to single
// APPENDs, and reports whether it could.
func (s *Store) shrinkGroups(name string) bool {
	n := s.groupLimit(name)
	if n <= 1 {
		return false
	}
	s.mu.Lock()
	if s.groupMax == nil {
		s.groupMax = map[string]int{}
	}
	s.groupMax[name] = n / 2
	s.mu.Unlock()
	if n/2 <= 1 {
		s.useSingleAppend(name)
	}
	return true
}

// mailboxArg writes a mailbox name (modified UTF-7, so ASCII) as a
// quoted string.
func mailboxArg(name string, _ goimap.CapSet) string {
	q, ok := quoted(name)
	if !ok {
		// Modified UTF-7 is 7-bit; only a control character gets here, and
		// no server has such a mailbox.
		return `""`
	}
	return q
}

// singleAppendTo reports whether MULTIAPPEND was refused for name before.
func (s *Store) singleAppendTo(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.singleAppend[name]
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
		if a.se.w.stalled.Load() && !errors.Is(err, errStalled) {
			// Whatever broke first, the watchdog is why: say so.
			err = providers.WithClass(providers.ClassTransient, fmt.Errorf("%w: %w", errStalled, err))
		}
		a.err = err
		a.se.close()
	}
	err = a.err
	a.mu.Unlock()
	return err
}

// literalPrefix is how a literal of size bytes is announced (literal8
// for binary), and whether the writer must wait for "+" before sending it.
func (a *appender) literalPrefix(size int64, binary bool) (string, bool) {
	caps := a.se.caps
	p := ""
	if binary {
		p = "~"
	}
	n := strconv.FormatInt(size, 10)
	if caps.Has(goimap.CapLiteralPlus) || (caps.Has(goimap.CapLiteralMinus) && size <= 4096) {
		return p + "{" + n + "+}\r\n", false
	}
	return p + "{" + n + "}\r\n", true
}

// Append adds one message to the open APPEND command, streaming its
// bytes; done is called when the server answers the command.
func (a *appender) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error), buf []byte) error {
	if err := a.broken(); err != nil {
		return err
	}
	w := a.se.w
	w.begin()
	defer w.end()
	stop := context.AfterFunc(ctx, func() { a.fail(ctx.Err()) })
	defer stop()
	bw := a.se.bw
	if a.open == nil {
		weight := int64(1)
		if a.multi {
			weight = max(int64(a.s.cfg.PipelineDepth)/groupsInFlight, 1)
		}
		if err := a.window.Acquire(ctx, weight); err != nil {
			return err
		}
		a.open = &group{tag: a.se.nextTag(), weight: weight}
		bw.WriteString(a.open.tag + " APPEND " + a.arg)
		a.pending.Add(1)
		w.begin() // until the reader resolves the group
		a.inflight <- a.open
	}
	g := a.open
	bw.WriteString(" (")
	for i, f := range toFlags(info.Flags) {
		if i > 0 {
			bw.WriteByte(' ')
		}
		bw.WriteString(string(f))
	}
	bw.WriteString(")")
	if !info.InternalDate.IsZero() {
		bw.WriteString(` "` + info.InternalDate.Format("02-Jan-2006 15:04:05 -0700") + `"`)
	}
	binary := false
	if a.se.caps.Has(goimap.CapBinary) && size <= probeMax {
		// Looked at whole first: literal8 only if it must be.
		held := providers.HeldBytes(r)
		if int64(len(held)) != size {
			var err error
			if held, err = a.hold(r, size); err != nil {
				return a.abandon(ctx, err)
			}
		}
		binary = bytes.IndexByte(held, 0) >= 0
		r = providers.WithAlterNote(bytes.NewReader(held), r)
	}
	prefix, sync := a.literalPrefix(size, binary)
	bw.WriteString(" " + prefix)
	if sync {
		refused, err := a.awaitContinuation(ctx, g)
		if err != nil {
			return a.abandon(ctx, err)
		}
		if refused != nil {
			// The server refused the command before the literal (over
			// quota, too big) and ended it; the reader gave the messages
			// before this one the same verdict.
			a.open = nil
			done(0, refused)
			return nil
		}
	}
	n, nuls, err := copyLiteral(bw, r, size, buf, !binary)
	if err == nil && n != size {
		err = fmt.Errorf("%w: the message ended %d bytes short of its size", io.ErrUnexpectedEOF, size-n)
	}
	if err != nil {
		// Half a literal is on the wire: the command cannot be finished.
		return a.abandon(ctx, err)
	}
	if nuls > 0 {
		why := "the destination does not offer BINARY, and RFC 3501 allows no NUL in a message it takes"
		if a.se.caps.Has(goimap.CapBinary) {
			why = fmt.Sprintf("the message is over %d MiB, too large to look at before sending", probeMax>>20)
		}
		providers.NoteAltered(r, fmt.Sprintf("%d NUL byte(s) sent as 0x80: %s", nuls, why))
	}
	a.mu.Lock()
	g.dones = append(g.dones, done)
	a.mu.Unlock()
	g.bytes += size
	if !a.multi || len(g.dones) >= a.groupMax || g.bytes >= a.groupBytes {
		return a.send()
	}
	return nil
}

// keptHold bounds the buffer an appender keeps between messages.
const keptHold = 256 << 10

// hold reads a message of size bytes whole, into the appender's buffer
// (valid until the next call) if it is small: idle appenders of many
// accounts must not each keep megabytes.
func (a *appender) hold(r io.Reader, size int64) ([]byte, error) {
	var b []byte
	if size > keptHold {
		b = make([]byte, size)
	} else {
		a.held = grow(a.held, size, keptHold)
		b = a.held
	}
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("%w: the message ended short of its size %d", io.ErrUnexpectedEOF, size)
		}
		if providers.ClassOf(err) == providers.ClassUnclassified {
			err = providers.WithClass(providers.ClassTransient, fmt.Errorf("read source message: %w", err))
		}
		return nil, err
	}
	return b, nil
}

// grow returns buf resliced to n bytes, in a new array if buf is too
// small: at least twice as large, up to limit, so that rising sizes cost
// few allocations, and no larger than the messages need. An appender is
// made per mailbox, so a buffer of limit bytes each time was mostly
// zeroing (7% of a run of many small accounts).
func grow(buf []byte, n, limit int64) []byte {
	if int64(cap(buf)) >= n {
		return buf[:n]
	}
	c := min(max(2*int64(cap(buf)), 16<<10), limit)
	return make([]byte, n, max(c, n))
}

// copyLiteral copies exactly size bytes of r to w. With noNUL, each NUL is
// written as 0x80 and counted. Read errors (the source) and write errors
// (the destination) are told apart by class.
func copyLiteral(w io.Writer, r io.Reader, size int64, buf []byte, noNUL bool) (n int64, nuls int, err error) {
	for n < size {
		k, rerr := r.Read(buf[:min(int64(len(buf)), size-n)])
		if k > 0 {
			if noNUL {
				for i, c := range buf[:k] {
					if c == 0 {
						buf[i] = 0x80
						nuls++
					}
				}
			}
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, nuls, providers.WithClass(providers.ClassTransient, fmt.Errorf("append: %w", werr))
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nuls, nil
		}
		if rerr != nil {
			if providers.ClassOf(rerr) == providers.ClassUnclassified {
				rerr = providers.WithClass(providers.ClassTransient, fmt.Errorf("read source message: %w", rerr))
			}
			return n, nuls, rerr
		}
	}
	return n, nuls, nil
}

// awaitContinuation flushes what is written and waits for the server's
// "+" to the group being written; refused is its refusal instead.
func (a *appender) awaitContinuation(ctx context.Context, g *group) (refused, err error) {
	a.mu.Lock()
	g.waiting = true
	a.mu.Unlock()
	if err := a.se.bw.Flush(); err != nil {
		return nil, providers.WithClass(providers.ClassTransient, fmt.Errorf("append to %q: %w", a.name, err))
	}
	select {
	case ok := <-a.cont:
		a.mu.Lock()
		defer a.mu.Unlock()
		g.waiting = false
		if ok {
			return nil, nil
		}
		return g.refused, nil
	case <-a.readDone:
		if err := a.broken(); err != nil {
			return nil, err
		}
		return nil, errors.New("append connection closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// abandon fails the connection with the command being written: it never
// reached its end, so the server stored none of it, and the reader gives
// its messages the error.
func (a *appender) abandon(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	a.open = nil
	return a.fail(err)
}

// send finishes the open command.
func (a *appender) send() error {
	a.open = nil
	a.se.bw.WriteString("\r\n")
	if err := a.se.bw.Flush(); err != nil {
		err = providers.WithClass(providers.ClassTransient, fmt.Errorf("append to %q: %w", a.name, err))
		a.fail(err)
		return err
	}
	return nil
}

// read resolves the commands in order as their tagged replies arrive and
// passes "+" to the writer. Once the connection is gone, it fails every
// command sent, until shut closes the queue.
func (a *appender) read() {
	defer close(a.readDone)
	var lost error
	for lost == nil {
		line, err := a.se.readLine()
		switch {
		case err != nil && a.stopping.Load() && line == "" && errors.Is(err, os.ErrDeadlineExceeded):
			return // nothing in flight, see putAppender
		case err != nil:
			lost = a.fail(providers.WithClass(providers.ClassTransient, fmt.Errorf("append connection to %s: %w", a.s.cfg.Endpoint.Addr(), err)))
		case strings.HasPrefix(line, "+"):
			a.cont <- true
		case strings.HasPrefix(line, "* BYE"):
			if !a.loggingOut.Load() {
				a.s.observe(statusError(strings.TrimPrefix(line, "* ")))
			}
		case strings.HasPrefix(line, "s"):
			tag, rest, _ := strings.Cut(line, " ")
			g := <-a.inflight
			if g.tag != tag {
				lost = a.fail(providers.WithClass(providers.ClassTransient, fmt.Errorf("append connection: reply %q to %s", tag, g.tag)))
				a.resolve(g, nil, lost)
				continue
			}
			status := statusError(rest)
			a.mu.Lock()
			waiting := g.waiting
			a.mu.Unlock()
			verdict := a.refusal(status)
			if waiting && status != nil {
				// Refused before a literal: the command is over, the writer
				// gives the message it holds the same verdict.
				a.mu.Lock()
				g.refused = verdict
				a.mu.Unlock()
				a.resolve(g, nil, verdict)
				a.cont <- false
				continue
			}
			var uids []providers.UID
			if verdict == nil {
				uids = a.appendUIDs(rest)
			}
			a.resolve(g, uids, verdict)
		}
		// Other untagged data needs nothing.
	}
	if a.multi && !errors.Is(lost, context.Canceled) && a.s.shrinkGroups(a.name) {
		// A connection that gives way under a large MULTIAPPEND may carry
		// a smaller one (a proxy or firewall cutting long transfers).
		lost = providers.Adapting(lost)
	}
	// The outcome of what was sent is unknown: the copier looks for those
	// messages on the destination before sending them again.
	for g := range a.inflight {
		a.resolve(g, nil, lost)
	}
}

// refusal classifies a NO or BAD to an APPEND.
func (a *appender) refusal(status error) error {
	if status == nil {
		return nil
	}
	a.s.observe(status)
	err := fmt.Errorf("append to %q: %w", a.name, classify(status, opAppend))
	if providers.ClassOf(err) == providers.ClassMessage && a.multi {
		// One message spoiled the group and none was stored; alone, each
		// will get its own verdict.
		a.s.useSingleAppend(a.name)
		err = providers.WithClass(providers.ClassTransient, fmt.Errorf("%w (%v)", errGroupRefused, status))
	}
	return err
}

// resolve calls the dones of one group with its outcome and frees its
// place in the window.
func (a *appender) resolve(g *group, uids []providers.UID, err error) {
	defer a.pending.Done()
	defer a.se.w.end()
	defer a.window.Release(g.weight)
	a.mu.Lock()
	dones := g.dones
	a.mu.Unlock()
	for i, d := range dones {
		switch {
		case err != nil:
			d(0, err)
		case len(uids) == len(dones):
			d(uids[i], nil)
		default:
			d(0, nil)
		}
	}
}

// appendUIDs reads the UIDs of "[APPENDUID validity uid-set]" in an OK
// reply; nil if absent or for another UIDVALIDITY, unless the mailbox was
// fresh (see appender.fresh).
func (a *appender) appendUIDs(rest string) []providers.UID {
	validity, uids, ok := parseAppendUID(rest)
	if !ok {
		return nil
	}
	if validity != a.validity && a.fresh {
		a.validity = validity
		if a.adopt != nil {
			a.adopt(validity)
		}
	}
	a.fresh = false
	if validity != a.validity {
		return nil
	}
	return uids
}

// parseAppendUID reads "[APPENDUID validity uid-set]" (RFC 4315).
func parseAppendUID(rest string) (uint32, []providers.UID, bool) {
	i := strings.Index(strings.ToUpper(rest), "[APPENDUID ")
	if i < 0 {
		return 0, nil, false
	}
	j := strings.IndexByte(rest[i:], ']')
	if j < 0 {
		return 0, nil, false
	}
	f := strings.Fields(rest[i+len("[APPENDUID ") : i+j])
	if len(f) != 2 {
		return 0, nil, false
	}
	v, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, nil, false
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
			return 0, nil, false
		}
		if a > b {
			a, b = b, a
		}
		for u := a; u <= b && len(out) <= groupMessages; u++ {
			out = append(out, providers.UID(u))
		}
	}
	return uint32(v), out, true
}

// Flush sends the open command and waits for every reply.
func (a *appender) Flush(ctx context.Context) error {
	if a.open != nil {
		if err := a.broken(); err != nil {
			a.abandon(ctx, err)
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
