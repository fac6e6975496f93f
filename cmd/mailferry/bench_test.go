package main

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// BenchmarkMigrate5000 times the mailferry binary migrating one mailbox of
// 5,000 messages (log-uniform 2–32 KiB, about 56 MB) between two loopback
// Dovecots, each iteration onto a fresh destination, then a re-run with
// nothing new. It reports msg/s, MB/s, the child's peak RSS and the re-run
// time. Figures and how to run it: docs/benchmarks.md.
//
// MAILFERRY_PROFILE_DIR=dir adds CPU, heap and block profiles of the first
// iteration to dir.
func BenchmarkMigrate5000(b *testing.B) {
	src := imaptest.StartDovecot(b, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	_, size := seed(b, src, "INBOX", 4999, 2<<10, 32<<10, 42)
	workers := os.Getenv("MAILFERRY_BENCH_WORKERS")
	var wall, rerun float64
	var rss int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		p := newPairWith(b, src, imaptest.DovecotOptions{})
		rep := filepath.Join(b.TempDir(), "report.json")
		args := []string{"--log-level", "warn", "--report", rep}
		if workers != "" {
			args = append(args, "--mailbox-workers", workers)
		}
		args = append(args, strings.Fields(os.Getenv("MAILFERRY_BENCH_ARGS"))...)
		if dir := os.Getenv("MAILFERRY_PROFILE_DIR"); dir != "" && i == 0 {
			args = append(args, "--cpuprofile", filepath.Join(dir, "cpu.pprof"),
				"--memprofile", filepath.Join(dir, "heap.pprof"), "--blockprofile", filepath.Join(dir, "block.pprof"))
		}
		b.StartTimer()
		r := p.migrate(b, nil, args...)
		b.StopTimer()
		if r.code != 0 {
			b.Fatalf("migrate exited %d: %s", r.code, r.stderr)
		}
		again := p.migrate(b, nil, "--log-level", "warn")
		if again.code != 0 {
			b.Fatalf("re-run exited %d: %s", again.code, again.stderr)
		}
		wall += r.wall.Seconds()
		rerun += again.wall.Seconds()
		rss = max(rss, readReport(b, rep).PeakRSS)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(5000*n/wall, "msg/s")
	b.ReportMetric(float64(size)/1e6*n/wall, "MB/s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(rerun/n*1000, "rerun-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBatch1100 runs a batch of 1,100 users with 20 small messages
// each (log-uniform 2–8 KiB) between two loopback Dovecots, 16 accounts at
// a time with at most 40 connections per server, then the re-run with
// nothing new, and reports both walls, users per minute, the child's peak
// RSS and the peak connections held to each server. Two shapes: all mail
// in INBOX (6 mailboxes: INBOX and Dovecot's special-use ones), and mail
// spread over the 13 mailboxes of an ordinary user (imaptest.LabFolders).
// Seeding takes about a minute and is not timed. Figures:
// docs/benchmarks.md. MAILFERRY_BENCH_USERS overrides the 1,100,
// MAILFERRY_BENCH_CONCURRENCY the 16.
func BenchmarkBatch1100(b *testing.B) {
	b.Run("6-mailboxes", func(b *testing.B) { benchBatch(b, false) })
	b.Run("13-mailboxes", func(b *testing.B) { benchBatch(b, true) })
}

func benchBatch(b *testing.B, lab bool) {
	n, conc := 1100, "16"
	if v := os.Getenv("MAILFERRY_BENCH_USERS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("MAILFERRY_BENCH_CONCURRENCY"); v != "" {
		conc = v
	}
	users := map[string]string{}
	var csv strings.Builder
	csv.WriteString("source_user,source_password,dest_user,dest_password\n")
	for i := range n {
		u := fmt.Sprintf("user%04d", i)
		users[u] = "pw-" + u
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", u, users[u], u, users[u])
	}
	src := imaptest.StartDovecot(b, imaptest.DovecotOptions{Users: users})
	for i := range n {
		u := fmt.Sprintf("user%04d", i)
		rng := rand.New(rand.NewPCG(uint64(i), 11))
		boxes := map[string][]imaptest.SeedMessage{"INBOX": nil}
		spread := make([]string, 20)
		for j := range spread {
			spread[j] = "INBOX"
		}
		if lab {
			for _, f := range imaptest.LabFolders {
				boxes[f.Name] = nil
			}
			spread = imaptest.LabSpread(20, rng)
		}
		for j, box := range spread {
			size := int(2048 * math.Pow(4, rng.Float64()))
			boxes[box] = append(boxes[box], imaptest.SeedMessage{Raw: genMessage(rng, box, j, size), Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 3, 1, 0, j, 0, 0, time.UTC)})
		}
		src.SeedAccount(b, u, boxes)
	}
	dir := b.TempDir()
	csvPath := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		dst := imaptest.StartDovecot(b, imaptest.DovecotOptions{Users: users})
		args := func(rep string) []string {
			return []string{"migrate", "--batch", csvPath, "--from", "imap+plain://" + src.Addr(), "--to", "imap+plain://" + dst.Addr(),
				"--checkpoint", filepath.Join(dir, fmt.Sprintf("run%d.db", i)), "--concurrency", conc, "--max-connections-per-host", "40",
				"--output", "json", "--log-level", "warn", "--report", rep}
		}
		rep := filepath.Join(dir, fmt.Sprintf("report%d.json", i))
		b.StartTimer()
		r := runBinary(b, nil, args(rep)...)
		b.StopTimer()
		if r.code != 0 {
			b.Fatalf("batch exited %d: %s", r.code, r.stderr)
		}
		report := readReport(b, rep)
		ok := 0
		for _, s := range report.Accounts {
			if s.Status == "ok" && s.Totals().Copied == 20 {
				ok++
			}
		}
		if ok != n {
			b.Fatalf("%d of %d users fully copied", ok, n)
		}
		again := runBinary(b, nil, args(rep+".again")...)
		newAgain := 0
		for _, s := range readReport(b, rep+".again").Accounts {
			newAgain += s.Totals().New
		}
		if again.code != 0 || newAgain != 0 {
			b.Fatalf("re-run exited %d or copied something: %s", again.code, again.stderr)
		}
		b.ReportMetric(float64(n)/r.wall.Minutes(), "users/min")
		b.ReportMetric(r.wall.Seconds(), "wall-s")
		b.ReportMetric(again.wall.Seconds(), "rerun-s")
		b.ReportMetric(float64(report.PeakRSS)/(1<<20), "peak-RSS-MiB")
		peak := 0
		for _, p := range report.PeakConnections {
			peak = max(peak, p)
		}
		b.ReportMetric(float64(peak), "peak-conns/host")
		b.ReportMetric(0, "ns/op")
		b.StartTimer()
	}
}

// BenchmarkMbox1GB generates a 1 GiB mbox file (messages of log-uniform
// size 2 KiB–1 MiB), then times the mailferry binary importing it into an
// empty Dovecot and exporting that account back to a new mbox directory.
// It reports MB/s and the child's peak RSS for each direction. Figures:
// docs/benchmarks.md. MAILFERRY_BENCH_MBOX_MB changes the size.
func BenchmarkMbox1GB(b *testing.B) {
	mb := int64(1024)
	if v := os.Getenv("MAILFERRY_BENCH_MBOX_MB"); v != "" {
		n, _ := strconv.Atoi(v)
		mb = int64(n)
	}
	total := mb << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "in")
	if err := os.MkdirAll(src, 0o700); err != nil {
		b.Fatal(err)
	}
	count := writeBigMbox(b, filepath.Join(src, "INBOX.mbox"), total)
	env := []string{"MAILFERRY_TO_PASSWORD=" + dstPass, "MAILFERRY_FROM_PASSWORD=" + dstPass}
	for i := range b.N {
		b.StopTimer()
		d := imaptest.StartDovecot(b, imaptest.DovecotOptions{Users: map[string]string{"alice": dstPass}})
		imp := filepath.Join(dir, fmt.Sprintf("import%d.json", i))
		b.StartTimer()
		r := runBinary(b, env, "migrate", "--from", "mbox:"+src, "--to", "imap+plain://alice@"+d.Addr(),
			"--checkpoint", filepath.Join(dir, fmt.Sprintf("import%d.db", i)), "--output", "json", "--report", imp, "--log-level", "warn")
		b.StopTimer()
		if r.code != 0 {
			b.Fatalf("import exit %d: %s", r.code, r.stderr)
		}
		if n := readReport(b, imp).Accounts[0].Totals().Copied; n != count {
			b.Fatalf("imported %d of %d messages", n, count)
		}
		exp := filepath.Join(dir, fmt.Sprintf("export%d.json", i))
		b.StartTimer()
		r2 := runBinary(b, env, "migrate", "--from", "imap+plain://alice@"+d.Addr(), "--to", "mbox:"+filepath.Join(dir, fmt.Sprintf("out%d", i)),
			"--checkpoint", filepath.Join(dir, fmt.Sprintf("export%d.db", i)), "--output", "json", "--report", exp, "--log-level", "warn")
		b.StopTimer()
		if r2.code != 0 {
			b.Fatalf("export exit %d: %s", r2.code, r2.stderr)
		}
		if n := readReport(b, exp).Accounts[0].Totals().Copied; n != count {
			b.Fatalf("exported %d of %d messages", n, count)
		}
		b.ReportMetric(float64(total)/1e6/r.wall.Seconds(), "import-MB/s")
		b.ReportMetric(float64(readReport(b, imp).PeakRSS)/(1<<20), "import-peak-RSS-MiB")
		b.ReportMetric(float64(total)/1e6/r2.wall.Seconds(), "export-MB/s")
		b.ReportMetric(float64(readReport(b, exp).PeakRSS)/(1<<20), "export-peak-RSS-MiB")
		b.ReportMetric(float64(count), "messages")
		b.ReportMetric(0, "ns/op")
		os.RemoveAll(filepath.Join(dir, fmt.Sprintf("out%d", i)))
	}
}

// writeBigMbox streams an mbox file of about total bytes and returns the
// number of messages in it.
func writeBigMbox(b *testing.B, path string, total int64) int {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 1))
	line := make([]byte, 76)
	var written int64
	n := 0
	for written < total {
		size := int64(2048 * math.Pow(512, rng.Float64()))
		hdr := fmt.Sprintf("From MAILER-DAEMON Tue Feb  1 10:00:00 2022\nFrom: s%d@example.org\nTo: alice@example.org\nSubject: big mbox %d\nMessage-ID: <big.%d@example.org>\nDate: Tue, 1 Feb 2022 10:00:00 +0000\n\n", n%97, n, n)
		w.WriteString(hdr)
		written += int64(len(hdr))
		for body := int64(0); body < size; body += int64(len(line)) + 1 {
			for j := range line {
				line[j] = byte('a' + rng.IntN(26))
			}
			w.Write(line)
			w.WriteByte('\n')
		}
		w.WriteByte('\n')
		written += size + 1
		n++
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return n
}
