package imap_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/memserver"
)

// BenchmarkCopyMemServer is the copier over IMAP on go-imap's in-memory
// server: 1,000 messages of about 4 KB, one op a migration onto a fresh
// destination account. It measures the client's own cost (FETCH, APPEND,
// the ledger) with no disk behind the server.
func BenchmarkCopyMemServer(b *testing.B) {
	users := map[string]string{"src": "pw"}
	for i := range 64 {
		users[fmt.Sprintf("dst%d", i)] = "pw"
	}
	srv, err := memserver.Start(users)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var msgs []memserver.Message
	for i := range 1000 {
		msgs = append(msgs, memserver.Message{Raw: raw(i, 4000), Flags: []string{`\Seen`}, Date: time.Date(2024, 1, 1, 0, 0, i%60, 0, time.UTC)})
	}
	if err := srv.Seed("src", "INBOX", msgs); err != nil {
		b.Fatal(err)
	}
	open := func(user string) *imap.Store {
		st, err := imap.Open(context.Background(), imap.Config{Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: srv.Port()},
			User: user, Password: "pw", Timeout: 30 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	src := open("src")
	defer src.Close()
	b.SetBytes(1000 * 4100)
	n := 0
	for b.Loop() {
		if n == 64 {
			b.Skip("more iterations than destination accounts; use -benchtime 64x or less")
		}
		dst := open(fmt.Sprintf("dst%d", n))
		n++
		l, err := checkpoint.Open(filepath.Join(b.TempDir(), "bench.db"), checkpoint.Options{})
		if err != nil {
			b.Fatal(err)
		}
		sum, err := migrate.Migrate(context.Background(), migrate.Account{ID: "a", Source: src, Dest: dst}, l, migrate.Options{})
		if err != nil || sum.Totals().New != 1000 {
			b.Fatalf("migrate: %v, %+v", err, sum.Totals())
		}
		l.Close()
		dst.Close()
	}
}
