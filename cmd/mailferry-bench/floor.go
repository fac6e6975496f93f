package main

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// Case (s): what one ordinary account costs the destination server, by
// the commands a client sends. Each sequence delivers the same mail (60
// messages over the lab's 13 mailboxes) into fresh accounts of a fresh
// Dovecot, 4 accounts at once, and the server's CPU is read from /proc:
// mbsync's way (one login, a SELECT and one APPEND per message),
// mailferry's, and the least any IMAP client can ask (one login, the
// CREATEs, one MULTIAPPEND per mailbox). On two cores shared by the
// servers and the tool, these floors bound every tool's wall time.

// floorStep is one way of delivering an account's mail.
type floorStep struct {
	name    string
	logins  int  // 2: appends on a second connection
	modseq  bool // HIGHESTMODSEQ in LIST-STATUS and STATUS
	list    bool // LIST-STATUS before and after the CREATEs, STATUS after each mailbox
	examine bool // EXAMINE and UNSELECT around each mailbox's appends
	selects bool // SELECT each mailbox before appending (mbsync)
	multi   bool // one MULTIAPPEND per mailbox, else one APPEND per message
}

var floorSteps = []floorStep{
	{name: "mbsync's way: 1 login, SELECT, 1 APPEND per message", logins: 1, selects: true},
	{name: "mailferry before this wave's change: 2 logins, LIST-STATUS, EXAMINE, MULTIAPPEND, STATUS", logins: 2, modseq: true, list: true, examine: true, multi: true},
	{name: "mailferry now: 1 login, LIST-STATUS, EXAMINE, MULTIAPPEND, STATUS", logins: 1, modseq: true, list: true, examine: true, multi: true},
	{name: "mailferry now without EXAMINE/UNSELECT", logins: 1, modseq: true, list: true, multi: true},
	{name: "mailferry now without HIGHESTMODSEQ", logins: 1, list: true, examine: true, multi: true},
	{name: "the floor: 1 login, CREATEs, 1 MULTIAPPEND per mailbox", logins: 1, multi: true},
}

// floorAccount is one account's mail: messages per lab mailbox.
func floorAccount() (map[string]int, []byte) {
	per := map[string]int{}
	for _, f := range imaptest.LabFolders {
		per[f.Name] = int(f.Share*60 + 0.5)
	}
	msg := []byte("From: a@example.org\r\nSubject: floor\r\nMessage-ID: <floor@example.org>\r\n\r\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog, 0123456789.\r\n", 130))
	return per, msg
}

