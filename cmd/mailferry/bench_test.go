package main

import (
	"os"
	"path/filepath"
	"testing"

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
