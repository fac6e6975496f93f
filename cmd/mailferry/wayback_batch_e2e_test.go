package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// TestWayBackInBatches: cutover, reverse, verify and undo over a batch
// file whose rows carry the passwords, as migrate does: every account is
// handled, and the results are checked per user with doveadm.
func TestWayBackInBatches(t *testing.T) {
	users := map[string]string{"ann": "pw-ann", "bob": "pw-bob", "cyd": "pw-cyd"}
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	var csv strings.Builder
	csv.WriteString("source_user,source_password,dest_user,dest_password\n")
	rng := rand.New(rand.NewPCG(9, 9))
	before := map[string]int{}
	for _, u := range []string{"ann", "bob", "cyd"} {
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", u, users[u], u, users[u])
		var msgs []imaptest.SeedMessage
		for i := range 8 {
			msgs = append(msgs, imaptest.SeedMessage{Raw: genMessage(rng, u, i, 1200), Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 2, 1, 0, i, 0, 0, time.UTC)})
		}
		src.Seed(t, u, "INBOX", msgs)
		before[u] = len(src.Messages(t, u, "INBOX"))
	}
	dir := t.TempDir()
	batch := writeFile(t, dir, "wave.csv", csv.String())
	ckpt := filepath.Join(dir, "wave.db")
	servers := []string{"--from", "imap+plain://" + src.Addr(), "--to", "imap+plain://" + dst.Addr(), "--batch", batch, "--checkpoint", ckpt, "--output", "text"}
	run := func(want int, args ...string) result {
		t.Helper()
		r := runBinary(t, nil, append(args, servers...)...)
		if r.code != want {
			t.Fatalf("%s: exit %d, want %d\n%s\n%s", args[0], r.code, want, r.stdout, r.stderr)
		}
		return r
	}
	run(0, "migrate")
	if r := runBinary(t, nil, "cutover", "--checkpoint", ckpt, "--batch", batch, "--to", "imap+plain://"+dst.Addr()); r.code != 0 || !cutoverRecordedAll(r.stdout, 3) {
		t.Fatalf("cutover --batch: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for i, u := range []string{"ann", "bob", "cyd"} {
		var fresh []imaptest.SeedMessage
		for j := range i + 1 {
			fresh = append(fresh, imaptest.SeedMessage{Raw: genMessage(rng, "cloud-"+u, j, 900), InternalDate: time.Now()})
		}
		dst.Seed(t, u, "INBOX", fresh)
	}
	run(0, "reverse")
	for i, u := range []string{"ann", "bob", "cyd"} {
		if n := len(src.Messages(t, u, "INBOX")); n != before[u]+i+1 {
			t.Errorf("%s: source INBOX holds %d after reverse, want %d + %d", u, n, before[u], i+1)
		}
	}
	if r := run(0, "verify"); strings.Count(r.stdout, "PASS ") != 3 {
		t.Errorf("verify --batch did not pass the 3 accounts:\n%s", r.stdout)
	}
	r := run(0, "undo")
	rows := 0
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 && slices.Contains([]string{"ann", "bob", "cyd"}, f[0]) && f[0] == f[1] {
			rows++
		}
	}
	if !strings.Contains(r.stdout, "DRY RUN") || rows != 3 || !strings.Contains(r.stdout, "TOTAL") {
		t.Errorf("undo --batch dry run:\n%s", r.stdout)
	}
	for _, u := range []string{"ann", "bob", "cyd"} {
		if n := len(dst.Messages(t, u, "INBOX")); n < before[u] {
			t.Errorf("%s: the dry run removed mail from the destination (%d left)", u, n)
		}
	}
}
