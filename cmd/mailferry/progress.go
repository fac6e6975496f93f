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
// (accounts, messages, bytes, rate, ETA) and one per account in progress.
type liveProgress struct {
	p     *mpb.Progress
	total *mpb.Bar
	start time.Time
	msgs  atomic.Int64
	bytes atomic.Int64

	mu     sync.Mutex
	active map[string]*accountLine
}

type accountLine struct {
	bar             *mpb.Bar
	mailboxes, msgs atomic.Int64
	bytes           atomic.Int64
}

func newLiveProgress(w io.Writer, accounts int) *liveProgress {
	lp := &liveProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithAutoRefresh()), start: time.Now(), active: map[string]*accountLine{}}
	lp.total = lp.p.AddBar(int64(accounts),
		mpb.PrependDecorators(decor.Name("accounts "), decor.CountersNoUnit("%d/%d")),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				return throughput(lp.msgs.Load(), lp.bytes.Load(), time.Since(lp.start))
			}, decor.WCSyncSpace),
			decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_MMSS),
		),
		mpb.BarPriority(0),
	)
	return lp
}

func (lp *liveProgress) event(e migrate.Event, user string) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	switch e.Kind {
	case migrate.EventAccountStart:
		line := &accountLine{}
		line.bar = lp.p.New(0, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name("  "+user, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%d mailboxes done, %d msgs, %s", line.mailboxes.Load(), line.msgs.Load(), humanBytes(line.bytes.Load()))
			})),
			mpb.BarPriority(1),
		)
		lp.active[e.ID] = line
	case migrate.EventAppended:
		lp.msgs.Add(int64(e.Count))
		lp.bytes.Add(e.Bytes)
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
