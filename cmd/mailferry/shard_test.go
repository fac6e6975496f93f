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

func TestShardAssignmentIsStableAndBalanced(t *testing.T) {
	// Pinned: shards of a running move depend on these never changing.
	for user, want := range map[string]int{"alice@example.com": shardOf("ALICE@example.com ", 7), "u0001": 3, "bob": 0} {
		if user == "alice@example.com" {
			if got := shardOf(user, 7); got != want {
				t.Errorf("shardOf ignores case and spaces: %d != %d", got, want)
			}
			continue
		}
		if got := shardOf(user, 4); got != want {
			t.Errorf("shardOf(%q, 4) = %d, want %d (the hash must never change)", user, got, want)
		}
	}
	const users = 50_000
	for _, n := range []int{2, 3, 8, 20} {
		count := make([]int, n)
		for i := range users {
			u := fmt.Sprintf("user%05d@university.example.edu", i)
			owners := 0
			for s := range n {
				if (shard{s, n}).owns(u) {
					owners++
				}
			}
			if owners != 1 {
				t.Fatalf("user %s belongs to %d of %d shards", u, owners, n)
			}
			count[shardOf(u, n)]++
		}
		mean := float64(users) / float64(n)
		for s, c := range count {
			if dev := (float64(c) - mean) / mean; dev > 0.05 || dev < -0.05 {
				t.Errorf("%d shards: shard %d has %d users, %.1f%% off the mean", n, s, c, 100*dev)
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	for in, want := range map[string]shard{"": {}, "0/1": {0, 1}, "2/4": {2, 4}, " 3 / 10": {3, 10}} {
		if got, err := parseShard(in); err != nil || got != want {
			t.Errorf("parseShard(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"4/4", "-1/4", "1", "a/b", "1/0", "1/2/3"} {
		if _, err := parseShard(bad); err == nil {
			t.Errorf("parseShard(%q) accepted", bad)
		}
	}
	if got := (shard{0, 4}).capShare(40); got != 10 {
		t.Errorf("capShare(40) over 4 shards = %d, want 10", got)
	}
	if got := (shard{0, 8}).capShare(5); got != 1 {
		t.Errorf("capShare(5) over 8 shards = %d, want 1", got)
	}
}

// TestThreeShardsEqualOne: a batch split into three shards, each with its
// own checkpoint, ends with exactly what one run of the whole batch gives,
// and the merged report adds up to the single run's.
func TestThreeShardsEqualOne(t *testing.T) {
	users := map[string]string{}
	var csv strings.Builder
	csv.WriteString("source_user,source_password,dest_user,dest_password\n")
	var names []string
	for i := range 12 {
		u := fmt.Sprintf("s%02d", i)
		users[u] = "pw-" + u
		names = append(names, u)
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", u, users[u], u, users[u])
	}
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users, MaxUserIPConnections: 100})
	for i, u := range names {
		rng := rand.New(rand.NewPCG(uint64(i), 5))
		var msgs []imaptest.SeedMessage
		for j := range 5 + i {
			msgs = append(msgs, imaptest.SeedMessage{Raw: genMessage(rng, u, j, 1500), Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 1, 1, 0, j, 0, 0, time.UTC)})
		}
		src.Seed(t, u, "INBOX", msgs)
	}
	dir := t.TempDir()
	batch := writeFile(t, dir, "all.csv", csv.String())
	run := func(dst *imaptest.Dovecot, ckpt string, extra ...string) {
		args := append([]string{"migrate", "--batch", batch, "--from", "imap+plain://" + src.Addr(), "--to", "imap+plain://" + dst.Addr(),
			"--checkpoint", ckpt, "--output", "json", "--max-connections-per-host", "12"}, extra...)
		if r := runBinary(t, nil, args...); r.code != 0 {
			t.Fatalf("migrate %v exit %d\n%s", extra, r.code, r.stderr)
		}
	}
	one := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users, MaxUserIPConnections: 100})
	run(one, filepath.Join(dir, "one.db"))
	three := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users, MaxUserIPConnections: 100})
	var shards []string
	for i := range 3 {
		ckpt := filepath.Join(dir, fmt.Sprintf("shard-%d.db", i))
		run(three, ckpt, "--shard", fmt.Sprintf("%d/3", i), "--report", ckpt+".json")
		shards = append(shards, ckpt)
		// Each shard took only its own users and no more than its share
		// of the connection cap.
		rep := readReport(t, ckpt+".json")
		for _, s := range rep.Accounts {
			if shardOf(s.Source, 3) != i {
				t.Errorf("shard %d migrated %s, which belongs to shard %d", i, s.Source, shardOf(s.Source, 3))
			}
		}
		for host, peak := range rep.PeakConnections {
			if peak > 4 {
				t.Errorf("shard %d held %d connections to %s, more than its share (12/3)", i, peak, host)
			}
		}
	}
	for _, u := range names {
		if a, b := lineSet(one.Messages(t, u, "INBOX")), lineSet(three.Messages(t, u, "INBOX")); !slices.Equal(a, b) || len(a) == 0 {
			t.Errorf("user %s: 3 shards gave %d messages, 1 run gave %d, or they differ", u, len(b), len(a))
		}
	}
	single := runBinary(t, nil, "report", "merge", "--json", filepath.Join(dir, "one.db"))
	merged := runBinary(t, nil, append([]string{"report", "merge", "--json"}, shards...)...)
	if single.code != 0 || merged.code != 0 {
		t.Fatalf("report merge: %d %d\n%s%s", single.code, merged.code, single.stderr, merged.stderr)
	}
	total := func(out string) string {
		i := strings.Index(out, `"total"`)
		j := strings.Index(out[i:], "}")
		return strings.ReplaceAll(out[i:i+j], "12 accounts", "N")
	}
	if !strings.Contains(merged.stdout, `"source_user": "12 accounts"`) || total(single.stdout) != total(merged.stdout) {
		t.Errorf("merged totals differ from the single run's:\n%s\n%s", total(single.stdout), total(merged.stdout))
	}
	csvOut := filepath.Join(dir, "move.csv")
	if r := runBinary(t, nil, append([]string{"report", "merge", "--report", csvOut}, shards...)...); r.code != 0 || !strings.Contains(r.stdout, "TOTAL") {
		t.Errorf("report merge table: exit %d\n%s", r.code, r.stdout)
	}
}

func TestShardsNeedAGlobalCap(t *testing.T) {
	for _, c := range []struct {
		shard     string
		cap, want int
		ok        bool
	}{
		{"", 0, 0, true},     // not sharded: no cap is fine
		{"0/1", 0, 0, true},  // one shard is the whole move
		{"2/8", 0, 0, false}, // 8 shards without a budget would open 8 times as many
		{"2/8", 5, 0, false}, // less than one per shard
		{"2/8", 40, 5, true}, // the budget split
		{"7/8", 60, 7, true}, // rounded down: never above the total together
	} {
		o := endpointOptions{maxConnectionsPerHost: c.cap}
		f := accountFlags{shard: c.shard}
		_, err := f.shardFlags(&o)
		if (err == nil) != c.ok || (c.ok && o.maxConnectionsPerHost != c.want) {
			t.Errorf("--shard %q --max-connections-per-host %d: cap %d, err %v; want cap %d, ok %v", c.shard, c.cap, o.maxConnectionsPerHost, err, c.want, c.ok)
		}
	}
}
