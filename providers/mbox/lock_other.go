//go:build !unix

package mbox

import "os"

// Without flock(2), writers of other processes are not kept out; within
// one process a mailbox's mutex still serialises writers.
func tryLock(*os.File, bool) (bool, error) { return true, nil }

func unlock(*os.File) error { return nil }
