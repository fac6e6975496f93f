//go:build !linux

package imaptest

import (
	"os"
	"os/exec"
)

// Outside Linux there is no parent-death signal; dovecot still stops at
// cleanup.
func setProcAttr(*exec.Cmd) {}

func terminate(cmd *exec.Cmd) error { return cmd.Process.Signal(os.Interrupt) }

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
