package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/providers/imap/memserver"
)

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		concurrency int
		want        int64
	}{
		{0, 32<<20 + 256<<10}, // no concurrency given still runs one account
		{1, 32<<20 + 256<<10},
		{16, 36 << 20},
		{32, 40 << 20},
	} {
		if got := memoryLimit(c.concurrency); got != c.want {
			t.Errorf("memoryLimit(%d) = %d, want %d", c.concurrency, got, c.want)
		}
	}
}

// TestMigrateSetsMemoryLimit: a migrate run sets the soft limit for its
// concurrency, and an admin's GOMEMLIMIT is left to the runtime.
func TestMigrateSetsMemoryLimit(t *testing.T) {
	srv, err := memserver.Start(map[string]string{"alice": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, env := range []string{"", "200MiB"} {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		if err := os.MkdirAll(src, 0o700); err != nil {
			t.Fatal(err)
		}
		msg := "From a@example.org Thu Dec  3 10:00:00 2026\nMessage-ID: <1@example.org>\nSubject: hi\n\nbody\n"
		if err := os.WriteFile(filepath.Join(src, "INBOX"), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		var set []int64
		var stdout, stderr bytes.Buffer
		a := &app{stdout: &stdout, stderr: &stderr,
			getenv: func(k string) string {
				return map[string]string{"GOMEMLIMIT": env, "MAILFERRY_TO_PASSWORD": "pw"}[k]
			},
			setMemoryLimit: func(n int64) int64 { set = append(set, n); return 0 }}
		args := []string{"migrate", "--from", "mbox:" + src, "--to", "imap+plain://alice@" + srv.Addr(),
			"--checkpoint", filepath.Join(dir, "ck.db"), "--concurrency", "8"}
		if code := a.run(context.Background(), args); code != 0 {
			t.Fatalf("GOMEMLIMIT=%q: exit %d: %s%s", env, code, stdout.String(), stderr.String())
		}
		switch {
		case env == "" && (len(set) != 1 || set[0] != memoryLimit(8)):
			t.Errorf("without GOMEMLIMIT the run set %v, want [%d]", set, memoryLimit(8))
		case env != "" && len(set) != 0:
			t.Errorf("GOMEMLIMIT=%s: the run set %v, want it left alone", env, set)
		}
	}
}
