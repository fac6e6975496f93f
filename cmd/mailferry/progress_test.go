package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
)

func TestThroughput(t *testing.T) {
	if got := throughput(300, 3<<20, 2*time.Second); got != "300 msgs 3.0 MiB, 150 msg/s 1.5 MiB/s" {
		t.Errorf("throughput = %q", got)
	}
	if got := throughput(5, 100, 100*time.Millisecond); strings.Contains(got, "/s") {
		t.Errorf("a rate after 0.1 s means nothing, got %q", got)
	}
}

// TestLiveProgressDraws: the terminal display shows the overall counts
// (finished and failed), one line per account in progress, drops the
// account when it ends, and keeps a line for each failed account with its
// reason.
func TestLiveProgressDraws(t *testing.T) {
	var buf bytes.Buffer
	var counts runCounts
	lp := newLiveProgress(&buf, 2, &counts)
	lp.event(migrate.Event{Kind: migrate.EventAccountStart, ID: "a"}, "alice", "")
	counts.messages.Add(1)
	counts.bytes.Add(2048)
	lp.event(migrate.Event{Kind: migrate.EventAppended, ID: "a", Count: 1, Bytes: 2048}, "alice", "")
	lp.event(migrate.Event{Kind: migrate.EventMailboxDone, ID: "a"}, "alice", "")
	time.Sleep(300 * time.Millisecond) // mpb redraws every 150 ms
	counts.finished.Add(1)
	lp.event(migrate.Event{Kind: migrate.EventAccountDone, ID: "a", Account: &migrate.AccountSummary{}}, "alice", "")
	lp.event(migrate.Event{Kind: migrate.EventAccountStart, ID: "b"}, "bob", "")
	counts.finished.Add(1)
	counts.failed.Add(1)
	lp.event(migrate.Event{Kind: migrate.EventAccountDone, ID: "b", Account: &migrate.AccountSummary{}}, "bob", "destination: [AUTHENTICATIONFAILED] no\x00such user")
	time.Sleep(300 * time.Millisecond)
	lp.close()
	out := buf.String()
	for _, want := range []string{"alice", "1 mailboxes done, 1 msgs", "1 msgs 2.0 KiB", "accounts 2/2 done, 1 failed",
		`FAILED bob: destination: [AUTHENTICATIONFAILED] no\x00such user`} {
		if !strings.Contains(out, want) {
			t.Errorf("display lacks %q:\n%s", want, out)
		}
	}
}
