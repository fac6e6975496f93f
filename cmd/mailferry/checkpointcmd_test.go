package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate/ledger"
)

// writeCheckpoint makes a checkpoint of n records in one mailbox, bound
// to endpoints of no server.
func writeCheckpoint(t *testing.T, path string, n int) {
	t.Helper()
	s, err := checkpoint.Open(path, checkpoint.Options{Backups: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.BindEndpoints("imap+plain://127.0.0.1:1", "mbox:"+filepath.Join(filepath.Dir(path), "out")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartRun("migrate", "test"); err != nil {
		t.Fatal(err)
	}
	id := ledger.AccountID("alice", "alice")
	if err := s.PutAccount(id, ledger.Account{Source: "alice", Dest: "alice", State: ledger.AccountCopied}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMailbox(id, "INBOX", ledger.MailboxRecord{Source: "INBOX", Dest: "INBOX", SrcValidity: 7, DstValidity: 9}); err != nil {
		t.Fatal(err)
	}
	recs := make([]ledger.Record, n)
	for i := range recs {
		recs[i] = ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: uint32(i + 1)}, Status: ledger.StatusCopied,
			DstValidity: 9, DstUID: uint32(i + 1), Size: 1000, MessageID: fmt.Sprintf("<m%04d@example.org>", i+1)}
	}
	if err := s.PutRecords(id, "INBOX", recs); err != nil {
		t.Fatal(err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestCheckpointCheckAndRecover: check says what a checkpoint holds and
// exits 0, or lists the damage and exits 1; every run refuses the damaged
// file with exit 2, saying where it is damaged and what to do, and writes
// nothing to it or beside it; recover copies what verifies into a new
// file that checks clean.
func TestCheckpointCheckAndRecover(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wave1.db")
	writeCheckpoint(t, path, 500)

	r := runBinary(t, nil, "checkpoint", "check", path)
	if r.code != 0 || !strings.Contains(r.stdout, "no problems found") || !strings.Contains(r.stdout, "message records: 500 (copied 500)") {
		t.Errorf("check of a sound file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, nil, "checkpoint", "check", "--json", path)
	var rep checkpoint.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || rep.Records["copied"] != 500 || rep.Schema != checkpoint.SchemaVersion {
		t.Errorf("check --json: exit %d, %v, %+v", r.code, err, rep)
	}

	// Damage record 7:321's Message-ID.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(b, []byte("<m0321@example.org>"))
	if off < 0 || bytes.Count(b, []byte("<m0321@example.org>")) != 1 {
		t.Fatal("the record is not in the file exactly once")
	}
	b[off+3] ^= 0x20
	os.WriteFile(path, b, 0o600)
	sum := sha256.Sum256(b)
	before := listDir(t, dir)
	unchanged := func(what string) {
		t.Helper()
		if after, _ := os.ReadFile(path); sha256.Sum256(after) != sum {
			t.Errorf("%s changed the damaged file", what)
		}
		if got := listDir(t, dir); !slices.Equal(got, before) {
			t.Errorf("%s left %v beside it (was %v)", what, got, before)
		}
	}

	r = runBinary(t, nil, "checkpoint", "check", path)
	if r.code != 1 || !strings.Contains(r.stdout, "PROBLEMS") || !strings.Contains(r.stdout, "record 7:321: checksum mismatch") || !strings.Contains(r.stderr, "damaged") {
		t.Errorf("check of a damaged file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	unchanged("check")

	env := []string{"MAILFERRY_FROM_PASSWORD=x"}
	ends := []string{"--from", "imap+plain://alice@127.0.0.1:1", "--to", "mbox:" + filepath.Join(dir, "out"), "--checkpoint", path}
	for _, args := range [][]string{
		append([]string{"migrate", "--retries", "0"}, ends...),
		append([]string{"migrate", "--dry-run"}, ends...),
		append([]string{"undo", "--yes"}, ends...),
		append([]string{"verify"}, ends...),
		{"status", "--checkpoint", path},
		{"cutover", "--checkpoint", path},
	} {
		r := runBinary(t, env, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "checkpoint file is damaged") || !strings.Contains(r.stderr, "record 7:321") ||
			!strings.Contains(r.stderr, "checkpoint recover "+path+" --to NEW") {
			t.Errorf("%s on a damaged checkpoint: exit %d, stderr %s", args[0], r.code, r.stderr)
		}
		unchanged(strings.Join(args[:2], " "))
	}

	newPath := filepath.Join(dir, "recovered.db")
	r = runBinary(t, nil, "checkpoint", "recover", path, "--to", newPath)
	if r.code != 1 || !strings.Contains(r.stdout, "LOST") || !strings.Contains(r.stdout, "record 7:321") || !strings.Contains(r.stdout, "message records: 499") {
		t.Errorf("recover: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after, _ := os.ReadFile(path); sha256.Sum256(after) != sum {
		t.Errorf("recover changed the damaged file")
	}
	if r := runBinary(t, nil, "checkpoint", "check", newPath); r.code != 0 || !strings.Contains(r.stdout, "message records: 499") {
		t.Errorf("check of the recovered file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBinary(t, nil, "checkpoint", "recover", path, "--to", newPath); r.code != 2 || !strings.Contains(r.stderr, "never overwrites") {
		t.Errorf("recover onto an existing file: exit %d, %s", r.code, r.stderr)
	}
	if r := runBinary(t, nil, "checkpoint", "recover", path); r.code != 2 || !strings.Contains(r.stderr, "--to NEW is required") {
		t.Errorf("recover without --to: exit %d, %s", r.code, r.stderr)
	}

	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("not a checkpoint\n"), 0o600)
	for _, p := range []string{filepath.Join(dir, "missing.db"), notes} {
		if r := runBinary(t, nil, "checkpoint", "check", p); r.code != 2 {
			t.Errorf("check %s: exit %d, want 2\n%s", p, r.code, r.stderr)
		}
	}
}

// TestSimultaneousMigrations starts two migrations at once on a checkpoint
// that does not exist yet, six times. The source accepts connections and
// never greets, so the one that wins holds the checkpoint for its
// --timeout; the other is refused with exit 2 and the winner's pid.
func TestSimultaneousMigrations(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { // silent until the client gives up
				c.Read(make([]byte, 1))
				c.Close()
			})
		}
	}()
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "new.db")
			args := []string{"migrate", "--from", "imap+plain://alice@" + ln.Addr().String(), "--to", "mbox:" + filepath.Join(dir, "out"),
				"--checkpoint", path, "--timeout", "3s", "--retries", "0"}
			env := []string{"MAILFERRY_FROM_PASSWORD=x"}
			type outcome struct {
				r   result
				pid int
			}
			var out [2]outcome
			var wg sync.WaitGroup
			for j := range out {
				wg.Go(func() { out[j].r, out[j].pid = runBinaryPid(t, env, args...) })
			}
			wg.Wait()
			refused := -1
			for j, o := range out {
				if o.r.code == exitUsage {
					refused = j
				}
			}
			if refused < 0 || out[1-refused].r.code == exitUsage {
				t.Fatalf("want one run refused: exits %d and %d\n%s\n%s", out[0].r.code, out[1].r.code, out[0].r.stderr, out[1].r.stderr)
			}
			want := fmt.Sprintf("in use by another mailferry process (pid %d ", out[1-refused].pid)
			if msg := out[refused].r.stderr; !strings.Contains(msg, want) {
				t.Errorf("the refused run said %q, want %q", msg, want)
			}
			if r := runBinary(t, nil, "checkpoint", "check", path); r.code != 0 {
				t.Errorf("check after the race: exit %d\n%s", r.code, r.stdout)
			}
		})
	}
}

// runBinaryPid is runBinary that also says which pid the run had.
func runBinaryPid(t *testing.T, env []string, args ...string) (result, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(childTimeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r, cmd.Process.Pid
}
