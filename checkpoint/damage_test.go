package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/ledger"
	bolt "go.etcd.io/bbolt"
)

// midRun writes a checkpoint as a run leaves it part way: endpoints, runs,
// three accounts (one a way back), mailboxes, destinations, and records
// written, rewritten and deleted over several transactions, so that it
// has branch pages, overflow-free leaves, inline buckets and free pages.
func midRun(t testing.TB, path string) {
	t.Helper()
	s, err := Open(path, Options{Backups: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.BindEndpoints("imaps://src.example.org:993", "imaps://dst.example.org:993"))
	run, err := s.StartRun("migrate", "test")
	must(err)
	must(s.FinishRun(run, "interrupted"))
	run, err = s.StartRun("migrate", "test")
	must(err)
	for _, acct := range []string{"alice\x00alice", "bob\x00bob", ledger.ReverseAccountID("alice\x00alice")} {
		must(s.PutAccount(acct, ledger.Account{Source: acct[:3], Dest: acct[:3], State: ledger.AccountCopying, Run: run}))
		must(s.PutDestMailboxes(acct, map[string]ledger.DestMailbox{"INBOX": {UIDValidity: 9, UIDNext: 1}, "Archive": {UIDValidity: 11, UIDNext: 40}}))
		for bi, box := range []string{"INBOX", "Sent", "Archive/2024"} {
			must(s.PutMailbox(acct, box, ledger.MailboxRecord{Source: box, Dest: box, SrcValidity: 7, DstValidity: 9, DstBaseline: 1}))
			n := 600 / (bi + 1)
			recs := make([]ledger.Record, 0, 256)
			for i := range n {
				recs = append(recs, ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: uint32(i + 1)}, Status: ledger.StatusPending, DstValidity: 9,
					DstUIDNext: uint32(i + 1), Size: int64(2000 + i), MessageID: fmt.Sprintf("<%d.%s.%s@example.org>", i, box, acct[:3]), Run: run})
				if len(recs) == cap(recs) || i == n-1 {
					must(s.PutRecords(acct, box, recs))
					for j := range recs { // confirmed: the same keys again
						recs[j].Status, recs[j].DstUID = ledger.StatusCopied, recs[j].SrcUID
					}
					must(s.PutRecords(acct, box, recs))
					recs = recs[:0]
				}
			}
			must(s.DeleteRecords(acct, box, []ledger.RecordKey{{SrcValidity: 7, SrcUID: 3}, {SrcValidity: 7, SrcUID: 5}}))
		}
	}
}

// fixture returns the bytes of a mid-run checkpoint, made once per test.
func fixture(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fixture.db")
	midRun(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dump is every bucket, sequence, key and value of a bbolt file, read with
// bbolt itself, by iteration and by lookup: what a run would see.
func dump(t testing.TB, path string) (out map[string]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("bbolt cannot open a file Open accepted: %v", err)
	}
	defer db.Close()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("bbolt panics reading a file Open accepted: %v", r)
		}
	}()
	out = map[string]string{}
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		out[prefix+"\x00seq"] = fmt.Sprint(b.Sequence())
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+"/"+string(k), b.Bucket(k))
			}
			out[prefix+"/"+string(k)] = string(v)
			if got := b.Get(k); !bytes.Equal(got, v) { // a lookup finds it, too
				out[prefix+"/"+string(k)+"\x00get"] = string(got)
			}
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name), b) })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameDump(a, b map[string]string) (string, bool) {
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return k, false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return k, false
		}
	}
	return "", true
}