// runFloor times each step onto a fresh Dovecot with users accounts; it
// returns a markdown table of server CPU per account.
func runFloor(tb testing.TB, users, reps int) string {
	logins := map[string]string{}
	var names []string
	for i := range users {
		u := fmt.Sprintf("floor%03d", i)
		names = append(names, u)
		logins[u] = "pw-" + u
	}
	per, msg := floorAccount()
	var b strings.Builder
	fmt.Fprintf(&b, "| sequence (%d accounts of %d messages in %d mailboxes, 4 at once) | server CPU per account (min of %d) | wall |\n|---|---|---|\n",
		users, sumValues(per), len(per), reps)
	for _, st := range floorSteps {
		var cpu []time.Duration
		var wall time.Duration
		for range reps {
			d := imaptest.StartDovecot(tb, imaptest.DovecotOptions{Users: logins, MaxUserIPConnections: 50})
			before, start := d.CPU(), time.Now()
			var wg sync.WaitGroup
			next := make(chan string, len(names))
			for _, u := range names {
				next <- u
			}
			close(next)
			errs := make(chan error, len(names))
			for range 4 {
				wg.Go(func() {
					for u := range next {
						if err := st.deliver(d.Addr(), u, logins[u], per, msg); err != nil {
							errs <- fmt.Errorf("%s: %s: %w", st.name, u, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				tb.Fatalf("%v", err)
			}
			cpu = append(cpu, d.CPU()-before)
			wall = time.Since(start)
			for _, u := range names[:3] {
				for box, n := range per {
					if got := len(d.AllMessages(tb, u)[box]); got != n {
						tb.Fatalf("%s: %s/%s holds %d messages, want %d", st.name, u, box, got, n)
					}
				}
			}
		}
		fmt.Fprintf(&b, "| %s | %.1f ms | %v |\n", st.name, float64(slices.Min(cpu).Microseconds())/1000/float64(users), wall.Round(10*time.Millisecond))
	}
	return b.String()
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// floorConn is a bare IMAP connection: one command at a time, or one
// APPEND of many messages.
type floorConn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	tag int
}

func floorDial(addr, user, pass string) (*floorConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fc := &floorConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	if _, err := fc.r.ReadString('\n'); err != nil {
		c.Close()
		return nil, err
	}
	if err := fc.do(fmt.Sprintf("LOGIN %s %s", user, pass)); err != nil {
		c.Close()
		return nil, err
	}
	return fc, nil
}

// do sends a command, with n copies of msg as its APPEND literals when
// msg is set, and waits for its tagged OK.
func (fc *floorConn) do(cmd string, lits ...[]byte) error {
	fc.tag++
	tag := fmt.Sprintf("f%d", fc.tag)
	fc.w.WriteString(tag + " " + cmd)
	for _, l := range lits {
		fmt.Fprintf(fc.w, " (\\Seen) {%d+}\r\n", len(l))
		fc.w.Write(l)
	}
	fc.w.WriteString("\r\n")
	if err := fc.w.Flush(); err != nil {
		return err
	}
	for {
		l, err := fc.r.ReadString('\n')
		if err != nil {
			return err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return fmt.Errorf("%s: %s", cmd, strings.TrimSpace(rest))
			}
			return nil
		}
	}
}

func (fc *floorConn) close() {
	fc.do("LOGOUT")
	fc.c.Close()
}

// deliver puts one account's mail on the server the step's way.
func (st floorStep) deliver(addr, user, pass string, per map[string]int, msg []byte) error {
	c1, err := floorDial(addr, user, pass)
	if err != nil {
		return err
	}
	defer c1.close()
	app := c1
	if st.logins == 2 {
		if app, err = floorDial(addr, user, pass); err != nil {
			return err
		}
		defer app.close()
	}
	items := "MESSAGES UIDNEXT UIDVALIDITY"
	if st.modseq {
		items += " HIGHESTMODSEQ"
	}
	list := func() error {
		if st.list {
			return c1.do(`LIST "" "*" RETURN (SUBSCRIBED STATUS (` + items + `) SPECIAL-USE)`)
		}
		return c1.do(`LIST "" "*"`)
	}
	if err := list(); err != nil {
		return err
	}
	boxes := make([]string, 0, len(per))
	for _, f := range imaptest.LabFolders {
		boxes = append(boxes, f.Name)
		// The special-use ones are there already.
		if err := c1.do(fmt.Sprintf("CREATE %q", f.Name)); err != nil && !strings.Contains(err.Error(), "ALREADYEXISTS") {
			return err
		}
	}
	if st.list {
		if err := list(); err != nil {
			return err
		}
	}
	for _, box := range boxes {
		q := fmt.Sprintf("%q", box)
		switch {
		case st.examine:
			if err := c1.do("EXAMINE " + q); err != nil {
				return err
			}
			if err := c1.do("UNSELECT"); err != nil {
				return err
			}
		case st.selects:
			if err := c1.do("SELECT " + q); err != nil {
				return err
			}
		}
		n := per[box]
		if st.multi && n > 0 {
			lits := make([][]byte, n)
			for i := range lits {
				lits[i] = msg
			}
			if err := app.do("APPEND "+q, lits...); err != nil {
				return err
			}
		} else {
			for range n {
				if err := app.do("APPEND "+q, msg); err != nil {
					return err
				}
			}
		}
		if st.list {
			if err := c1.do(fmt.Sprintf("STATUS %s (%s)", q, items)); err != nil {
				return err
			}
		}
	}
	return nil
}
