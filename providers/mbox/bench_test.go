package mbox_test

import (
	"context"
	"io"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
)

// synthetic generates message n of the benchmark, size bytes, without
// holding it: a header, then text lines, some of which mbox must quote.
type synthetic struct {
	n, size, off int64
	buf, left    []byte
	line         int64
}

func newSynthetic(n, size int64) *synthetic {
	s := &synthetic{n: n, size: size}
	s.buf = append(s.buf, "From: sender"...)
	s.buf = strconv.AppendInt(s.buf, n%977, 10)
	s.buf = append(s.buf, "@example.org\r\nTo: alice@example.org\r\nSubject: benchmark message "...)
	s.buf = strconv.AppendInt(s.buf, n, 10)
	s.buf = append(s.buf, "\r\nMessage-ID: <bench."...)
	s.buf = strconv.AppendInt(s.buf, n, 10)
	s.buf = append(s.buf, "@example.org>\r\nDate: Tue, 1 Feb 2022 10:00:00 +0000\r\n\r\n"...)
	s.left = s.buf
	return s
}

func (s *synthetic) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && s.off < s.size {
		if len(s.left) == 0 {
			s.line++
			s.buf = s.buf[:0]
			if s.line%50 == 0 {
				s.buf = append(s.buf, "From "...)
			}
			s.buf = strconv.AppendInt(s.buf, s.line, 10)
			s.buf = append(s.buf, " Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"...)
			s.left = s.buf
		}
		c := copy(p[n:], s.left[:min(int64(len(s.left)), s.size-s.off)])
		s.left = s.left[c:]
		n += c
		s.off += int64(c)
	}
	return n, nil
}

// sizeOf spreads message sizes from 2 KB to 1 MB, most of them small.
func sizeOf(n int64) int64 {
	switch {
	case n%100 == 0:
		return 1 << 20
	case n%10 == 0:
		return 200 << 10
	}
	return 2<<10 + n*7919%(60<<10)
}

// heapPeak samples HeapInuse until stop is closed and returns the highest.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var high uint64
		var ms runtime.MemStats
		t := time.NewTicker(25 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			high = max(high, ms.HeapInuse)
			select {
			case <-stop:
				out <- high
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// BenchmarkMbox1GB writes a synthetic mbox of about 1 GB through the store,
// then reads it as a new process would: index it, List every message (the
// dedup keys read each header) and Fetch every body. Run it alone:
//
//	go test -run '^$' -bench BenchmarkMbox1GB -benchtime 1x ./providers/mbox/
func BenchmarkMbox1GB(b *testing.B) {
	const total = 1 << 30
	ctx := context.Background()
	for b.Loop() {
		dir := b.TempDir()
		st, err := mbox.Open(dir, mbox.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.CreateMailbox(ctx, "big", ""); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		stop := make(chan struct{})
		peak := heapPeak(stop)
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		start := time.Now()
		mb, err := st.Mailbox(ctx, "big")
		if err != nil {
			b.Fatal(err)
		}
		var written, n int64
		var refused atomic.Int64
		for written < total {
			size := sizeOf(n)
			info := providers.MessageInfo{Flags: []string{`\Seen`}, InternalDate: time.Unix(1_600_000_000+n*60, 0)}
			if err := mb.Append(ctx, newSynthetic(n, size), size, info, func(_ providers.UID, err error) {
				if err != nil {
					refused.Add(1)
				}
			}); err != nil {
				b.Fatal(err)
			}
			written += size
			n++
		}
		if err := mb.Close(); err != nil {
			b.Fatal(err)
		}
		writeTime := time.Since(start)

		start = time.Now()
		rd, err := mbox.Open(dir, mbox.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		rmb, err := rd.Mailbox(ctx, "big")
		if err != nil {
			b.Fatal(err)
		}
		indexTime := time.Since(start)
		start = time.Now()
		var listed int64
		if err := rmb.List(ctx, nil, func(m providers.MessageInfo) error {
			listed++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		listTime := time.Since(start)
		start = time.Now()
		var read, fetched int64
		if err := rmb.Fetch(ctx, nil, func(_ providers.UID, size int64, body io.Reader) error {
			c, err := io.Copy(io.Discard, body)
			read += c
			fetched++
			return err
		}); err != nil {
			b.Fatal(err)
		}
		fetchTime := time.Since(start)
		rmb.Close()
		close(stop)
		high := <-peak
		var after runtime.MemStats
		runtime.ReadMemStats(&after)

		if refused.Load() != 0 || listed != n || fetched != n || read != written {
			b.Fatalf("wrote %d messages (%d bytes, %d refused), listed %d, fetched %d (%d bytes)", n, written, refused.Load(), listed, fetched, read)
		}
		mbps := func(d time.Duration) float64 { return float64(written) / (1 << 20) / d.Seconds() }
		b.ReportMetric(float64(n), "messages")
		b.ReportMetric(mbps(writeTime), "write-MB/s")
		b.ReportMetric(mbps(indexTime), "index-MB/s")
		b.ReportMetric(listTime.Seconds(), "list-s")
		b.ReportMetric(mbps(fetchTime), "fetch-MB/s")
		b.ReportMetric(float64(high-min(high, before.HeapInuse))/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "alloc-MB")
		b.Logf("%d messages, %d MB: write %v, index %v, list %v, fetch %v", n, written>>20, writeTime, indexTime, listTime, fetchTime)
	}
}
