package imaptest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// doveadmTimeout bounds one doveadm run, so that a wedged server fails the
// test instead of hanging it.
const doveadmTimeout = 2 * time.Minute

// Message is one message as Dovecot itself sees it.
type Message struct {
	Mailbox string
	UID     uint32
	// Flags are the message's system flags and keywords as Dovecot reports
	// them (`\Seen`, `$Forwarded`, "Custom1"), sorted, without \Recent; nil
	// when there are none.
	Flags []string
	// InternalDate is the INTERNALDATE (doveadm date.received) in UTC, to the
	// second: maildir keeps it as the file's mtime and no time zone.
	InternalDate time.Time
	// Size is the RFC822.SIZE an IMAP client sees: doveadm size.virtual, the
	// size with every bare LF counted as CRLF.
	Size int64
	// SHA256 is the hex SHA-256 of exactly the bytes IMAP FETCH BODY[] returns
	// for the message. They come from doveadm fetch "body." (BODY[] with an
	// empty section), which runs the same imap_msgpart code as Dovecot's IMAP
	// server: the stored message with a CR added before every LF that lacks
	// one and every NUL replaced by 0x80 (IMAP literals cannot carry NULs).
	// The tests compare it with a raw FETCH BODY[] over the wire.
	//
	// Equal SHA256 on two instances therefore means that IMAP clients of both
	// get identical bytes. Dovecot's maildir stores APPENDed messages with LF
	// line endings and adds the CRs back when serving, so the stored files
	// of the two sides may differ in line endings while BODY[] is identical.
	// Two things cannot survive an APPEND to Dovecot whatever the client
	// does: "\r\r\n" is stored as "\r\n" and a final bare CR is dropped
	// (see TestDovecotAppendNormalisation).
	SHA256 string
	// ExactSHA256 is the hex SHA-256 of the stored message (doveadm "text")
	// with a CR before every LF that lacks one, as SHA256, but with its NUL
	// bytes: it tells a message that has NUL from one that has 0x80 there,
	// which BODY[] cannot.
	ExactSHA256 string
	// MessageID is the value of the first Message-ID header field, unfolded
	// and trimmed; "" if there is none.
	MessageID string
}

// Doveadm runs `doveadm -c CONF args...` and returns its standard output. It
// fails the test, with doveadm's standard error, if doveadm fails.
func (d *Dovecot) Doveadm(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := d.doveadm(args...)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	return string(out)
}

