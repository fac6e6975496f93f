//go:build !unix

package checkpoint

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("locked")

// tryLock does nothing here: bbolt's own lock on the checkpoint is the
// only one (the loser of a race may then not learn the winner's pid).
func tryLock(*os.File, bool) error { return nil }
