package imap_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/memserver"
)

func startMem(t *testing.T) *memserver.Server {
	t.Helper()
	s, err := memserver.Start(map[string]string{"alice": "pw-alice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openStore(t *testing.T, s *memserver.Server) *imap.Store {
	t.Helper()
	st, err := imap.Open(context.Background(), imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: s.Port()},
		User:     "alice", Password: "pw-alice", Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("imap.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func snapshot(t *testing.T, s *memserver.Server, mailbox string) []string {
	t.Helper()
	snap, err := s.Snapshot("alice", mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func raw(i int, size int) []byte {
	body := strings.Repeat(fmt.Sprintf("line %d of a message body\r\n", i), size/28+1)
	return fmt.Appendf(nil, "From: x%d@example.org\r\nTo: alice@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\nDate: Tue, 1 Feb 2022 10:00:00 +0000\r\n\r\n%s", i, i, i, body)
}

func TestMigrateBetweenInMemoryServers(t *testing.T) {
	src, dst := startMem(t), startMem(t)
	date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	var inbox, work []memserver.Message
	for i := range 120 {
		size := 500
		if i%10 == 0 {
			size = 300 << 10 // larger than any single read buffer
		}
		inbox = append(inbox, memserver.Message{Raw: raw(i, size), Flags: []string{`\Seen`, "$label1"}, Date: date.Add(time.Duration(i) * time.Minute)})
	}
	inbox = append(inbox, inbox[5]) // an identical copy must arrive too
	for i := range 30 {
		work = append(work, memserver.Message{Raw: raw(1000+i, 200), Flags: []string{`\Flagged`}, Date: date})
	}
	if err := src.Seed("alice", "INBOX", inbox); err != nil {
		t.Fatal(err)
	}
	if err := src.Seed("alice", "Work/Clients/ACME", work); err != nil {
		t.Fatal(err)
	}
	if err := src.Seed("alice", "Empty", nil); err != nil {
		t.Fatal(err)
	}
	// One message is already on the destination.
	if err := dst.Seed("alice", "INBOX", inbox[7:8]); err != nil {
		t.Fatal(err)
	}

	ledger, err := checkpoint.Open(filepath.Join(t.TempDir(), "run.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	acct := migrate.Account{ID: "alice", Source: openStore(t, src), Dest: openStore(t, dst)}
	sum, err := migrate.Migrate(context.Background(), acct, ledger, migrate.Options{BatchSize: 40})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !sum.OK() {
		t.Fatalf("summary not OK: %+v", sum)
	}
	tot := sum.Totals()
	if tot.Seen != 151 || tot.Copied != 150 || tot.Duplicate != 1 {
		t.Errorf("totals %+v, want seen 151, copied 150, duplicate 1", tot)
	}
	for _, mb := range []string{"INBOX", "Work/Clients/ACME", "Empty"} {
		if got, want := snapshot(t, dst, mb), snapshot(t, src, mb); !slices.Equal(got, want) {
			t.Errorf("%s differs:\n got %d messages\nwant %d", mb, len(got), len(want))
		}
	}

	// A re-run finds nothing to do.
	sum, err = migrate.Migrate(context.Background(), acct, ledger, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tot := sum.Totals(); tot.New != 0 || tot.Copied != 150 {
		t.Errorf("re-run totals %+v, want nothing new", tot)
	}
	if got := len(snapshot(t, dst, "INBOX")); got != 121 {
		t.Errorf("destination INBOX has %d messages after re-run, want 121", got)
	}
}

func TestOpenRejectsWrongPassword(t *testing.T) {
	s := startMem(t)
	_, err := imap.Open(context.Background(), imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: s.Port()},
		User:     "alice", Password: "wrong-secret-123", Timeout: 5 * time.Second,
	})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "wrong-secret-123") {
		t.Errorf("error %q contains the password", err)
	}
	if !strings.Contains(err.Error(), "alice") {
		t.Errorf("error %q does not name the user", err)
	}
}
