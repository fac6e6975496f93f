package imaptest

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts dovecot in its own process group, so that killGroup
// reaches its children too, and has the kernel send it SIGTERM if the test
// binary dies without running its cleanups (a panic or a timeout).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// terminate asks the dovecot master to shut down; it stops its children.
func terminate(cmd *exec.Cmd) error {
	return cmd.Process.Signal(syscall.SIGTERM)
}

// killGroup kills whatever is left of dovecot's process group.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH: nothing left
}
