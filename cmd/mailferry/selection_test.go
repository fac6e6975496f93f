package main

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "1000": 1000, "25M": 25 << 20, "25MB": 25 << 20, "25mib": 25 << 20, " 2k ": 2048, "1G": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "-1", "M", "1.5M", "12X", "99999999999999999999"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	for _, bad := range []selectionFlags{{since: "2024-13-01"}, {before: "yesterday"}, {since: "2024-02-01", before: "2024-02-01"},
		{include: []string{"re:("}}, {includeRE: []string{"("}}, {maps: []string{"Sent"}}} {
		if _, _, err := bad.selection(preset{}); err == nil {
			t.Errorf("selection %+v accepted", bad)
		}
	}
}

// TestMigrateSelectionDovecot: the folder rules and filters through the
// binary against Dovecot (whose UID SEARCH does the date and size
// selection), checked with doveadm; verify given the same flags passes,
// verify of everything fails and names what is not there.
func TestMigrateSelectionDovecot(t *testing.T) {
	users := map[string]string{"alice": "pw-alice"}
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	rng := rand.New(rand.NewPCG(3, 4))
	seed := func(box string, n, big int) {
		var msgs []imaptest.SeedMessage
		for i := range n {
			size := 800
			if i < big {
				size = 40 << 10
			}
			msgs = append(msgs, imaptest.SeedMessage{Raw: genMessage(rng, box, i, size), InternalDate: time.Date(2024, 3, 1+i, 12, 0, 0, 0, time.UTC)})
		}
		src.Seed(t, "alice", box, msgs)
	}
	seed("INBOX", 20, 3)     // March 1-20; the first three are big
	seed("Junk", 5, 0)       // excluded
	seed("Projects/A", 6, 0) // mapped to Archive/A
	dir := t.TempDir()
	env := []string{"MAILFERRY_FROM_PASSWORD=pw-alice", "MAILFERRY_TO_PASSWORD=pw-alice"}
	sel := []string{"--exclude", "Junk", "--map-folder", "Projects=Archive", "--since", "2024-03-02", "--before", "2024-03-16", "--max-size", "20K"}
	base := []string{"--from", "imap+plain://alice@" + src.Addr(), "--to", "imap+plain://alice@" + dst.Addr(), "--checkpoint", filepath.Join(dir, "run.db")}
	r := runBinary(t, env, append(append([]string{"migrate", "--output", "text"}, base...), sel...)...)
	if r.code != 0 {
		t.Fatalf("migrate exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// INBOX: March 2..15 is 14 messages, less the big ones of March 2 and 3.
	want := map[string]int{"INBOX": 12, "Archive/A": 5}
	for box, n := range want {
		if got := len(dst.Messages(t, "alice", box)); got != n {
			t.Errorf("destination %s: %d messages, want %d", box, got, n)
		}
	}
	boxes := dst.Mailboxes(t, "alice")
	if slices.Contains(boxes, "Junk") && len(dst.Messages(t, "alice", "Junk")) > 0 {
		t.Errorf("Junk was copied: %v", boxes)
	}
	if slices.Contains(boxes, "Projects/A") {
		t.Errorf("Projects/A was created despite the mapping: %v", boxes)
	}
	for _, line := range []string{"left out by --since, --before or --max-size", `skipped "Junk": excluded by --exclude`} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("summary lacks %q:\n%s", line, r.stdout)
		}
	}
	if r := runBinary(t, env, append(append([]string{"verify"}, base...), sel...)...); r.code != 0 {
		t.Errorf("verify with the migration's selection: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, env, append([]string{"verify", "--output", "text"}, base...)...)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL") {
		t.Errorf("verify of everything: exit %d, want 1 with FAIL\n%s", r.code, r.stdout)
	}
	if r := runBinary(t, env, append(append([]string{"migrate", "--output", "json", "--report", filepath.Join(dir, "again.json")}, base...), sel...)...); r.code != 0 {
		t.Fatalf("re-run exit %d\n%s", r.code, r.stderr)
	}
	rep := readReport(t, filepath.Join(dir, "again.json"))
	if tot := rep.Accounts[0].Totals(); tot.New != 0 || tot.Seen != 17 || tot.Filtered != 9 {
		t.Errorf("re-run totals %+v, want nothing new, 17 seen, 9 filtered", tot)
	}
}
