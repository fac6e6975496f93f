package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	bolt "go.etcd.io/bbolt"
)

// FuzzRecord: any record of a known status survives marshal and unmarshal (the reason cut
// to maxReason bytes), and unmarshal never panics on junk; whatever it
// accepts encodes again to a record that decodes the same.
func FuzzRecord(f *testing.F) {
	f.Add(uint8(2), uint32(9), uint32(100), uint32(77), uint32(3), int64(1234), []byte{1, 2, 3}, "<a@b>", "")
	f.Add(uint8(4), uint32(0), uint32(0), uint32(0), uint32(0), int64(-1), []byte{}, "\xff\xfe 8-bit", strings.Repeat("x", 1030))
	f.Add(uint8(0), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), int64(1<<62), bytes.Repeat([]byte{0xff}, 16), "", "NO [TOOBIG] too big")
	f.Fuzz(func(t *testing.T, status uint8, dstValidity, dstUID, dstUIDNext, run uint32, size int64, fp []byte, msgID, reason string) {
		in := ledger.Record{Status: ledger.Status(status), DstValidity: dstValidity, DstUID: dstUID, DstUIDNext: dstUIDNext,
			Run: run, Size: size, MessageID: msgID, Reason: reason}
		copy(in.Fingerprint[:], fp)
		b, err := marshalRecord(&in)
		if _, known := statusToDisk[in.Status]; !known {
			if err == nil {
				t.Fatalf("status %v has no stored form, yet it encoded", in.Status)
			}
			return
		}
		if err != nil {
			t.Fatalf("marshal(%+v): %v", in, err)
		}
		var out ledger.Record
		if err := unmarshalRecord(b, &out); err != nil {
			t.Fatalf("unmarshal(marshal(%+v)): %v", in, err)
		}
		if len(in.Reason) > maxReason {
			in.Reason = in.Reason[:maxReason]
		}
		if out != in {
			t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
		}
		// The same bytes as junk: decoding any prefix or any changed byte
		// must not panic, and what decodes must be stable.
		for _, junk := range [][]byte{b[:len(b)/2], append(bytes.Clone(b), 0xff), flip(b, int(size)), []byte(reason)} {
			var r ledger.Record
			if unmarshalRecord(junk, &r) != nil {
				continue
			}
			var again ledger.Record
			rb, err := marshalRecord(&r)
			if err == nil {
				err = unmarshalRecord(rb, &again)
			}
			if err != nil || again != r {
				t.Errorf("junk %x decoded to %+v, which does not survive a round trip (%+v, %v)", junk, r, again, err)
			}
		}
	})
}

// flip returns b with the byte at i (mod len) changed.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	if len(c) > 0 {
		i = ((i % len(c)) + len(c)) % len(c)
		c[i] ^= 0x5a
	}
	return c
}

// fuzzSeeds returns file contents worth starting from: real checkpoints
// (fresh, and with data), another program's bbolt file, one whose
// freelist was never written (bbolt would write it on open), and damaged
// copies.
func fuzzSeeds(f *testing.F) [][]byte {
	dir := f.TempDir()
	var out [][]byte
	fresh := filepath.Join(dir, "fresh.db")
	s, err := Open(fresh, Options{})
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(fresh)
	out = append(out, b)

	full := filepath.Join(dir, "full.db")
	if s, err = Open(full, Options{}); err != nil {
		f.Fatal(err)
	}
	s.BindEndpoints("imaps://a:993", "imaps://b:993")
	s.PutAccount("a\x00b", ledger.Account{Source: "a", Dest: "b", State: ledger.AccountCopied})
	s.PutMailbox("a\x00b", "INBOX", ledger.MailboxRecord{Source: "INBOX", Dest: "INBOX"})
	var recs []ledger.Record
	for i := range 300 {
		recs = append(recs, ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: uint32(i)}, Status: ledger.StatusCopied, DstUID: uint32(i), MessageID: "<m@x>"})
	}
	s.PutRecords("a\x00b", "INBOX", recs)
	s.Close()
	b, _ = os.ReadFile(full)
	out = append(out, b, b[:len(b)/2], b[:4096], b[:8192], flip(b, 20), flip(b, 4096+20), flip(b, 3*4096+100))

	for _, opts := range []*bolt.Options{nil, {NoFreelistSync: true}} {
		other := filepath.Join(dir, "other.db")
		os.Remove(other)
		db, err := bolt.Open(other, 0o600, opts)
		if err != nil {
			f.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error {
			m, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			return m.Put([]byte("app"), []byte("something else"))
		})
		db.Close()
		b, _ = os.ReadFile(other)
		out = append(out, b)
	}
	return append(out, nil, []byte("this is not a checkpoint\n"), bytes.Repeat([]byte{0xde, 0xad}, 8192))
}

