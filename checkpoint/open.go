package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Open opens or creates the checkpoint at path.
//
// A writable Open takes FILE.lock (the loser of a race is told the
// winner's pid), creates a missing file atomically, and verifies an
// existing one in full before bbolt opens it: a damaged file is refused
// with a *DamageError and not a byte of it is written. It then backs the
// file up (Options.Backups) and upgrades a schema-1 file. A read-only Open
// verifies the same way and writes nothing anywhere.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Backups == 0 {
		opts.Backups = 3
	}
	s, err := open(path, opts)
	if err != nil {
		var d *DamageError
		if errors.As(err, &d) && d.Path == "" {
			d.Path, d.Backup, d.Refused = path, newestBackup(path), true
		}
		return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	return s, nil
}

func open(path string, opts Options) (*Store, error) {
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrNotCheckpoint)
	}
	if opts.ReadOnly {
		if err != nil {
			return nil, err
		}
		return openReadOnly(path, opts)
	}
	lk, err := acquire(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	s, err := openWritable(path, opts, lk)
	if err != nil {
		lk.release()
		return nil, err
	}
	s.lock = lk
	return s, nil
}

func openReadOnly(path string, opts Options) (*Store, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // once bbolt holds its own shared lock
	if err := lockShared(f, path, opts.LockTimeout); err != nil {
		return nil, err
	}
	rep, err := verifyFile(f, true, nil)
	if errors.Is(err, errStub) {
		return nil, fmt.Errorf("%w: %v; a run replaces it", ErrNotCheckpoint, err)
	}
	if err != nil {
		return nil, err
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	if !sameFile(f, path) {
		// A writer put a new file in its place (an upgrade) between the
		// check and bbolt's open: what bbolt has is not what was checked.
		db.Close()
		return nil, fmt.Errorf("%w: the file was replaced while being opened; try again", ErrLocked)
	}
	return &Store{db: db, path: path, sealed: rep.Schema >= 2}, nil
}

// openWritable opens path for a run, under FILE.lock.
func openWritable(path string, opts Options, lk *fileLock) (*Store, error) {
	removeStale(path)
	fresh := false
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := create(path, false, nil); err != nil {
			return nil, err
		}
		fresh = true
	} else if err != nil {
		return nil, err
	}
	if !fresh {
		rep, err := verifyPath(path, opts.LockTimeout, lk)
		switch {
		case errors.Is(err, errStub):
			// bbolt's first pages and no commit: nothing to lose.
			if err := create(path, true, nil); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		default:
			if opts.Backups > 0 {
				if _, err := writeBackup(path, opts.Backups, opts.LockTimeout); err != nil {
					return nil, fmt.Errorf("back up the checkpoint before changing it: %w", err)
				}
			}
			if rep.Schema < SchemaVersion {
				if err := upgrade(path, opts.LockTimeout); err != nil {
					return nil, fmt.Errorf("upgrade schema %d to %d: %w", rep.Schema, SchemaVersion, err)
				}
			}
		}
	}
	db, err := openBolt(path, opts)
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("%w%s", ErrLocked, lk.holderOf())
	}
	if err != nil {
		return nil, err
	}
	// The file may predate us with looser permissions; it names users
	// and folders, so keep it private.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, path: path, sealed: true}, nil
}

// verifyPath verifies the file at path in full, under a shared lock.
func verifyPath(path string, timeout time.Duration, lk *fileLock) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lockShared(f, path, timeout); err != nil {
		if errors.Is(err, ErrLocked) && lk != nil {
			return nil, fmt.Errorf("%w%s", ErrLocked, lk.holderOf())
		}
		return nil, err
	}
	return verifyFile(f, true, nil)
}

// upgrade rewrites a schema-1 file (verified) as schema 2: every entry
// copied and sealed into a new file, which then takes its place.
func upgrade(path string, timeout time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockShared(f, path, timeout); err != nil {
		return err
	}
	return create(path, true, func(db *bolt.DB) error {
		w := newCopyWriter(db)
		if _, err := verifyFile(f, true, w); err != nil {
			return err
		}
		return w.finish()
	})
}

// openBolt opens the file with bbolt. It runs on verified files only, but
// a file can change between the check and the open (another program), and
// bbolt panics on some corrupt files or reads outside them through its
// memory map: neither must take the process down.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged("the file", "bbolt: %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.LockTimeout,
		ReadOnly:     opts.ReadOnly,
		FreelistType: bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w%s", ErrLocked, lockHolder(path))
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, damaged("the file", "bbolt: %v", err)
	}
	return db, err
}
