package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A checkpoint is made whole under a temporary name beside it (FILE.new-*)
// and only then given its name, so a kill or a full disk during creation
// leaves no file that the next run would have to refuse. The temporary
// files are only ever made under FILE.lock, so the next writer removes
// whatever it finds of them.

const (
	newInfix  = ".new-"
	tmpSuffix = ".tmp"
)

// create makes a new checkpoint at path, filled by fill (may be nil). With
// replace, a file already at path is replaced (a stub that holds nothing,
// or the schema-1 file an upgrade rewrites); without, one that appeared
// meanwhile is left alone and creation fails.
func create(path string, replace bool, fill func(db *bolt.DB) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+newInfix+"*"+tmpSuffix) // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	err = initialise(db)
	if err == nil && fill != nil {
		err = fill(db)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); err == nil {
		os.Remove(tmp)
	} else if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: another process created it meanwhile%s", ErrLocked, lockHolder(path))
	} else {
		err = os.Rename(tmp, path) // a file system without hard links
	}
	if err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// initialise writes what every checkpoint has.
func initialise(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		t := &txn{tx: tx, sealed: true}
		root := t.root()
		for _, name := range [][]byte{bucketMeta, bucketAccounts, bucketRuns, bucketLedger} {
			if _, err := root.subOrCreate(name); err != nil {
				return err
			}
		}
		m, _ := root.sub(bucketMeta)
		for _, kv := range [][2]string{{"app", appName}, {"schema", strconv.Itoa(SchemaVersion)}, {"created", time.Now().UTC().Format(time.RFC3339)}} {
			if err := m.put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		return t.commit()
	})
}

// syncDir makes a rename in dir durable; some file systems cannot, and
// then the rename is as durable as they make it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// removeStale removes what a killed writer left beside path: temporary
// files of a creation, an upgrade, a recovery or a backup. Only a holder of
// FILE.lock calls it, and only such a holder makes them.
func removeStale(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); isTemp(n, base+newInfix) || isTemp(n, base+backupInfix) {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// isTemp says whether name is a temporary file os.CreateTemp made with
// prefix and tmpSuffix (a random number between), and nothing else that
// happens to start the same.
func isTemp(name, prefix string) bool {
	mid, hasPrefix := strings.CutPrefix(name, prefix)
	mid, hasSuffix := strings.CutSuffix(mid, tmpSuffix)
	return hasPrefix && hasSuffix && mid != "" && strings.Trim(mid, "0123456789") == ""
}
