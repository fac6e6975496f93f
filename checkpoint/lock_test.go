package checkpoint

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a process that opens a checkpoint, for the
// tests of what two processes do at once.
func TestMain(m *testing.M) {
	if path := os.Getenv("MAILFERRY_TEST_OPEN"); path != "" {
		os.Exit(openAndHold(path))
	}
	os.Exit(m.Run())
}

// openAndHold waits for the instant MAILFERRY_TEST_AT (unix nanoseconds),
// opens path for writing and says how it went on stdout; having opened
// it, it records a run and holds the file until stdin closes.
func openAndHold(path string) int {
	at, _ := strconv.ParseInt(os.Getenv("MAILFERRY_TEST_AT"), 10, 64)
	time.Sleep(time.Until(time.Unix(0, at)))
	s, err := Open(path, Options{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		fmt.Printf("refused: %v\n", err)
		return 3
	}
	if _, err := s.StartRun("migrate", "test"); err != nil {
		fmt.Printf("opened, then: %v\n", err)
		return 4
	}
	fmt.Println("opened")
	io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		return 5
	}
	return 0
}

// TestSimultaneousStarts starts two processes at the same instant on a
// checkpoint that does not exist yet, 24 times. The lock decides: one
// creates the file and runs, the other is refused with the winner's pid
// (never "empty file", never a half-made file), and the file is whole.
func TestSimultaneousStarts(t *testing.T) {
	for i := range 24 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "new.db")
			at := time.Now().Add(300 * time.Millisecond).UnixNano()
			type proc struct {
				cmd   *exec.Cmd
				stdin io.WriteCloser
				line  chan string
			}
			var ps [2]proc
			for j := range ps {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "MAILFERRY_TEST_OPEN="+path, fmt.Sprintf("MAILFERRY_TEST_AT=%d", at))
				stdin, err := cmd.StdinPipe()
				if err != nil {
					t.Fatal(err)
				}
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				line := make(chan string, 1)
				go func() {
					l, _ := bufio.NewReader(stdout).ReadString('\n')
					line <- strings.TrimSpace(l)
					io.Copy(io.Discard, stdout)
				}()
				ps[j] = proc{cmd, stdin, line}
			}
			var said [2]string
			for j := range ps {
				select {
				case said[j] = <-ps[j].line:
				case <-time.After(30 * time.Second):
					t.Fatalf("process %d said nothing", j)
				}
			}
			for j := range ps {
				ps[j].stdin.Close()
				ps[j].cmd.Wait()
			}
			winner := -1
			for j, s := range said {
				if s == "opened" {
					if winner >= 0 {
						t.Fatalf("both processes opened the checkpoint: %q", said)
					}
					winner = j
				}
			}
			if winner < 0 {
				t.Fatalf("neither process opened the checkpoint: %q", said)
			}
			loser := said[1-winner]
			want := fmt.Sprintf("in use by another mailferry process (pid %d ", ps[winner].cmd.Process.Pid)
			if !strings.HasPrefix(loser, "refused: ") || !strings.Contains(loser, want) {
				t.Errorf("the loser said %q, want a refusal naming %q", loser, want)
			}
			rep, err := Check(path, Options{})
			if err != nil || len(rep.Problems) > 0 || rep.Runs != 1 {
				t.Errorf("Check after the race: %+v, %v; want one run and no problem", rep, err)
			}
			if left := besides(t, path); len(left) > 0 {
				t.Errorf("left beside the checkpoint: %v", left)
			}
		})
	}
}

// TestReaderRefusedWhileWriting: a reader that finds a run holding the
// checkpoint is refused with the writer's pid after its timeout, not let
// in to read a file being written.
func TestReaderRefusedWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path, Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if want := fmt.Sprintf("pid %d ", os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("read-only Open during a run = %v, want ErrLocked naming %q", err, want)
	}
}
