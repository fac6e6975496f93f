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
	"runtime/debug"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout version this code writes. It also reads
// schema 1 (values without checksums): a writable Open upgrades such a
// file, read-only opens read it as it is.
const SchemaVersion = 2

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
	// ErrDamaged: part of the file fails its checks; mailferry never
	// writes into it (a DamageError says where).
	ErrDamaged = errors.New("checkpoint file is damaged")
)

// view and update run fn in a transaction. bbolt reports a corrupt page
// by panicking; that becomes ErrDamaged, so that a damaged checkpoint
// stops the run with a clear message instead of crashing it (bbolt rolls
// the transaction back, so nothing is written).
func (s *Store) view(fn func(*txn) error) (err error) {
	defer s.recoverDamage(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a bad offset into the mapping, too
	return s.db.View(func(tx *bolt.Tx) error { return fn(&txn{tx: tx, sealed: s.sealed}) })
}

// updateTx is one bbolt transaction; update (group.go) gathers writers
// into it.
func (s *Store) updateTx(fn func(*txn) error) (err error) {
	defer s.recoverDamage(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.db.Update(func(tx *bolt.Tx) error {
		t := &txn{tx: tx, sealed: s.sealed}
		if err := fn(t); err != nil {
			return err
		}
		return t.commit()
	})
}

// recoverDamage turns bbolt's panic on a corrupt page into a DamageError
// and names the file in every DamageError.
func (s *Store) recoverDamage(err *error) {
	if r := recover(); r != nil {
		*err = damaged("a page read by this transaction", "bbolt: %v", r)
	}
	var d *DamageError
	if errors.As(*err, &d) && d.Path == "" {
		d.Path = s.path
		d.Backup = newestBackup(s.path)
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
	// Backups is how many backups of the file a writable Open keeps beside
	// it (default 3; negative: none).
	Backups int
}

// Store is an open checkpoint file.
type Store struct {
	db     *bolt.DB
	path   string
	sealed bool      // schema 2: every value carries its checksum
	lock   *fileLock // a writer's; nil when read-only
	group  committer // writers waiting to commit together (group.go)
}

// Close closes the file.
func (s *Store) Close() error {
	err := s.db.Close()
	s.lock.release()
	return err
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// BindEndpoints records the source and destination endpoints (no secrets) on
// the first run and refuses a later run that names different ones: a
// checkpoint describes one move between two places.
func (s *Store) BindEndpoints(from, to string) error {
	return s.update(func(t *txn) error {
		m, err := t.top(bucketMeta)
		if err != nil {
			return err
		}
		oldFrom, err := m.get(keyFrom)
		if err != nil {
			return err
		}
		oldTo, err := m.get(keyTo)
		if err != nil {
			return err
		}
		if oldFrom == nil && oldTo == nil {
			if err := m.put(keyFrom, []byte(from)); err != nil {
				return err
			}
			return m.put(keyTo, []byte(to))
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
	err = s.view(func(t *txn) error {
		m, err := t.top(bucketMeta)
		if err != nil {
			return err
		}
		f, err := m.get(keyFrom)
		if err != nil {
			return err
		}
		tv, err := m.get(keyTo)
		from, to = string(f), string(tv)
		return err
	})
	return from, to, err
}

// StartRun records a new run and returns its id.
func (s *Store) StartRun(command, version string) (uint32, error) {
	var id uint32
	err := s.update(func(t *txn) error {
		b, err := t.top(bucketRuns)
		if err != nil {
			return err
		}
		seq, err := b.b.NextSequence()
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
	return s.update(func(t *txn) error {
		b, err := t.top(bucketRuns)
		if err != nil {
			return err
		}
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
	err := s.view(func(t *txn) error {
		b, err := t.top(bucketRuns)
		if err != nil {
			return err
		}
		return b.each(func(k, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return damaged(b.where.entry(k), "%v", err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Account returns the record of account id.
func (s *Store) Account(id string) (ledger.Account, bool, error) {
	var a diskAccount
	var found bool
	err := s.view(func(t *txn) error {
		b, err := t.top(bucketAccounts)
		if err != nil {
			return err
		}
		err = getJSON(b, []byte(id), &a)
		found = err == nil
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	return ledger.Account(a), found, err
}

// PutAccount stores the record of account id.
func (s *Store) PutAccount(id string, a ledger.Account) error {
	a.Updated = time.Now().UTC()
	return s.update(func(t *txn) error {
		b, err := t.top(bucketAccounts)
		if err != nil {
			return err
		}
		return putJSON(b, []byte(id), diskAccount(a))
	})
}

// Accounts calls fn for every account in key order.
func (s *Store) Accounts(fn func(id string, a ledger.Account) error) error {
	return s.view(func(t *txn) error {
		b, err := t.top(bucketAccounts)
		if err != nil {
			return err
		}
		return b.each(func(k, v []byte) error {
			var a diskAccount
			if err := json.Unmarshal(v, &a); err != nil {
				return damaged(b.where.entry(k), "%v", err)
			}
			return fn(string(k), ledger.Account(a))
		})
	})
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func putJSON(b bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.put(key, data)
}

func getJSON(b bucket, key []byte, v any) error {
	data, err := b.get(key)
	if err != nil {
		return err
	}
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return damaged(b.where.entry(key), "%v", err)
	}
	return nil
}
