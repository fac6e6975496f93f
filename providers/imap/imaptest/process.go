package imaptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// errPortInUse reports that Dovecot could not bind its port.
var errPortInUse = errors.New("port already in use")

// startOnce writes the config for a fresh port, starts dovecot and waits for
// its greeting. On failure the process is stopped again.
func (d *Dovecot) startOnce() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.ConfigPath, []byte(d.config(port)), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	// Only this attempt's logs, so that a bind failure is recognised.
	for _, name := range []string{"dovecot.out", "dovecot.log"} {
		if err := os.Remove(filepath.Join(d.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// dovecot -F keeps the inherited stdout and stderr, and so do its
	// children: a pipe would never reach EOF, so they go to a file.
	out, err := os.OpenFile(filepath.Join(d.Dir, "dovecot.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open output file: %w", err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(d.dovecotPath, "-F", "-c", d.ConfigPath)
	cmd.Dir = d.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", d.dovecotPath, err)
	}
	proc := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		proc.err = cmd.Wait()
		close(proc.done)
	}()

	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	if err := waitGreeting(addr, d.greeting(), proc.done, startTimeout); err != nil {
		select {
		case <-proc.done:
			err = fmt.Errorf("%w: %v", err, proc.err)
		default:
		}
		stopErr := proc.stop()
		if strings.Contains(d.logTail(), "Address already in use") {
			return fmt.Errorf("dovecot could not bind %s: %w", addr, errPortInUse)
		}
		return errors.Join(err, stopErr)
	}
	d.Port = port
	d.proc = proc
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitGreeting waits until addr sends an IMAP greeting containing want, which
// is unique to the instance: someone else may have taken the port. Before
// the auth process is up Dovecot first sends "* OK Waiting for authentication
// process to respond.." and the real greeting later; only the real one
// counts, so that a test connecting right after StartDovecot gets one
// greeting.
func waitGreeting(addr, want string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("dovecot exited before greeting")
		default:
		}
		lastErr = readGreeting(addr, want, deadline)
		if lastErr == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no IMAP greeting on %s within %v: %w", addr, timeout, lastErr)
}

func readGreeting(addr, want string, deadline time.Time) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read greeting: %w", err)
		}
		switch {
		case strings.Contains(line, "Waiting for authentication"):
			continue
		case strings.HasPrefix(line, "* OK") && strings.Contains(line, want):
			_, err := io.WriteString(conn, "g LOGOUT\r\n")
			return err
		default:
			return fmt.Errorf("unexpected greeting %q", line)
		}
	}
}

// stop terminates dovecot (SIGTERM, then SIGKILL to its process group after
// stopTimeout) and waits for it.
func (p *process) stop() error {
	select {
	case <-p.done:
		killGroup(p.cmd) // leftover children, if any
		return nil
	default:
	}
	if err := terminate(p.cmd); err != nil {
		return fmt.Errorf("signal dovecot: %w", err)
	}
	select {
	case <-p.done:
		killGroup(p.cmd)
		return nil
	case <-time.After(stopTimeout):
	}
	killGroup(p.cmd)
	<-p.done
	return fmt.Errorf("dovecot did not stop within %v after SIGTERM; killed", stopTimeout)
}

// greeting is the instance's unique login_greeting.
func (d *Dovecot) greeting() string {
	return "Dovecot ready (imaptest-" + filepath.Base(d.Dir) + ")."
}

// logTail returns the end of dovecot's log and of its stdout/stderr.
func (d *Dovecot) logTail() string {
	var b strings.Builder
	for _, name := range []string{"dovecot.out", "dovecot.log"} {
		data, err := tail(filepath.Join(d.Dir, name), logTailBytes)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, bytes.TrimRight(data, "\n"))
	}
	return b.String()
}

func tail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-n, 0)
	data := make([]byte, fi.Size()-off)
	_, err = f.ReadAt(data, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return data, nil
}

// launch prepares and starts a server for a test, again on another port
// when its port was taken meanwhile, and stops it at cleanup.
func launch(tb testing.TB, name string, prepare, startOnce func() error, logTail func() string, stop func() error) {
	tb.Helper()
	if err := prepare(); err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	for attempt := 1; ; attempt++ {
		err := startOnce()
		if err == nil {
			break
		}
		if errors.Is(err, errPortInUse) && attempt < startAttempts {
			tb.Logf("imaptest: %v; retrying with another port", err)
			continue
		}
		tb.Fatalf("imaptest: start %s (attempt %d): %v\n%s", name, attempt, err, logTail())
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("imaptest: stop %s: %v", name, err)
		}
	})
}
