package imaptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
)

// imapDateTime is the layout of IMAP's date-time (INTERNALDATE).
const imapDateTime = "02-Jan-2006 15:04:05 -0700"

// rawIMAP is a minimal IMAP client on a bare socket, so that these tests
// check Dovecot without any IMAP library (and without mailferry's code).
type rawIMAP struct {
	tb   testing.TB
	conn net.Conn
	r    *textproto.Reader
	tag  int
}

// response is one server response line; each literal in it is replaced by
// "{N}" in Text and its bytes are in Literals.
type response struct {
	Text     string
	Literals [][]byte
}

func dialIMAP(tb testing.TB, addr string) *rawIMAP {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		tb.Fatal(err)
	}
	c := &rawIMAP{tb: tb, conn: conn, r: textproto.NewReader(bufio.NewReader(conn))}
	if g := c.read(); !strings.HasPrefix(g.Text, "* OK") {
		tb.Fatalf("greeting: %q", g.Text)
	}
	return c
}

// read reads one response, including the literals it contains.
func (c *rawIMAP) read() response {
	c.tb.Helper()
	var resp response
	for {
		line, err := c.r.ReadLine()
		if err != nil {
			c.tb.Fatalf("read response: %v", err)
		}
		resp.Text += line
		n, ok := literalSize(line)
		if !ok {
			return resp
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.r.R, lit); err != nil {
			c.tb.Fatalf("read literal: %v", err)
		}
		resp.Literals = append(resp.Literals, lit)
	}
}

// literalSize returns N if line ends with a literal announcement "{N}".
func literalSize(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(line[i+1 : len(line)-1])
	return n, err == nil
}

func (c *rawIMAP) send(s string) {
	c.tb.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.tb.Fatalf("send: %v", err)
	}
}

// do sends one command and returns the untagged responses and the tagged
// status line (without the tag).
func (c *rawIMAP) do(format string, args ...any) ([]response, string) {
	c.tb.Helper()
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	c.send(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	return c.until(tag)
}

func (c *rawIMAP) until(tag string) ([]response, string) {
	c.tb.Helper()
	var untagged []response
	for {
		r := c.read()
		if rest, ok := strings.CutPrefix(r.Text, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, r)
	}
}

// mustOK runs a command that must succeed.
func (c *rawIMAP) mustOK(format string, args ...any) []response {
	c.tb.Helper()
	untagged, status := c.do(format, args...)
	if !strings.HasPrefix(status, "OK") {
		c.tb.Fatalf("%s: %s", fmt.Sprintf(format, args...), status)
	}
	return untagged
}

// appendMsg APPENDs msg with a synchronising literal and returns the tagged
// status. flags is the parenthesised list's content; a zero date is left
// out. The server may refuse before the literal (e.g. over quota).
func (c *rawIMAP) appendMsg(mailbox, flags string, date time.Time, msg []byte) string {
	c.tb.Helper()
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	dateArg := ""
	if !date.IsZero() {
		dateArg = ` "` + date.Format(imapDateTime) + `"`
	}
	c.send(fmt.Sprintf("%s APPEND %s (%s)%s {%d}\r\n", tag, quoteIMAP(mailbox), flags, dateArg, len(msg)))
	r := c.read()
	if rest, ok := strings.CutPrefix(r.Text, tag+" "); ok {
		return rest
	}
	if !strings.HasPrefix(r.Text, "+") {
		c.tb.Fatalf("APPEND: want continuation, got %q", r.Text)
	}
	c.send(string(msg) + "\r\n")
	_, status := c.until(tag)
	return status
}

func quoteIMAP(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
