package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// leakScan collects everything mailferry wrote or showed, to search it
// for passwords at the end.
type leakScan struct {
	mu      sync.Mutex
	sources map[string][]byte // what -> content
}

func (l *leakScan) add(what string, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sources == nil {
		l.sources = map[string][]byte{}
	}
	l.sources[what] = append(l.sources[what], b...)
}

// addDir adds every file under dir.
func (l *leakScan) addDir(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		l.add(path, b)
		l.add(path+" (its name)", []byte(path))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// leaks returns, for every password, each place it shows up, in plain
// text or in the encodings a log, a JSON or a CSV file could give it.
func (l *leakScan) leaks(passwords []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, pw := range passwords {
		forms := []string{pw, strconv.Quote(pw), fmt.Sprintf("%x", pw)}
		for what, b := range l.sources {
			for _, form := range forms {
				if bytes.Contains(b, []byte(form)) {
					out = append(out, fmt.Sprintf("password %q (as %q) found in %s", pw, form, what))
				}
			}
		}
	}
	return out
}

// run runs the binary, and while it runs samples its command line from
// /proc and the live status file next to ckpt (if any) into scan.
func (l *leakScan) run(t *testing.T, name string, env []string, ckpt string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	samples := 0
	var err error
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(3 * time.Minute)
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("%s: still running after 3 minutes", name)
		case <-tick.C:
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); err == nil && len(b) > 0 {
				l.add(name+" command line", b)
				samples++
			}
			if ckpt != "" {
				if b, err := os.ReadFile(liveStatusPath(ckpt)); err == nil {
					l.add(name+" live status file", b)
				}
			}
		}
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	l.add(name+" stdout", stdout.Bytes())
	l.add(name+" stderr", stderr.Bytes())
	if samples == 0 && fileExists("/proc/self/cmdline") {
		t.Errorf("%s: never saw the process's command line; the run was too quick to sample", name)
	}
	return r
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestSecretsNeverLeak runs mailferry every way a password can reach it
// (environment, password file, batch cells: literal, env: and file:), with
// every output turned on (JSON lines, debug logs, JSON and CSV reports,
// the live status file, status --json), including failed logins, and
// searches everything it produced, the checkpoint's bytes and its command
// line while it ran for each password.
func TestSecretsNeverLeak(t *testing.T) {
	pw := map[string]string{
		"alice-src": "Src-Al1ce-secret", "alice-dst": "Dst-Al1ce-secret",
		"bob-src": "Lit-B0b-secret-src", "bob-dst": "Lit-B0b-secret-dst",
		"carol-src": "Env-Car0l-secret-src", "carol-dst": "Env-Car0l-secret-dst",
		"dave-src": "File-Dav3-secret-src", "dave-dst": "File-Dav3-secret-dst",
		"erin-src": "Real-Er1n-secret-src", "erin-dst": "Real-Er1n-secret-dst",
	}
	const wrong = "Wr0ng-guess-secret"
	users := func(side string) map[string]string {
		m := map[string]string{}
		for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
			m[u] = pw[u+"-"+side]
		}
		return m
	}
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users("src")})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users("dst")})
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		n := 3
		if u == "alice" {
			n = 40 // about 800 kB: several seconds through the slow link below
		}
		msgs := make([]imaptest.SeedMessage, 0, n)
		for j := range n {
			msgs = append(msgs, imaptest.SeedMessage{Raw: []byte(fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s.%d@x>\r\n\r\n%s\r\n", u, j, u, j,
				strings.Repeat("secret-free body line\r\n", 900))), Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 1, 1, 0, j, 0, 0, time.UTC)})
		}
		src.Seed(t, u, "INBOX", msgs)
	}
	// A slow link in front of the source, so the runs last long enough to
	// watch their command line and live status.
	slow := imaptest.StartFaultProxy(t, src.Addr())
	slow.SetBandwidth(300 << 10)

	in, out := t.TempDir(), t.TempDir() // inputs hold passwords by design; outputs must not
	var scan leakScan
	fromFile := filepath.Join(in, "alice-src.pw")
	os.WriteFile(fromFile, []byte(pw["alice-src"]+"\n"), 0o600)
	ckpt := filepath.Join(out, "alice.db")
	single := []string{"migrate", "--from", "imap+plain://alice@" + slow.Addr(), "--to", "imap+plain://alice@" + dst.Addr(),
		"--checkpoint", ckpt, "--output", "json", "--log-level", "debug", "--from-password-file", fromFile}
	env := []string{"MAILFERRY_TO_PASSWORD=" + pw["alice-dst"]}

	t.Run("single pair, JSON report, while running", func(t *testing.T) {
		var stw sync.WaitGroup
		stop := make(chan struct{})
		stw.Add(1)
		go func() { // status during the run shows the live view
			defer stw.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
				}
				st := runBinary(t, nil, "status", "--checkpoint", ckpt, "--json", "--log-level", "debug")
				scan.add("status --json during the run", []byte(st.stdout+st.stderr))
			}
		}()
		r := scan.run(t, "migrate alice", env, ckpt, append(single, "--report", filepath.Join(out, "alice.json"))...)
		close(stop)
		stw.Wait()
		if r.code != exitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		// --log-level debug shows whatever is logged at debug level; the
		// copier logs nothing there today, but whatever it will log is
		// scanned too.
		if !strings.Contains(r.stdout, `"event":"run_done"`) {
			t.Errorf("expected JSON lines on stdout:\n%.500s", r.stdout)
		}
	})
	t.Run("single pair again, CSV report", func(t *testing.T) {
		r := scan.run(t, "migrate alice, CSV", env, ckpt, append(single, "--report", filepath.Join(out, "alice.csv"))...)
		if r.code != exitOK {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		r := scan.run(t, "migrate alice, wrong password", []string{"MAILFERRY_FROM_PASSWORD=" + wrong, "MAILFERRY_TO_PASSWORD=" + pw["alice-dst"]}, "",
			"migrate", "--from", "imap+plain://alice@"+src.Addr(), "--to", "imap+plain://alice@"+dst.Addr(), "--checkpoint", filepath.Join(out, "wrong.db"),
			"--output", "json", "--log-level", "debug", "--report", filepath.Join(out, "wrong.json"))
		if r.code != exitPartial || !strings.Contains(r.stdout+r.stderr, "alice") {
			t.Errorf("exit %d, want %d naming the user\n%s%s", r.code, exitPartial, r.stdout, r.stderr)
		}
	})
	t.Run("batch: literal, env:, file: and a wrong password", func(t *testing.T) {
		daveSrc, daveDst := filepath.Join(in, "dave-src.pw"), filepath.Join(in, "dave-dst.pw")
		os.WriteFile(daveSrc, []byte(pw["dave-src"]+"\n"), 0o600)
		os.WriteFile(daveDst, []byte(pw["dave-dst"]), 0o600)
		csv := filepath.Join(in, "wave.csv")
		os.WriteFile(csv, []byte("source_user,source_password,dest_user,dest_password\n"+
			"bob,"+pw["bob-src"]+",bob,"+pw["bob-dst"]+"\n"+
			"carol,env:CAROL_SRC,carol,env:CAROL_DST\n"+
			"dave,file:"+daveSrc+",dave,file:"+daveDst+"\n"+
			"erin,"+wrong+",erin,"+pw["erin-dst"]+"\n"+
			"alice,,alice,\n"), 0o600) // no password and no admin: a bad row
		batchCkpt := filepath.Join(out, "wave.db")
		args := []string{"migrate", "--batch", csv, "--from", "imap+plain://" + slow.Addr(), "--to", "imap+plain://" + dst.Addr(),
			"--checkpoint", batchCkpt, "--output", "json", "--log-level", "debug"}
		benv := []string{"CAROL_SRC=" + pw["carol-src"], "CAROL_DST=" + pw["carol-dst"]}
		r := scan.run(t, "batch, JSON report", benv, batchCkpt, append(args, "--report", filepath.Join(out, "wave.json"))...)
		if r.code != exitPartial {
			t.Errorf("exit %d, want %d (erin's login and alice's row fail)\n%s", r.code, exitPartial, r.stderr)
		}
		if !strings.Contains(r.stdout+r.stderr, "erin") {
			t.Errorf("the failed account is not named:\n%s%s", r.stdout, r.stderr)
		}
		r = scan.run(t, "batch again, CSV report, --retry-failed", benv, batchCkpt, append(args, "--report", filepath.Join(out, "wave.csv"), "--retry-failed")...)
		if r.code != exitPartial {
			t.Errorf("exit %d, want %d\n%s", r.code, exitPartial, r.stderr)
		}
		for _, u := range []string{"bob", "carol", "dave"} {
			if got := len(dst.Messages(t, u, "INBOX")); got != 3 {
				t.Errorf("%s: %d messages on the destination, want 3: the password did not reach the server", u, got)
			}
		}
		st := runBinary(t, nil, "status", "--checkpoint", batchCkpt, "--json")
		scan.add("status --json batch", []byte(st.stdout+st.stderr))
		if st.code != 0 || !strings.Contains(st.stdout, "erin") {
			t.Errorf("status --json: exit %d\n%s%s", st.code, st.stdout, st.stderr)
		}
	})
	st := runBinary(t, nil, "status", "--checkpoint", ckpt, "--json")
	scan.add("status --json alice", []byte(st.stdout+st.stderr))
	st = runBinary(t, nil, "status", "--checkpoint", ckpt)
	scan.add("status alice", []byte(st.stdout+st.stderr))
	if st.code != 0 {
		t.Errorf("status: exit %d\n%s", st.code, st.stderr)
	}

	// Everything the runs left: reports, checkpoints, lock side files.
	scan.addDir(t, out)
	for _, f := range []string{"alice.json", "alice.csv", "wrong.json", "wave.json", "wave.csv", "alice.db", "wave.db"} {
		if !fileExists(filepath.Join(out, f)) {
			t.Errorf("%s was not written: the test would not see a leak in it", f)
		}
	}
	all := []string{wrong}
	for _, p := range pw {
		all = append(all, p)
	}
	for _, leak := range scan.leaks(all) {
		t.Error(leak)
	}

	// The scan must be able to see a password where there is one.
	var probe leakScan
	probe.add("probe", []byte(`{"x":`+strconv.Quote(pw["bob-src"])+`}`))
	if len(probe.leaks(all)) == 0 {
		t.Fatal("the leak scan cannot see a planted password")
	}
}
