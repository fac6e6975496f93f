package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

func TestZZProf(t *testing.T) {
	f := fleet{prefix: "lab", users: 100, msg: 60, par: 8}
	users := map[string]string{}
	f.logins(users)
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users, MaxUserIPConnections: 200})
	f.seed(t, src)
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users, MaxUserIPConnections: 200})
	dir := os.Getenv("PROFDIR")
	sp, dp := imaptest.StartFaultProxy(t, src.Addr()), imaptest.StartFaultProxy(t, dst.Addr())
	var csv strings.Builder
	csv.WriteString("source_user,source_password,dest_user,dest_password\n")
	for _, u := range f.names() {
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", u, users[u], u, users[u])
	}
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte(csv.String()), 0o600)
	os.Remove(filepath.Join(dir, "run.db"))
	for _, name := range []string{"full", "rerun"} {
		args := []string{"migrate", "--batch", filepath.Join(dir, "users.csv"), "--from", "imap+plain://" + sp.Addr(), "--to", "imap+plain://" + dp.Addr(),
			"--checkpoint", filepath.Join(dir, "run.db"), "--concurrency", "8", "--output", "json", "--log-level", "error",
			"--cpuprofile", filepath.Join(dir, name+".cpu"), "--blockprofile", filepath.Join(dir, name+".block"), "--report", filepath.Join(dir, name+".json")}
		args = append(args, strings.Fields(os.Getenv("EXTRA"))...)
		cmd := exec.Command("/tmp/mailferry", args...)
		out, _ := os.Create(filepath.Join(dir, name+".out"))
		cmd.Stdout, cmd.Stderr = out, out
		start := time.Now()
		err := cmd.Run()
		t.Logf("%s: %v (%v)", name, time.Since(start), err)
		t.Logf("src %+v", sp.Stats())
		t.Logf("dst %+v", dp.Stats())
	}
}
