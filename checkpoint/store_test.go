package checkpoint

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/migrate/ledger/ledgertest"
	bolt "go.etcd.io/bbolt"
)

// mustOpen opens a fresh checkpoint and checks bbolt's consistency when the
// test ends, as bbolt's own tests do.
func mustOpen(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "run.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Errorf("bbolt consistency: %v", err)
		}
		s.Close()
	})
	return s
}

func TestRecordRoundTrip(t *testing.T) {
	s := mustOpen(t)
	in := []ledger.Record{
		{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: 1}, Status: ledger.StatusCopied, DstValidity: 9, DstUID: 100, Size: 1234, MessageID: "<a@b>", Run: 3, Fingerprint: [16]byte{1, 2, 3}},
		{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: 2}, Status: ledger.StatusFailed, Reason: strings.Repeat("x", 5000), MessageID: "\xff\xfe 8-bit"},
		{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: 4000000000}, Status: ledger.StatusPending, DstUIDNext: 77, Size: 1 << 40},
	}
	if err := s.PutRecords("acct", "INBOX", in); err != nil {
		t.Fatal(err)
	}
	var out []ledger.Record
	if err := s.Records("acct", "INBOX", func(r ledger.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d records, want %d", len(out), len(in))
	}
	in[1].Reason = in[1].Reason[:maxReason]
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, out[i], in[i])
		}
	}
	if err := s.DeleteRecords("acct", "INBOX", []ledger.RecordKey{{SrcValidity: 7, SrcUID: 2}}); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.Records("acct", "INBOX", func(ledger.Record) error { n++; return nil })
	if n != 2 {
		t.Errorf("%d records after delete, want 2", n)
	}
}

func TestFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Chmod(path, 0o644)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestForeignFilesAreRefusedAndUntouched(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
	db.Close()
	valid := filepath.Join(dir, "valid.db")
	s, err := Open(valid, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	whole, _ := os.ReadFile(valid)

	cases := map[string]struct {
		content []byte
		want    error
	}{
		"text":      {[]byte("hello, this is a text file\n"), ErrNotCheckpoint},
		"truncated": {whole[:len(whole)/3], ErrDamaged},
		"garbage":   {bytes.Repeat([]byte{0xde, 0xad}, 8192), ErrNotCheckpoint},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			content := tc.content
			path := filepath.Join(dir, name)
			os.WriteFile(path, content, 0o600)
			_, err := Open(path, Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
				t.Errorf("file was modified")
			}
		})
	}
	t.Run("other bbolt file", func(t *testing.T) {
		before, _ := os.ReadFile(other)
		_, err := Open(other, Options{})
		if !errors.Is(err, ErrNotCheckpoint) {
			t.Errorf("Open = %v, want ErrNotCheckpoint", err)
		}
		if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
			t.Errorf("file was modified")
		}
	})
}

func TestSchemaVersionIsChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("99")) })
	s.Close()
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "99") {
		t.Errorf("Open = %v, want ErrSchema naming version 99", err)
	}
}

func TestSecondWriterIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path, Options{LockTimeout: 50_000_000})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Errorf("second Open = %v, want ErrLocked naming the holder's pid", err)
	}
}

func TestEndpointsBind(t *testing.T) {
	s := mustOpen(t)
	if err := s.BindEndpoints("imaps://a:993", "imaps://b:993"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindEndpoints("imaps://a:993", "imaps://b:993"); err != nil {
		t.Errorf("same endpoints refused: %v", err)
	}
	if err := s.BindEndpoints("imaps://a:993", "imaps://c:993"); !errors.Is(err, ErrEndpointsDiffer) {
		t.Errorf("other endpoints: %v, want ErrEndpointsDiffer", err)
	}
}

func TestAccountsAndMailboxes(t *testing.T) {
	s := mustOpen(t)
	id := ledger.AccountID("Alice@Example.com", "alice")
	if err := s.PutAccount(id, ledger.Account{Source: "Alice@Example.com", Dest: "alice", State: ledger.AccountCopied}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMailbox(id, "Sent", ledger.MailboxRecord{Source: "Sent", Dest: "Sent Items", Role: `\Sent`, Created: true, SrcValidity: 1, DstValidity: 2}); err != nil {
		t.Fatal(err)
	}
	a, ok, err := s.Account(ledger.AccountID("alice@example.com", "ALICE"))
	if err != nil || !ok || a.State != ledger.AccountCopied || a.Updated.IsZero() {
		t.Errorf("Account = %+v, %v, %v", a, ok, err)
	}
	rec, ok, _ := s.Mailbox(id, "Sent")
	if !ok || rec.Dest != "Sent Items" || !rec.Created {
		t.Errorf("Mailbox = %+v, %v", rec, ok)
	}
	if _, ok, _ := s.Mailbox(id, "nope"); ok {
		t.Errorf("unknown mailbox found")
	}
	run, err := s.StartRun("migrate", "test")
	if err != nil || run != 1 {
		t.Fatalf("StartRun = %d, %v", run, err)
	}
	if err := s.FinishRun(run, "ok"); err != nil {
		t.Fatal(err)
	}
	runs, _ := s.Runs()
	if len(runs) != 1 || runs[0].Outcome != "ok" || runs[0].Finished.IsZero() {
		t.Errorf("Runs = %+v", runs)
	}
}

// TestStoreIsALedger: the bbolt checkpoint passes the ledger conformance
// suite the engine's in-memory ledger passes.
func TestStoreIsALedger(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		s, err := Open(filepath.Join(t.TempDir(), "l.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