// checkRefusedOrUnharmed opens content (written to a new file) as a run
// and as a reader would. Either Open refuses it as damaged, saying where
// and what to do, with the file byte for byte as it was and nothing beside
// it; or everything bbolt reads in it is what the intact file held.
func checkRefusedOrUnharmed(t *testing.T, content []byte, want map[string]string, readOnly bool) (refused bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.db")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	s, err := Open(path, Options{ReadOnly: readOnly})
	if err == nil {
		s.Close()
		if k, ok := sameDump(want, dump(t, path)); !ok {
			t.Errorf("Open accepted a file whose content changed (at %q)", k)
		}
		return false
	}
	if !errors.Is(err, ErrDamaged) {
		t.Errorf("Open = %v, want ErrDamaged", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "damaged") || !strings.Contains(msg, "checkpoint recover") || !strings.Contains(msg, "Nothing was written") {
		t.Errorf("message does not say it is damaged and what to do: %s", msg)
	}
	var d *DamageError
	if !errors.As(err, &d) || d.Where == "" || d.What == "" {
		t.Errorf("message does not say where: %v", err)
	}
	after, rerr := os.ReadFile(path)
	if rerr != nil || sha256.Sum256(after) != sum {
		t.Errorf("the damaged file was changed by Open (sha256 differs, %v)", rerr)
	}
	if left := besides(t, path); len(left) > 0 {
		t.Errorf("refusing left %v beside the file", left)
	}
	return true
}

// pageKinds sorts the fixture's pages: meta, in use (the freelist too)
// and free.
func pageKinds(t testing.TB, content []byte) (ps int, used, free []int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kinds.db")
	os.WriteFile(path, content, 0o600)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := openPages(f)
	if err != nil {
		t.Fatal(err)
	}
	in := &inspector{w: &walker{pf: pf, strict: true, problem: func(p Problem) error { return fmt.Errorf("%v", p) }},
		rep: &Report{Accounts: map[string]int{}, Records: map[string]int{}}}
	if err := in.run(); err != nil {
		t.Fatal(err)
	}
	if err := in.w.freelist(); err != nil {
		t.Fatal(err)
	}
	for i := uint64(2); i < pf.meta.pgid; i++ {
		if bitSet(pf.used, i) {
			used = append(used, int(i))
		} else {
			free = append(free, int(i))
		}
	}
	if len(free) == 0 {
		t.Fatal("the fixture has no free page")
	}
	return pf.pageSize, used, free
}

// TestBitFlips flips bits of a real mid-run checkpoint at random pages
// and offsets, seeded, in every kind of page: each flip is refused as
// damage, unchanged, or is one that changes nothing bbolt reads.
func TestBitFlips(t *testing.T) {
	orig := fixture(t)
	origPath := filepath.Join(t.TempDir(), "orig.db")
	os.WriteFile(origPath, orig, 0o600)
	want := dump(t, origPath)
	ps, used, free := pageKinds(t, orig)
	pick := func(r *rand.Rand, pages []int) int { return pages[r.IntN(len(pages))]*ps + r.IntN(ps) }
	cases := []struct {
		name  string
		flips int
		where func(r *rand.Rand) int
		// refusedAtLeast is how many of the seeds must be refused: a flip
		// in the unused end of a page changes nothing, one in a free page
		// nothing either.
		refusedAtLeast, refusedAtMost int
	}{
		{"meta pages, their fields", 1, func(r *rand.Rand) int { return r.IntN(2)*ps + pageHeaderSize + r.IntN(metaSize) }, 40, 40},
		{"pages in use, page header", 1, func(r *rand.Rand) int { return used[r.IntN(len(used))]*ps + r.IntN(pageHeaderSize) }, 40, 40},
		{"pages in use, anywhere", 1, func(r *rand.Rand) int { return pick(r, used) }, 5, 40},
		{"free pages", 1, func(r *rand.Rand) int { return pick(r, free) }, 0, 0},
		{"16 bits past the meta pages", 16, func(r *rand.Rand) int { return 2*ps + r.IntN(len(orig)-2*ps) }, 30, 40},
		{"anywhere", 1, func(r *rand.Rand) int { return r.IntN(len(orig)) }, 1, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refused := 0
			for seed := range uint64(40) {
				r := rand.New(rand.NewPCG(seed, 20))
				b := bytes.Clone(orig)
				for range tc.flips {
					b[tc.where(r)] ^= 1 << r.IntN(8)
				}
				if checkRefusedOrUnharmed(t, b, want, seed%2 == 0) {
					refused++
				}
			}
			t.Logf("%d of 40 refused", refused)
			if refused < tc.refusedAtLeast || refused > tc.refusedAtMost {
				t.Errorf("%d of 40 refused, want %d to %d", refused, tc.refusedAtLeast, tc.refusedAtMost)
			}
		})
	}
}

// TestTruncation: a checkpoint cut short anywhere is refused as damaged,
// by a run and by a reader, and left as it was.
func TestTruncation(t *testing.T) {
	orig := fixture(t)
	origPath := filepath.Join(t.TempDir(), "orig.db")
	os.WriteFile(origPath, orig, 0o600)
	want := dump(t, origPath)
	ps, used, _ := pageKinds(t, orig)
	last := used[len(used)-1]
	for _, n := range []int{100, ps, ps + 100, 2 * ps, 4 * ps, len(orig) / 3, len(orig) / 2, last * ps, (last+1)*ps - 1} {
		for _, ro := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d bytes, read-only %v", n, ro), func(t *testing.T) {
				if !checkRefusedOrUnharmed(t, orig[:n], want, ro) {
					t.Errorf("a file cut to %d of %d bytes was opened", n, len(orig))
				}
			})
		}
	}
}

