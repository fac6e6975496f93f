// Package checkpoint keeps mailferry's ledger in a bbolt file: one record per
// source message saying what a run did with it and where the copy landed, so
// that any run can resume, be verified and be undone.
//
// The on-disk layout is described in docs/checkpoint.md; it is a contract.
package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this code reads and writes.
const SchemaVersion = 1

const appName = "mailferry-checkpoint"

var (
	// ErrLocked: another process has the checkpoint open.
	ErrLocked = errors.New("checkpoint is in use by another mailferry process")
	// ErrNotCheckpoint: the file exists but is not a mailferry checkpoint.
	ErrNotCheckpoint = errors.New("not a mailferry checkpoint")
	// ErrSchema: the checkpoint was written by an incompatible version.
	ErrSchema = errors.New("checkpoint schema version not supported")
	// ErrEndpointsDiffer: the run names other servers than the checkpoint.
	ErrEndpointsDiffer = errors.New("endpoints differ from the checkpoint's")
	// ErrNotFound: no such account or mailbox in the checkpoint.
	ErrNotFound = errors.New("not in checkpoint")
	// ErrDamaged: a page of the file is corrupt; mailferry never repairs or
	// rewrites it.
	ErrDamaged = errors.New("checkpoint file is damaged (restore it from a copy; mailferry will not repair or overwrite it)")
)

// view and update run fn in a transaction. bbolt reports a corrupt page
// by panicking; that becomes ErrDamaged, so that a damaged checkpoint
// stops the run with a clear message instead of crashing it (bbolt rolls
// the transaction back, so nothing is written).
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer recoverDamage(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a bad offset into the mapping, too
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer recoverDamage(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.db.Update(fn)
}

func recoverDamage(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", ErrDamaged, r)
	}
}

var (
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")
	bucketRuns     = []byte("runs")
	bucketLedger   = []byte("ledger")
	bucketMailbox  = []byte("mailboxes")
	bucketMessages = []byte("messages")
	bucketDestSeen = []byte("destinations")
)

// Options tunes Open.
type Options struct {
	// ReadOnly opens without the exclusive lock; it waits for a writer to
	// finish for at most LockTimeout.
	ReadOnly bool
	// LockTimeout bounds the wait for the file lock (default 1s).
	LockTimeout time.Duration
}

// Store is an open checkpoint file.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens or creates the checkpoint at path. A new file is created with
// mode 0600; an existing file is never truncated or rewritten unless it is a
// mailferry checkpoint of this schema version.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	fi, statErr := os.Stat(path)
	exists := statErr == nil
	if exists && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open checkpoint %s: %w: not a regular file", path, ErrNotCheckpoint)
	}
	if !exists && opts.ReadOnly {
		return nil, fmt.Errorf("open checkpoint %s: %w", path, fs.ErrNotExist)
	}
	if exists && fi.Size() == 0 {
		// bbolt would silently initialise an empty file; only do that for a
		// file we are creating.
		return nil, fmt.Errorf("open checkpoint %s: %w: empty file", path, ErrNotCheckpoint)
	}
	if exists {
		if err := precheck(path); err != nil {
			return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
		}
		if !opts.ReadOnly {
			// Look before writing: opening another program's bbolt file
			// for writing can change it (bbolt writes out a freelist the
			// file lacks), and a file that is not ours stays as it is.
			ro, err := Open(path, Options{ReadOnly: true, LockTimeout: opts.LockTimeout})
			if err != nil {
				return nil, err
			}
			ro.Close()
		}
	}
	db, err := openBolt(path, opts)
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open checkpoint %s: %w%s", path, ErrLocked, lockHolder(path))
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("open checkpoint %s: %w: %v", path, ErrNotCheckpoint, err)
		}
		return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.checkSchemaSafely(!exists && !opts.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		// The file may predate us with looser permissions; it names users
		// and folders, so keep it private. Only once it is known to be ours.
		if err := os.Chmod(path, 0o600); err != nil {
			db.Close()
			return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
		}
		writeLockHolder(path)
	}
	return s, nil
}

// openBolt opens the file; bbolt panics on some corrupt files instead of
// returning an error, or reads outside the file through its memory map,
// and neither must take the process down.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: corrupt file: %v", berrors.ErrInvalid, r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.LockTimeout,
		ReadOnly:     opts.ReadOnly,
		FreelistType: bolt.FreelistMapType,
	})
}

func (s *Store) checkSchemaSafely(fresh bool) (err error) {
	// A corrupt page can point bbolt outside the mapped file: make that
	// fault a panic, recovered below, rather than a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open checkpoint %s: %w: corrupt file: %v", s.path, ErrNotCheckpoint, r)
		}
	}()
	if err := s.checkSchema(fresh); errors.Is(err, ErrDamaged) {
		return fmt.Errorf("open checkpoint %s: %w: %w", s.path, ErrNotCheckpoint, err)
	} else if err != nil {
		return err
	}
	return nil
}