func (d *Dovecot) doveadmCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.doveadmPath, append([]string{"-c", d.ConfigPath}, args...)...)
	cmd.Dir = d.Dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (d *Dovecot) doveadm(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), doveadmTimeout)
	defer cancel()
	cmd := d.doveadmCmd(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, &doveadmError{args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// doveadmError is a failed doveadm run.
type doveadmError struct {
	args   []string
	err    error
	stderr string
}

func (e *doveadmError) Error() string {
	return fmt.Sprintf("doveadm %q: %v: %s", e.args, e.err, e.stderr)
}

func (e *doveadmError) Unwrap() error { return e.err }

// Mailboxes lists the user's mailboxes, sorted, named as Dovecot shows them
// (UTF-8, full names with the configured separator and prefix). The
// configured special-use mailboxes are included even before first use, and
// so are \Noselect parents such as "Projects" of "Projects/2024".
func (d *Dovecot) Mailboxes(tb testing.TB, user string) []string {
	tb.Helper()
	return lines(d.Doveadm(tb, "-f", "flow", "mailbox", "list", "-u", user))
}

// Subscriptions lists the user's subscribed mailboxes, sorted.
func (d *Dovecot) Subscriptions(tb testing.TB, user string) []string {
	tb.Helper()
	return lines(d.Doveadm(tb, "-f", "flow", "mailbox", "list", "-s", "-u", user))
}

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// CreateMailbox creates the mailbox (full name, configured separator) without
// subscribing to it. It does nothing if the mailbox already exists.
// Special-use attributes come from DovecotOptions.SpecialUse, not from here.
func (d *Dovecot) CreateMailbox(tb testing.TB, user, name string) {
	tb.Helper()
	if _, ok := d.mailboxStatus(tb, user, name, "guid"); ok {
		return
	}
	d.Doveadm(tb, "mailbox", "create", "-u", user, name)
}

// messageCounts syncs every mailbox of user that exists on disk and
// returns its number of messages, by name.
func (d *Dovecot) messageCounts(tb testing.TB, user string) map[string]int {
	tb.Helper()
	out := d.Doveadm(tb, "-f", "tab", "mailbox", "status", "-u", user, "messages", "*")
	counts := map[string]int{}
	for i, row := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		name, n, ok := strings.Cut(row, "\t")
		if i == 0 || row == "" {
			continue // the header
		}
		c, err := strconv.Atoi(n)
		if !ok || err != nil {
			tb.Fatalf("imaptest: unexpected doveadm mailbox status output:\n%s", out)
		}
		counts[name] = c
	}
	return counts
}

// mailboxStatus returns the given doveadm mailbox status fields of one
// mailbox, and false if the mailbox does not exist on disk (doveadm skips
// special-use mailboxes that are configured but not created yet).
func (d *Dovecot) mailboxStatus(tb testing.TB, user, name string, fields ...string) (map[string]string, bool) {
	tb.Helper()
	// The name is a pattern to doveadm ('*', '%' and '?' are wildcards), so
	// pick the row that matches exactly.
	b, err := d.doveadm("-f", "tab", "mailbox", "status", "-u", user, strings.Join(fields, " "), name)
	if dErr := (*doveadmError)(nil); errors.As(err, &dErr) && strings.Contains(dErr.stderr, "Mailbox doesn't exist") {
		return nil, false
	} else if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	out := string(b)
	rows := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(rows) < 2 {
		return nil, false
	}
	header := strings.Split(rows[0], "\t")
	for _, row := range rows[1:] {
		cols := strings.Split(row, "\t")
		if len(cols) != len(header) {
			tb.Fatalf("imaptest: unexpected doveadm mailbox status output:\n%s", out)
		}
		m := make(map[string]string, len(cols))
		for i, h := range header {
			m[h] = cols[i]
		}
		if m["mailbox"] == name {
			return m, true
		}
	}
	return nil, false
}

// fetchFields are the doveadm fetch fields Messages parses, in this order.
// "text" and "body." are raw bytes, as many as size.physical and
// size.virtual before them say; "body." is last.
const fetchFields = "uid flags date.received.unixtime size.virtual size.physical text body."

// Messages lists every message in the user's mailbox, ordered by UID, as
// Dovecot itself reports it (doveadm fetch). An existing mailbox that holds
// no messages, or a configured special-use mailbox not created yet, gives
// nil; a mailbox that does not exist fails the test.
func (d *Dovecot) Messages(tb testing.TB, user, mailbox string) []Message {
	tb.Helper()
	st, ok := d.mailboxStatus(tb, user, mailbox, "guid")
	if !ok {
		if slices.Contains(d.Mailboxes(tb, user), mailbox) {
			return nil
		}
		tb.Fatalf("imaptest: user %s has no mailbox %q", user, mailbox)
	}

	// The GUID avoids the wildcards in names.
	msgs := d.fetch(tb, user, mailbox, fetchFields, "mailbox-guid", st["guid"])
	slices.SortFunc(msgs, func(a, b Message) int { return cmp.Compare(a.UID, b.UID) })
	return msgs
}

// fetch runs doveadm fetch of the user's messages that query matches, with
// fields (fetchFields, with "mailbox " before them when mailbox is "", all
// mailboxes), and parses what it prints.
func (d *Dovecot) fetch(tb testing.TB, user, mailbox, fields string, query ...string) []Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), doveadmTimeout)
	defer cancel()
	// The pager format is the only one that prints bodies unescaped (json
	// replaces invalid UTF-8).
	args := append([]string{"-f", "pager", "fetch", "-u", user, fields}, query...)
	cmd := d.doveadmCmd(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("imaptest: doveadm fetch: %v", err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("imaptest: doveadm fetch: %v", err)
	}
	msgs, perr := parseFetch(stdout, mailbox, mailbox == "")
	if perr != nil {
		_, _ = io.Copy(io.Discard, stdout) // let doveadm finish
	}
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("imaptest: doveadm %q: %v: %s", args, err, strings.TrimSpace(stderr.String()))
	}
	if perr != nil {
		tb.Fatalf("imaptest: parse doveadm fetch output of %s/%s: %v", user, mailbox, perr)
	}
	return msgs
}

// AllMessages lists every message of every mailbox of the user, by
// mailbox, each ordered by UID, as Messages does, with one doveadm run:
// a check of many accounts cannot afford two runs per mailbox.
func (d *Dovecot) AllMessages(tb testing.TB, user string) map[string][]Message {
	tb.Helper()
	out := map[string][]Message{}
	for _, m := range d.fetch(tb, user, "", "mailbox "+fetchFields, "all") {
		out[m.Mailbox] = append(out[m.Mailbox], m)
	}
	for _, ms := range out {
		slices.SortFunc(ms, func(a, b Message) int { return cmp.Compare(a.UID, b.UID) })
	}
	return out
}

