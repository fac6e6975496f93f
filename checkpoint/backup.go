package checkpoint

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Before a writer changes a checkpoint it copies it to FILE.backup-TIME
// with bbolt's Tx.WriteTo (a consistent copy: the state of one commit)
// and removes all but the newest few: whatever a run does to the file,
// the state before it can be put back.

const backupInfix = ".backup-"

// backupTime names backups so that they sort by age.
const backupTime = "20060102T150405.000000Z"

// Backups returns the backups beside the checkpoint at path, oldest first.
func Backups(path string) []string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		// Only names this code gives: pruning never removes a file of
		// the operator's that merely starts the same.
		stamp, ok := strings.CutPrefix(e.Name(), base+backupInfix)
		if _, err := time.Parse(backupTime, stamp); ok && err == nil && e.Type().IsRegular() {
			out = append(out, filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
	slices.Sort(out)
	return out
}

func newestBackup(path string) string {
	b := Backups(path)
	if len(b) == 0 {
		return ""
	}
	return b[len(b)-1]
}

// writeBackup copies the checkpoint at path (verified, and locked by the
// caller) to a new backup and keeps the newest keep.
func writeBackup(path string, keep int, timeout time.Duration) (string, error) {
	db, err := openBolt(path, Options{ReadOnly: true, LockTimeout: timeout})
	if err != nil {
		return "", err
	}
	defer db.Close()
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+backupInfix+"*"+tmpSuffix)
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	err = db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	name := path + backupInfix + time.Now().UTC().Format(backupTime)
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	syncDir(dir)
	if all := Backups(path); len(all) > keep {
		for _, old := range all[:len(all)-keep] {
			os.Remove(old)
		}
	}
	return name, nil
}
