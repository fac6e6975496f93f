package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// tmpfs mounts a file system of size bytes for the test: a disk that can
// be filled. It needs root; CI runs as root, so there it never skips.
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test mounts a tmpfs and CI runs as root: run it as root")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill takes all the space of dir's file system but free bytes, with a
// file that unfill removes.
func fill(t *testing.T, dir string, free int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(0, n-free)); err != nil {
		t.Fatal(err)
	}
}

func unfill(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
}

func others(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "filler" {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestFullDiskAtCreation creates a checkpoint on a disk with little room
// left, from none to enough: creation either makes a whole checkpoint or
// fails saying the disk is full and leaves nothing behind, and once there
// is room the same Open succeeds (no stub to delete by hand).
func TestFullDiskAtCreation(t *testing.T) {
	dir := tmpfs(t, 1<<20)
	path := filepath.Join(dir, "new.db")
	failed, made := 0, 0
	for _, free := range []int64{0, 4 << 10, 8 << 10, 12 << 10, 16 << 10, 24 << 10, 32 << 10, 40 << 10, 48 << 10, 64 << 10, 128 << 10, 256 << 10} {
		fill(t, dir, free)
		s, err := Open(path, Options{})
		if err == nil {
			made++
			s.Close()
			if rep, err := Check(path, Options{}); err != nil || len(rep.Problems) > 0 {
				t.Errorf("%d bytes free: created, then Check = %+v, %v", free, rep, err)
			}
		} else {
			failed++
			if !strings.Contains(err.Error(), "no space left on device") {
				t.Errorf("%d bytes free: Open = %v, want it to say the disk is full", free, err)
			}
			if left := others(t, dir); len(left) > 0 {
				t.Errorf("%d bytes free: a failed creation left %v", free, left)
			}
		}
		unfill(t, dir)
		s, err = Open(path, Options{})
		if err != nil {
			t.Fatalf("%d bytes free, then room again: Open = %v", free, err)
		}
		s.Close()
		for _, n := range others(t, dir) {
			os.Remove(filepath.Join(dir, n))
		}
	}
	t.Logf("%d creations failed for lack of room, %d succeeded", failed, made)
	if failed == 0 || made == 0 {
		t.Errorf("%d creations failed and %d succeeded: the sizes tried do not cover the edge", failed, made)
	}
}

// TestFullDiskMidRun fills the disk while a run commits records: the
// commit that does not fit fails, saying so; the file still verifies and
// holds exactly the commits that succeeded; once there is room the next
// run goes on from there.
func TestFullDiskMidRun(t *testing.T) {
	dir := tmpfs(t, 8<<20)
	path := filepath.Join(dir, "run.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, dir, 512<<10)
	var committed []ledger.Record
	var werr error
	for i := uint32(0); i < 100_000 && werr == nil; i += 256 {
		batch := make([]ledger.Record, 256)
		for j := range batch {
			batch[j] = benchRecord(i + uint32(j))
		}
		if werr = s.PutRecords("acct", "INBOX", batch); werr == nil {
			committed = append(committed, batch...)
		}
	}
	if werr == nil || !strings.Contains(werr.Error(), "no space left on device") {
		t.Fatalf("writing onto a full disk: %v, want it to say the disk is full", werr)
	}
	if len(committed) == 0 {
		t.Fatal("nothing fitted: the test shows nothing")
	}
	t.Logf("%d records committed before: %v", len(committed), werr)
	s.Close()
	rep, err := Check(path, Options{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("after the failed commit, Check = %+v, %v", rep, err)
	}
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []ledger.Record
	r.Records("acct", "INBOX", func(rec ledger.Record) error { got = append(got, rec); return nil })
	r.Close()
	if !slices.Equal(got, committed) {
		t.Errorf("the file holds %d records, the commits that succeeded %d", len(got), len(committed))
	}

	// A run on the still-full disk cannot back the file up: it stops
	// before changing anything.
	sum := sha256.Sum256(mustRead(t, path))
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("Open on a full disk = %v, want the backup to fail for lack of space", err)
	}
	if sha256.Sum256(mustRead(t, path)) != sum {
		t.Errorf("the refused Open changed the file")
	}
	if left := others(t, dir); !slices.Equal(left, []string{"run.db"}) {
		t.Errorf("the refused Open left %v", left)
	}

	unfill(t, dir)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := []ledger.Record{benchRecord(200_000)}
	if err := s.PutRecords("acct", "INBOX", next); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if rep, err := Check(path, Options{}); err != nil || len(rep.Problems) > 0 || rep.Records["copied"] != len(committed)+1 {
		t.Errorf("after the next run, Check = %+v, %v", rep, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(b)
}