// parseFetch parses `doveadm -f pager fetch fetchFields` output, with the
// "mailbox" field first when withMailbox (else every message is in
// mailbox). Records are separated by "\f\n"; each field is
// "name: value\n", except the stream field "body.", printed as "body.:\n"
// followed by exactly size.virtual raw bytes and nothing else, so bodies
// containing "\f" or anything else cannot be confused with the framing.
func parseFetch(r io.Reader, mailbox string, withMailbox bool) ([]Message, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var msgs []Message
	var body []byte
	for {
		if len(msgs) > 0 {
			sep, err := br.ReadString('\n')
			if errors.Is(err, io.EOF) && (sep == "" || sep == "\n") {
				return msgs, nil
			}
			if err != nil || sep != "\f\n" {
				return nil, fmt.Errorf("after UID %d: want record separator, got %q: %w", msgs[len(msgs)-1].UID, sep, err)
			}
		} else if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			return nil, nil // empty mailbox
		}

		m := Message{Mailbox: mailbox}
		if withMailbox {
			name, err := field(br, "mailbox")
			if err != nil {
				return nil, err
			}
			m.Mailbox = name
		}
		v, err := field(br, "uid")
		if err != nil {
			return nil, err
		}
		uid, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("uid: %w", err)
		}
		m.UID = uint32(uid)

		if v, err = field(br, "flags"); err != nil {
			return nil, err
		}
		for f := range strings.FieldsSeq(v) {
			if f != `\Recent` {
				m.Flags = append(m.Flags, f)
			}
		}
		slices.Sort(m.Flags)

		if v, err = field(br, "date.received.unixtime"); err != nil {
			return nil, err
		}
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("UID %d: date.received.unixtime: %w", m.UID, err)
		}
		m.InternalDate = time.Unix(secs, 0).UTC()

		if v, err = field(br, "size.virtual"); err != nil {
			return nil, err
		}
		if m.Size, err = strconv.ParseInt(v, 10, 64); err != nil || m.Size < 0 {
			return nil, fmt.Errorf("UID %d: size.virtual %q: %w", m.UID, v, err)
		}

		if v, err = field(br, "size.physical"); err != nil {
			return nil, err
		}
		physical, err := strconv.ParseInt(v, 10, 64)
		if err != nil || physical < 0 {
			return nil, fmt.Errorf("UID %d: size.physical %q: %w", m.UID, v, err)
		}
		if l, err := br.ReadString('\n'); err != nil || l != "text:\n" {
			return nil, fmt.Errorf("UID %d: want text:, got %q: %w", m.UID, l, err)
		}
		h := sha256.New()
		prev := byte(0)
		for left := physical; left > 0; left-- {
			c, err := br.ReadByte()
			if err != nil {
				return nil, fmt.Errorf("UID %d: read %d stored bytes: %w", m.UID, physical, err)
			}
			if c == '\n' && prev != '\r' {
				h.Write([]byte{'\r'})
			}
			h.Write([]byte{c})
			prev = c
		}
		m.ExactSHA256 = hex.EncodeToString(h.Sum(nil))
		if l, err := br.ReadString('\n'); err != nil || l != "body.:\n" {
			return nil, fmt.Errorf("UID %d: want body.:, got %q: %w", m.UID, l, err)
		}
		if int64(cap(body)) < m.Size {
			body = make([]byte, m.Size)
		}
		body = body[:m.Size]
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, fmt.Errorf("UID %d: read %d body bytes: %w", m.UID, m.Size, err)
		}
		sum := sha256.Sum256(body)
		m.SHA256 = hex.EncodeToString(sum[:])
		m.MessageID = headerValue(body, "Message-ID")
		msgs = append(msgs, m)
	}
}

// field reads one "name: value\n" line.
func field(br *bufio.Reader, name string) (string, error) {
	l, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	v, ok := strings.CutPrefix(l, name+": ")
	if !ok {
		return "", fmt.Errorf("want %s, got %q", name, l)
	}
	return strings.TrimSuffix(v, "\n"), nil
}

// headerValue returns the first header field called name in msg's header,
// unfolded and trimmed, or "".
func headerValue(msg []byte, name string) string {
	var val []byte
	found := false
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of header
		}
		if line[0] == ' ' || line[0] == '\t' {
			if found {
				val = append(val, line...) // unfold: drop the line break only
			}
			continue
		}
		if found {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(bytes.TrimRight(k, " \t")), name) {
			found = true
			val = append(val, v...)
		}
	}
	return string(bytes.TrimSpace(val))
}
