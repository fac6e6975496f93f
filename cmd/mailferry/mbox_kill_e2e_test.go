package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	gombox "github.com/emersion/go-mbox"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// TestMboxExportKillNine kills an export to mbox with SIGKILL at many
// moments, most of them in the middle of writing a message, and resumes
// it with the same command. Each time the files then hold every source
// message exactly once, byte for byte, for Python's mailbox module, for
// go-mbox and for Dovecot's own mbox reader: an interrupted append never
// stays behind as a torn message another reader would see.
func TestMboxExportKillNine(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	rng := rand.New(rand.NewPCG(18, 1))
	var total int64
	boxes := map[string]int{"INBOX": 16, "Archive": 6}
	for box, n := range boxes {
		var msgs []imaptest.SeedMessage
		for i := range n {
			var b bytes.Buffer
			fmt.Fprintf(&b, "From: s%d@example.org\r\nSubject: %s %d\r\nMessage-ID: <%s.%d@example.org>\r\n\r\n", i, box, i, box, i)
			// Lines an mbox writer must quote, so that cuts fall in them.
			b.WriteString("From the top\r\n>From quoted once\r\n\r\nFrom after a blank line\r\n")
			imaptest.WriteText(&b, rng, 100<<10+rng.IntN(900<<10), 76)
			msgs = append(msgs, imaptest.SeedMessage{Raw: b.Bytes(), Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 5, 6, 7, 8, i, 0, time.UTC)})
			total += int64(b.Len())
		}
		src.Seed(t, "alice", box, msgs)
	}
	want := map[string][]string{}
	for box := range boxes {
		want[box] = shaSet(src.Messages(t, "alice", box))
	}
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass}

	// Kill when the export has written a share of the total, so most kills
	// fall inside a message; two more at exact points between messages.
	type point struct {
		name  string
		bytes int64  // kill once the files hold this much
		hook  string // or a crash hook
	}
	var points []point
	for _, f := range []float64{0.04, 0.19, 0.33, 0.52, 0.68, 0.83, 0.96} {
		points = append(points, point{name: fmt.Sprintf("at-%.0f%%", f*100), bytes: int64(f * float64(total))})
	}
	points = append(points, point{name: "after-append-5", hook: "appended:5"}, point{name: "after-commit-1", hook: "committed:1"})

	torn := 0
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			work := t.TempDir()
			dir := filepath.Join(work, "export")
			args := []string{"migrate", "--from", "imap+plain://alice@" + src.Addr(), "--to", "mbox:" + dir,
				"--checkpoint", filepath.Join(work, "export.db"), "--mailbox-workers", "1"}
			killed := false
			if pt.hook != "" {
				r := runBinary(t, append(slices.Clone(env), crashEnv+"="+pt.hook), args...)
				killed = r.killed
			} else {
				killed = killWhenWritten(t, env, args, dir, pt.bytes)
			}
			if !killed {
				t.Logf("the export ended before the kill point")
			}
			if tornNow(dir) {
				torn++
			}
			if r := runBinary(t, env, args...); r.code != 0 {
				t.Fatalf("resume exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			files := map[string]string{}
			var paths []string
			for box := range boxes {
				files[box] = filepath.Join(dir, box+".mbox")
				paths = append(paths, files[box])
			}
			split := pythonSplit(t, paths...)
			for box := range boxes {
				var got []string
				for _, raw := range split[files[box]] {
					got = append(got, asServed(raw, false))
				}
				slices.Sort(got)
				if !slices.Equal(got, want[box]) {
					missing, extra := diff(want[box], got)
					t.Errorf("%s: Python's mailbox finds %d messages, the source has %d: %d missing, %d extra (torn or doubled)",
						box, len(got), len(want[box]), len(missing), len(extra))
				}
				if n := goMboxCount(t, files[box]); n != len(want[box]) {
					t.Errorf("%s: go-mbox finds %d messages, want %d", box, n, len(want[box]))
				}
				if n, ok := dovecotMboxCount(t, src, files[box], "Check-"+pt.name+"-"+box); !ok || n != len(want[box]) {
					t.Errorf("%s: Dovecot's mbox reader finds %d messages (read: %v), want %d", box, n, ok, len(want[box]))
				}
			}
		})
	}
	t.Logf("%d of %d kills came in the middle of an append", torn, len(points))
}

// killWhenWritten runs the binary and sends it SIGKILL once the mbox files
// under dir hold at least n bytes. It reports whether the kill came before
// the process ended.
func killWhenWritten(t *testing.T, env, args []string, dir string, n int64) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("export failed before the kill point: %v\n%s", err, out.String())
			}
			return false
		case <-time.After(time.Millisecond):
		}
		if mboxBytes(dir) >= n {
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			return true
		}
	}
}

// goMboxCount counts the messages github.com/emersion/go-mbox finds.
func goMboxCount(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := gombox.NewReader(f)
	for n := 0; ; n++ {
		m, err := r.NextMessage()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err == nil {
			_, err = io.Copy(io.Discard, m)
		}
		if err != nil {
			t.Fatalf("go-mbox reading %s: %v", path, err)
		}
	}
}

// mboxBytes is the size of the mbox files under dir.
func mboxBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".mbox" {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// tornNow reports whether a sidecar under dir ends with a message line and
// no checkpoint after it: the kill came in the middle of an append.
func tornNow(dir string) bool {
	torn := false
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".mailferry" {
			return nil
		}
		b, _ := os.ReadFile(path)
		lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
		if last := lines[len(lines)-1]; bytes.Contains(last, []byte(`"uid":`)) {
			torn = true
		}
		return nil
	})
	return torn
}