// Close closes the file.
func (s *Store) Close() error {
	if !s.db.IsReadOnly() {
		os.Remove(lockHolderPath(s.path))
	}
	return s.db.Close()
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

func (s *Store) checkSchema(fresh bool) error {
	if fresh {
		return s.update(func(tx *bolt.Tx) error {
			m, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			for _, b := range [][]byte{bucketAccounts, bucketRuns, bucketLedger} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			if err := m.Put([]byte("app"), []byte(appName)); err != nil {
				return err
			}
			if err := m.Put([]byte("created"), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
				return err
			}
			return m.Put([]byte("schema"), []byte(strconv.Itoa(SchemaVersion)))
		})
	}
	return s.view(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil || string(m.Get([]byte("app"))) != appName {
			return fmt.Errorf("open checkpoint %s: %w: a bbolt file of some other program", s.path, ErrNotCheckpoint)
		}
		v, err := strconv.Atoi(string(m.Get([]byte("schema"))))
		if err != nil {
			return fmt.Errorf("open checkpoint %s: %w: unreadable schema version", s.path, ErrNotCheckpoint)
		}
		if v != SchemaVersion {
			return fmt.Errorf("open checkpoint %s: %w: file has version %d, this mailferry reads %d", s.path, ErrSchema, v, SchemaVersion)
		}
		return nil
	})
}

// BindEndpoints records the source and destination endpoints (no secrets) on
// the first run and refuses a later run that names different ones: a
// checkpoint describes one move between two places.
func (s *Store) BindEndpoints(from, to string) error {
	return s.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		oldFrom, oldTo := m.Get([]byte("from")), m.Get([]byte("to"))
		if oldFrom == nil && oldTo == nil {
			if err := m.Put([]byte("from"), []byte(from)); err != nil {
				return err
			}
			return m.Put([]byte("to"), []byte(to))
		}
		if string(oldFrom) != from || string(oldTo) != to {
			return fmt.Errorf("%w: checkpoint is for %s -> %s, this run is %s -> %s",
				ErrEndpointsDiffer, oldFrom, oldTo, from, to)
		}
		return nil
	})
}

// Endpoints returns the endpoints recorded by BindEndpoints.
func (s *Store) Endpoints() (from, to string, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		from, to = string(m.Get([]byte("from"))), string(m.Get([]byte("to")))
		return nil
	})
	return from, to, err
}

// StartRun records a new run and returns its id.
func (s *Store) StartRun(command, version string) (uint32, error) {
	var id uint32
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		id = uint32(seq)
		return putJSON(b, u32(id), Run{ID: id, Command: command, Version: version, Started: time.Now().UTC()})
	})
	return id, err
}

// FinishRun records how run id ended.
func (s *Store) FinishRun(id uint32, outcome string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		var r Run
		if err := getJSON(b, u32(id), &r); err != nil {
			return err
		}
		r.Finished, r.Outcome = time.Now().UTC(), outcome
		return putJSON(b, u32(id), r)
	})
}

// Runs lists all runs in order.
func (s *Store) Runs() ([]Run, error) {
	var out []Run
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// AccountID is the ledger key of an account pair: the same pair in a later
// batch file finds its earlier progress.
func AccountID(sourceUser, destUser string) string {
	return strings.ToLower(sourceUser) + "\x00" + strings.ToLower(destUser)
}

const reversePrefix = "reverse\x00"

// ReverseAccountID is the ledger key of the way back of account id:
// reverse's copy back is a run of its own, destination to source, so it
// resumes and deduplicates like a migration. It is not an account pair of
// the move: commands that go over "every account" skip it.
func ReverseAccountID(id string) string { return reversePrefix + id }

// IsReverseAccount reports whether id is the ledger key of a way back.
func IsReverseAccount(id string) bool { return strings.HasPrefix(id, reversePrefix) }

// Account returns the record of account id.
func (s *Store) Account(id string) (Account, bool, error) {
	var a Account
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAccounts).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &a)
	})
	return a, found, err
}

// PutAccount stores the record of account id.
func (s *Store) PutAccount(id string, a Account) error {
	a.Updated = time.Now().UTC()
	return s.update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketAccounts), []byte(id), a)
	})
}

// Accounts calls fn for every account in key order.
func (s *Store) Accounts(fn func(id string, a Account) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
			var a Account
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("account %q: %w", k, err)
			}
			return fn(string(k), a)
		})
	})
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return ErrNotFound
	}
	return json.Unmarshal(data, v)
}
