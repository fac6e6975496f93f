//go:build !unix

package maildir

// Without kill(2) a lock is taken over only once it is stale by age.
func processAlive(int) bool { return true }

func isDiskFull(error) bool { return false }

func isNotEmpty(err error) bool { return err != nil }
