package maildir

import (
	"errors"
	"os"
)

// syncDir fsyncs a directory, so that a file created or renamed in it
// survives a crash. Systems that cannot sync a directory are let be.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, errors.ErrUnsupported) {
		err = nil
	}
	return errors.Join(err, d.Close())
}
