package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkPutRecords writes records in transactions of 256, as the copier
// does; b.N is the number of records.
func BenchmarkPutRecords(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := make([]ledger.Record, 0, 256)
	b.ResetTimer()
	for i := range b.N {
		batch = append(batch, benchRecord(uint32(i)))
		if len(batch) == cap(batch) {
			if err := s.PutRecords("acct", "INBOX", batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.PutRecords("acct", "INBOX", batch); err != nil {
		b.Fatal(err)
	}
}

func benchRecord(i uint32) ledger.Record {
	return ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: i + 1}, Status: ledger.StatusCopied, DstValidity: 9,
		DstUID: i + 1, DstUIDNext: 1, Size: 12345, Fingerprint: [16]byte{byte(i), byte(i >> 8), byte(i >> 16)},
		MessageID: "<message-id-of-a-typical-length.1234@example.org>", Run: 1}
}

// BenchmarkRecords1M reads back a mailbox of 1,000,000 records, as a re-run
// does; one op is the whole read.
func BenchmarkRecords1M(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 1_000_000
	batch := make([]ledger.Record, 0, 10_000)
	for i := range uint32(n) {
		batch = append(batch, benchRecord(i))
		if len(batch) == cap(batch) {
			if err := s.PutRecords("acct", "INBOX", batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for b.Loop() {
		count := 0
		if err := s.Records("acct", "INBOX", func(ledger.Record) error { count++; return nil }); err != nil || count != n {
			b.Fatalf("read %d records: %v", count, err)
		}
	}
	b.ReportMetric(float64(n), "records/op")
}

// BenchmarkLookup1M reads the records of one 5,000-message mailbox out of
// a checkpoint of 1,000,000 (200 mailboxes of 5,000), as each mailbox of a
// re-run does; one op is that read.
func BenchmarkLookup1M(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const boxes, per = 200, 5000
	batch := make([]ledger.Record, 0, per)
	for m := range boxes {
		batch = batch[:0]
		for i := range uint32(per) {
			batch = append(batch, benchRecord(i))
		}
		if err := s.PutRecords(fmt.Sprintf("acct%03d", m%20), fmt.Sprintf("box%03d", m), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		m := i % boxes
		i++
		count := 0
		if err := s.Records(fmt.Sprintf("acct%03d", m%20), fmt.Sprintf("box%03d", m), func(ledger.Record) error { count++; return nil }); err != nil || count != per {
			b.Fatalf("read %d records: %v", count, err)
		}
	}
	b.ReportMetric(per, "records/op")
}

// write1M writes a checkpoint of 1,000,000 records (200 mailboxes of
// 5,000 in 20 accounts) and returns its path.
func write1M(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const boxes, per = 200, 5000
	batch := make([]ledger.Record, 0, per)
	for m := range boxes {
		batch = batch[:0]
		for i := range uint32(per) {
			batch = append(batch, benchRecord(i))
		}
		acct, box := fmt.Sprintf("acct%03d", m%20), fmt.Sprintf("box%03d", m)
		if err := s.PutMailbox(acct, box, ledger.MailboxRecord{Source: box, Dest: box, SrcValidity: 7, DstValidity: 9}); err != nil {
			b.Fatal(err)
		}
		if err := s.PutRecords(acct, box, batch); err != nil {
			b.Fatal(err)
		}
	}
	return path
}

// BenchmarkOpen1M opens a checkpoint of 1,000,000 records read-only, which
// verifies all of it (every page, seal and the digest); one op is one Open.
func BenchmarkOpen1M(b *testing.B) {
	path := write1M(b)
	fi, _ := os.Stat(path)
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
}

// BenchmarkBackup1M is the backup a writable Open makes of a checkpoint
// of 1,000,000 records; one op is one backup.
func BenchmarkBackup1M(b *testing.B) {
	path := write1M(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := writeBackup(path, 1, time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// writeSchema1 writes a checkpoint of 1,000,000 records the way the
// release before checksums did (schema 1: values as they are, no digest).
func writeSchema1(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "schema1.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		m.Put(keyApp, []byte(appName))
		m.Put(keySchema, []byte("1"))
		m.Put(keyCreated, []byte("2026-11-01T00:00:00Z"))
		tx.CreateBucket(bucketAccounts)
		tx.CreateBucket(bucketRuns)
		_, err := tx.CreateBucket(bucketLedger)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	for m := range 200 {
		err := db.Update(func(tx *bolt.Tx) error {
			a, err := tx.Bucket(bucketLedger).CreateBucketIfNotExists(fmt.Appendf(nil, "acct%03d", m%20))
			if err != nil {
				return err
			}
			a.CreateBucketIfNotExists(bucketMailbox)
			msgs, _ := a.CreateBucketIfNotExists(bucketMessages)
			box, err := msgs.CreateBucket(fmt.Appendf(nil, "box%03d", m))
			if err != nil {
				return err
			}
			for i := range uint32(5000) {
				r := benchRecord(i)
				v, err := marshalRecord(&r)
				if err != nil {
					return err
				}
				if err := box.Put(keyBytes(r.RecordKey), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return path
}

// BenchmarkUpgrade1M is the first writable Open of a schema-1 checkpoint
// of 1,000,000 records: verify, back up, rewrite sealed. One op is one
// such Open, on a fresh copy.
func BenchmarkUpgrade1M(b *testing.B) {
	orig := writeSchema1(b)
	content, err := os.ReadFile(orig)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("run%d.db", i))
		i++
		if err := os.WriteFile(path, content, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := Open(path, Options{Backups: 1})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