// FuzzOpen: Open on any file content never panics or crashes the process,
// and either opens a checkpoint or refuses the file as not a checkpoint,
// of another schema version, or damaged, leaving its bytes and mode as
// they were and nothing beside it.
func FuzzOpen(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, content []byte, readOnly bool) {
		path := filepath.Join(t.TempDir(), "run.db")
		if err := os.WriteFile(path, content, 0o640); err != nil {
			t.Fatal(err)
		}
		var s *Store
		var err error
		opened := make(chan struct{})
		go func() {
			defer close(opened)
			s, err = Open(path, Options{ReadOnly: readOnly})
		}()
		select {
		case <-opened:
		case <-time.After(20 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("Open hung:\n%s", buf[:runtime.Stack(buf, true)])
		}
		if err == nil {
			// Ours: it must work, and open again.
			if _, _, err := s.Endpoints(); err != nil {
				t.Errorf("opened, then Endpoints: %v", err)
			}
			s.Close()
			s, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("opened once, not twice: %v", err)
			}
			s.Close()
			return
		}
		if !errors.Is(err, ErrNotCheckpoint) && !errors.Is(err, ErrSchema) && !errors.Is(err, ErrDamaged) {
			t.Errorf("Open = %v, want ErrNotCheckpoint, ErrSchema, ErrDamaged or success", err)
		}
		after, rerr := os.ReadFile(path)
		if rerr != nil || !bytes.Equal(after, content) {
			t.Errorf("refused file was modified (%d bytes before, %d after, %v)", len(content), len(after), rerr)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("refused file's mode changed: %v %v", fi.Mode(), err)
		}
		if left := besides(t, path); len(left) > 0 {
			t.Errorf("refused file left %v beside it", left)
		}
	})
}

// TestCorruptPageIsRefused points a key of the root page far outside the
// file: bbolt then reads unmapped memory, a fault that used to kill the
// process; it must be refused as damaged instead.
func TestCorruptPageIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The newer of the two meta pages names the root page.
	le := binary.LittleEndian
	meta := func(page int) (txid, root uint64, pageSize int) {
		off := page*4096 + pageHeaderSize
		return le.Uint64(b[off+48:]), le.Uint64(b[off+16:]), int(le.Uint32(b[off+8:]))
	}
	tx0, root, pageSize := meta(0)
	if tx1, root1, _ := meta(1); tx1 > tx0 {
		root = root1
	}
	page := b[int(root)*pageSize:]
	count := int(le.Uint16(page[10:]))
	if count == 0 {
		t.Fatalf("root page %d has no elements", root)
	}
	for i := range count { // each element's key offset
		le.PutUint32(page[pageHeaderSize+16*i+4:], 0x7fff0000)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		s, err := Open(path, Options{ReadOnly: ro})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), fmt.Sprintf("page %d", root)) {
			t.Errorf("Open(ReadOnly: %v) = %v, want ErrDamaged naming page %d", ro, err, root)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Errorf("the corrupt file was modified")
	}
}

// besides lists the files in path's directory other than path.
func besides(t testing.TB, path string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestDamageAfterOpenIsAnError: damage that appears while a checkpoint is
// open, past the check Open made, is found by the read that meets it (a
// value's seal, or bbolt's panic on a corrupt page, caught at every
// transaction): an error, not a crash, and no write goes into it.
func TestDamageAfterOpenIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte, off int)
	}{
		{"value byte", func(b []byte, off int) { b[off] ^= 0x10 }},
		{"page type", func(b []byte, off int) { binary.LittleEndian.PutUint16(b[off/4096*4096+8:], 0x40) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.db")
			s, err := Open(path, Options{Backups: -1})
			if err != nil {
				t.Fatal(err)
			}
			recs := make([]ledger.Record, 3000)
			for i := range recs {
				recs[i] = ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: uint32(i + 1)}, Status: ledger.StatusCopied, DstValidity: 9, DstUID: uint32(i + 1), MessageID: fmt.Sprintf("<%d@example.org>", i)}
			}
			if err := s.PutRecords("alice\x00alice", "INBOX", recs); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			off := bytes.Index(b, []byte("<2500@example.org>"))
			if off < 0 {
				t.Fatal("record not found in the file")
			}
			tc.damage(b, off)
			// Behind the open store's back, as a failing disk would.
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			err = s.Records("alice\x00alice", "INBOX", func(ledger.Record) error { return nil })
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "rolled back") {
				t.Errorf("reading damaged records: %v, want ErrDamaged naming the file and saying nothing more is written", err)
			}
			// Overwriting the damaged record is refused too.
			err = s.PutRecords("alice\x00alice", "INBOX", []ledger.Record{{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: 2501}, Status: ledger.StatusRemoved}})
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("overwriting a damaged record: %v, want ErrDamaged", err)
			}
			s.Close()
			if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
				t.Errorf("the damaged file was modified")
			}
			if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrDamaged) {
				t.Errorf("reopening: %v, want ErrDamaged", err)
			}
		})
	}
}