// FuzzBitFlip flips n bits chosen by seed in a real mid-run checkpoint:
// the same property as TestBitFlips, for any seed.
func FuzzBitFlip(f *testing.F) {
	orig := fixture(f)
	origPath := filepath.Join(f.TempDir(), "orig.db")
	os.WriteFile(origPath, orig, 0o600)
	want := dump(f, origPath)
	for seed := range uint64(64) {
		f.Add(seed, uint8(1+seed%16))
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		r := rand.New(rand.NewPCG(seed, 21))
		b := bytes.Clone(orig)
		for range int(n%32) + 1 {
			b[r.IntN(len(b))] ^= 1 << r.IntN(8)
		}
		checkRefusedOrUnharmed(t, b, want, seed%2 == 1)
	})
}

// TestEmptyAndStubFilesAreReplaced: a file with nothing in it, empty or
// bbolt's first pages without a commit (what a creation cut short by an
// older mailferry left), is replaced by a run and refused by a reader.
func TestEmptyAndStubFilesAreReplaced(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "init.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	initPages, _ := os.ReadFile(filepath.Join(dir, "init.db"))
	for name, content := range map[string][]byte{"empty": nil, "first 8 KiB": initPages[:8192], "first pages": initPages} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.db")
			os.WriteFile(path, content, 0o644)
			if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrNotCheckpoint) {
				t.Errorf("read-only Open = %v, want ErrNotCheckpoint", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, content) {
				t.Errorf("a reader changed the file")
			}
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open = %v, want a new checkpoint in its place", err)
			}
			if err := s.PutAccount("a", ledger.Account{State: ledger.AccountPending}); err != nil {
				t.Error(err)
			}
			s.Close()
			if rep, err := Check(path, Options{}); err != nil || len(rep.Problems) > 0 || rep.Schema != SchemaVersion {
				t.Errorf("Check = %+v, %v", rep, err)
			}
		})
	}
}

// TestDamagedIsNoStub: a checkpoint whose one commit is on a damaged meta
// page looks, through the other meta page, like bbolt's first pages; it
// must be refused as damaged, not replaced as holding nothing.
func TestDamagedIsNoStub(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	le := binary.LittleEndian
	page := 0
	if le.Uint64(b[4096+pageHeaderSize+48:]) > le.Uint64(b[pageHeaderSize+48:]) {
		page = 1
	}
	b[page*4096+pageHeaderSize+56] ^= 0x01 // its checksum
	os.WriteFile(path, b, 0o600)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrDamaged) {
		t.Errorf("Open = %v, want ErrDamaged", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Errorf("the file was changed")
	}
}

// TestMetaPageDamage: a meta page that fails its checksum is refused
// (bbolt would quietly use the other one, a commit older), and recover
// copies the state the valid one describes.
func TestMetaPageDamage(t *testing.T) {
	orig := fixture(t)
	le := binary.LittleEndian
	newest := 0
	if le.Uint64(orig[4096+pageHeaderSize+48:]) > le.Uint64(orig[pageHeaderSize+48:]) {
		newest = 1
	}
	for _, page := range []int{newest, 1 - newest} {
		t.Run(fmt.Sprintf("page %d", page), func(t *testing.T) {
			b := bytes.Clone(orig)
			b[page*4096+pageHeaderSize+48] ^= 0x04 // its txid
			path := filepath.Join(t.TempDir(), "run.db")
			os.WriteFile(path, b, 0o600)
			_, err := Open(path, Options{})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), fmt.Sprintf("page %d (meta)", page)) {
				t.Fatalf("Open = %v, want ErrDamaged naming meta page %d", err, page)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
				t.Errorf("the file was changed")
			}
			rr, err := Recover(path, path+".new", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rr.Lost) != 1 || !strings.Contains(rr.Lost[0].Where, "meta") {
				t.Errorf("recover lost %v, want only the meta page noted", rr.Lost)
			}
		})
	}
}

// TestBothMetaPagesDamaged: with both meta pages failing their checksum
// nothing can be read; Open refuses the file, check reports it (a
// problem, not a failure to check) and recover makes an empty checkpoint
// and says everything was lost.
func TestBothMetaPagesDamaged(t *testing.T) {
	b := fixture(t)
	b[pageHeaderSize+48] ^= 0x01
	b[4096+pageHeaderSize+48] ^= 0x01
	path := filepath.Join(t.TempDir(), "run.db")
	os.WriteFile(path, b, 0o600)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "pages 0 and 1 (meta)") {
		t.Errorf("Open = %v, want ErrDamaged naming both meta pages", err)
	}
	rep, err := Check(path, Options{})
	if err != nil || len(rep.Problems) != 1 {
		t.Errorf("Check = %+v, %v; want the one problem", rep, err)
	}
	rr, err := Recover(path, path+".new", Options{})
	if err != nil || len(rr.Lost) != 1 || rr.Copied.Records["copied"] != 0 {
		t.Errorf("Recover = %+v, %v", rr, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Errorf("the file was changed")
	}
}
