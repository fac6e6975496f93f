package checkpoint

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// The bbolt file lock is what keeps two processes apart; this side file only
// tells the one refused who holds the lock.

func lockHolderPath(path string) string { return path + ".lock" }

func writeLockHolder(path string) {
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	_ = os.WriteFile(lockHolderPath(path), []byte(info), 0o600)
}

func lockHolder(path string) string {
	b, err := os.ReadFile(lockHolderPath(path))
	if err != nil || len(b) == 0 {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}
