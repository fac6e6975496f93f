package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/mailferry/mailferry/migrate"
)

// liveProgress draws the terminal display: one line for the whole run
// (accounts finished and failed, messages, bytes, rate, ETA) and one per
// account in progress. An account that fails leaves a line above them,
// with its reason, for the rest of the run.
type liveProgress struct {
	p      *mpb.Progress
	total  *mpb.Bar
	start  time.Time
	counts *runCounts

	mu     sync.Mutex
	active map[string]*accountLine
}

type accountLine struct {
	bar             *mpb.Bar
	mailboxes, msgs atomic.Int64
	bytes           atomic.Int64
}

func newLiveProgress(w io.Writer, accounts int, counts *runCounts) *liveProgress {
	lp := &liveProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(120), mpb.WithAutoRefresh()), start: time.Now(), counts: counts, active: map[string]*accountLine{}}
	lp.total = lp.p.AddBar(int64(accounts),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			return runLine(counts.finished.Load(), int64(accounts), counts.failed.Load())
		}, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				return throughput(counts.messages.Load(), counts.bytes.Load(), time.Since(lp.start))
			}, decor.WCSyncSpace),
			decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_MMSS),
		),
		mpb.BarPriority(0),
	)
	return lp
}

// runLine is the start of the overall line: "accounts 12/50 done, 2 failed".
func runLine(finished, total, failed int64) string {
	out := fmt.Sprintf("accounts %d/%d done", finished, total)
	if failed > 0 {
		out += fmt.Sprintf(", %d failed", failed)
	}
	return out
}

// event updates the display; failure is why the account failed, "" if it
// did not.
func (lp *liveProgress) event(e migrate.Event, user, failure string) {
	lp.mu.Lock()
	switch e.Kind {
	case migrate.EventAccountStart:
		line := &accountLine{}
		line.bar = lp.p.New(0, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name("  "+cleanText(user), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%d mailboxes done, %d msgs, %s", line.mailboxes.Load(), line.msgs.Load(), humanBytes(line.bytes.Load()))
			})),
			mpb.BarPriority(1),
		)
		lp.active[e.ID] = line
	case migrate.EventAppended:
		if line := lp.active[e.ID]; line != nil {
			line.msgs.Add(int64(e.Count))
			line.bytes.Add(e.Bytes)
		}
	case migrate.EventMailboxDone:
		if line := lp.active[e.ID]; line != nil {
			line.mailboxes.Add(1)
		}
	case migrate.EventAccountDone:
		if line := lp.active[e.ID]; line != nil {
			line.bar.Abort(true)
			delete(lp.active, e.ID)
		}
		lp.total.Increment()
	}
	lp.mu.Unlock()
	if failure != "" {
		// Above the bars, where it stays: the failed accounts and why.
		fmt.Fprintf(lp.p, "FAILED %s: %s\n", cleanText(user), cleanText(failure))
	}
}

func (lp *liveProgress) close() {
	lp.mu.Lock()
	for id, line := range lp.active {
		line.bar.Abort(true)
		delete(lp.active, id)
	}
	lp.mu.Unlock()
	lp.total.Abort(false)
	lp.p.Wait()
}

// throughput is the overall line's middle: what was copied and how fast.
func throughput(msgs, bytes int64, elapsed time.Duration) string {
	out := fmt.Sprintf("%d msgs %s", msgs, humanBytes(bytes))
	if secs := elapsed.Seconds(); secs >= 1 {
		out += fmt.Sprintf(", %.0f msg/s %s/s", float64(msgs)/secs, humanBytes(int64(float64(bytes)/secs)))
	}
	return out
}
