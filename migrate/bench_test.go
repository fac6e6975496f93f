package migrate

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/providers/mem"
)

// BenchmarkCopyMem is the copier's own cost: 2,000 messages of 4 KiB from
// one in-memory store to another, with the checkpoint on disk.
func BenchmarkCopyMem(b *testing.B) {
	src := mem.New()
	body := make([]byte, 4000)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	for i := range 2000 {
		src.Put("INBOX", msg(i, string(body)), []string{`\Seen`}, testDate)
	}
	b.SetBytes(2000 * 4100)
	for b.Loop() {
		l, err := checkpoint.Open(filepath.Join(b.TempDir(), "bench.db"), checkpoint.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Migrate(context.Background(), Account{ID: "a", Source: src, Dest: mem.New()}, l, Options{QuietWait: time.Millisecond}); err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
}
