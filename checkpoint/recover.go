package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the checkpoint at path in full, read-only, and says what
// it holds. Damage goes into the report's Problems; the error is for a
// file that could not be checked at all: missing, in use by a run, not a
// checkpoint, or of a schema this mailferry does not know.
func Check(path string, opts Options) (*Report, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", path, ErrNotCheckpoint)
	}
	if err := lockShared(f, path, opts.LockTimeout); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rep, err := verifyFile(f, false, nil)
	rep.Path, rep.Backups = path, Backups(path)
	if errors.Is(err, errStub) {
		rep.Problems = append(rep.Problems, Problem{Where: "the whole file", What: err.Error() + "; a run replaces it"})
		err = nil
	}
	if err != nil {
		return rep, fmt.Errorf("%s: %w", path, err)
	}
	return rep, nil
}

// RecoverReport says what Recover copied and what it could not.
type RecoverReport struct {
	// Copied describes the new file (its Problems are empty).
	Copied *Report `json:"copied"`
	// Lost lists what did not verify and was left behind.
	Lost     []Problem `json:"lost,omitempty"`
	MoreLost int       `json:"more_lost,omitempty"`
	Schema   int       `json:"source_schema"`
}

// Recover copies every entry of the checkpoint at src that verifies into a
// new checkpoint at dst (which must not exist), and reports what it could
// not copy. src is only read. The new file is complete or not there: it is
// made under a temporary name and renamed.
func Recover(src, dst string, opts Options) (*RecoverReport, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if _, err := os.Stat(dst); err == nil {
		return nil, fmt.Errorf("%s: %w: recover never overwrites a file", dst, fs.ErrExist)
	}
	if sameDest(src, dst) {
		return nil, fmt.Errorf("%s: recover writes a new file, not the one it reads", dst)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lockShared(f, src, opts.LockTimeout); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	lk, err := acquire(dst, opts.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dst, err)
	}
	defer lk.release()
	removeStale(dst)

	out := &RecoverReport{}
	err = create(dst, false, func(db *bolt.DB) error {
		w := newCopyWriter(db)
		rep, err := verifyFile(f, false, w)
		if errors.Is(err, errStub) {
			err = nil // nothing to copy
		}
		if err != nil {
			return err
		}
		out.Schema, out.Lost, out.MoreLost = rep.Schema, rep.Problems, rep.MoreProblems
		note, _ := json.Marshal(map[string]any{"source": absPath(src), "at": time.Now().UTC().Format(time.RFC3339),
			"lost": len(rep.Problems) + rep.MoreProblems})
		if err := w.value([][]byte{bucketMeta}, keyRecovered, note); err != nil {
			return err
		}
		return w.finish()
	})
	if err != nil {
		return nil, fmt.Errorf("recover %s into %s: %w", src, dst, err)
	}
	// What was written is checked like any checkpoint.
	nf, err := os.Open(dst)
	if err != nil {
		return nil, err
	}
	defer nf.Close()
	out.Copied, err = verifyFile(nf, true, nil)
	if err != nil {
		return nil, fmt.Errorf("the recovered file %s does not verify: %w", dst, err)
	}
	out.Copied.Path = dst
	return out, nil
}

func sameDest(src, dst string) bool {
	a, b := absPath(src), absPath(dst)
	return a == b || filepath.Clean(a) == filepath.Clean(b)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// copyWriter writes what a walk passes into a new file, in transactions
// of a bounded size, sealing every value and keeping the digest.
type copyWriter struct {
	db     *bolt.DB
	tx     *bolt.Tx
	t      *txn
	n      int
	names  [][]byte // the bucket cur is
	cur    bucket
	maxRun uint64
	runSeq uint64
}

const copyBatch = 20000

func newCopyWriter(db *bolt.DB) *copyWriter { return &copyWriter{db: db} }

func (c *copyWriter) begin() error {
	if c.tx != nil {
		return nil
	}
	tx, err := c.db.Begin(true)
	if err != nil {
		return err
	}
	c.tx, c.t, c.names = tx, &txn{tx: tx, sealed: true}, nil
	return nil
}

func (c *copyWriter) commit() error {
	if c.tx == nil {
		return nil
	}
	err := c.t.commit()
	if err == nil {
		err = c.tx.Commit()
	} else {
		c.tx.Rollback()
	}
	c.tx, c.t = nil, nil
	return err
}

// at returns the bucket names, creating it and its parents.
func (c *copyWriter) at(names [][]byte) (bucket, error) {
	if err := c.begin(); err != nil {
		return bucket{}, err
	}
	if c.names != nil && equalNames(c.names, names) {
		return c.cur, nil
	}
	b := c.t.root()
	for _, n := range names {
		var err error
		if b, err = b.subOrCreate(n); err != nil {
			return bucket{}, err
		}
	}
	c.names, c.cur = append([][]byte{}, names...), b
	return b, nil
}

func equalNames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func (c *copyWriter) bucket(names [][]byte, seq uint64) error {
	if len(names) == 1 && string(names[0]) == "runs" {
		c.runSeq = seq
	}
	_, err := c.at(names)
	return err
}

func (c *copyWriter) value(names [][]byte, key, payload []byte) error {
	b, err := c.at(names)
	if err != nil {
		return err
	}
	if len(names) == 1 && string(names[0]) == "runs" && len(key) == 4 {
		c.maxRun = max(c.maxRun, uint64(binary.BigEndian.Uint32(key)))
	}
	if err := b.put(key, payload); err != nil {
		return err
	}
	if c.n++; c.n%copyBatch == 0 {
		return c.commit()
	}
	return nil
}

// finish sets the run sequence (past every run copied, so that no run id
// is used twice) and commits.
func (c *copyWriter) finish() error {
	b, err := c.at([][]byte{bucketRuns})
	if err != nil {
		return err
	}
	if err := b.b.SetSequence(max(c.runSeq, c.maxRun)); err != nil {
		return err
	}
	return c.commit()
}
