package imaptest

import (
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// A shell that runs a busy child and waits for it has that child's time in
// its tree: the reaped child counts through the shell's cutime.
func TestTreeCPUCountsReapedChildren(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	cmd := exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; sleep 30`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	var got time.Duration
	for time.Now().Before(deadline) {
		// The busy child has finished once the shell has only sleep left.
		if got = treeCPU(cmd.Process.Pid); got >= 100*time.Millisecond {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got < 100*time.Millisecond {
		t.Fatalf("tree CPU %v, want at least 100ms of the busy child", got)
	}
	if other := treeCPU(1 << 30); other != 0 {
		t.Fatalf("a pid that does not exist has CPU %v", other)
	}
}
