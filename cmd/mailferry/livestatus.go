package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mailferry/mailferry/migrate"
)

// A running migration holds bbolt's exclusive lock on the checkpoint, and
// bbolt's read-only mode needs a shared lock, so `mailferry status` cannot
// read the checkpoint while a run is under way. The run therefore keeps a
// small JSON view of its progress next to the checkpoint, replaced
// atomically every few seconds, which status shows instead. It is removed
// when the run ends; a stale one (after kill -9) is ignored because the
// checkpoint is then unlocked and read directly.

const liveStatusEvery = 2 * time.Second

func liveStatusPath(checkpoint string) string { return checkpoint + ".status.json" }

type liveView struct {
	PID      int                     `json:"pid"`
	Started  time.Time               `json:"started"`
	Updated  time.Time               `json:"updated"`
	Accounts map[string]*liveAccount `json:"accounts"`
}

type liveAccount struct {
	Source    string `json:"source_user"`
	Dest      string `json:"dest_user"`
	State     string `json:"state"` // waiting, running, or the final status
	Mailboxes int    `json:"mailboxes_done"`
	Appended  int64  `json:"appended"`
	Bytes     int64  `json:"bytes"`
	Failed    int    `json:"failed"`
	Error     string `json:"error,omitempty"`
}

type liveStatus struct {
	path string
	stop chan struct{}
	done sync.WaitGroup

	mu   sync.Mutex
	view liveView // Accounts keyed by accountLabel: no NUL in the JSON
	byID map[string]*liveAccount
}

func startLiveStatus(checkpoint string, accts []plannedAccount) *liveStatus {
	ls := &liveStatus{path: liveStatusPath(checkpoint), stop: make(chan struct{}), byID: map[string]*liveAccount{},
		view: liveView{PID: os.Getpid(), Started: time.Now().UTC(), Accounts: map[string]*liveAccount{}}}
	for i, p := range accts {
		state := "waiting"
		if p.invalid != "" {
			state = "invalid"
		}
		acc := &liveAccount{Source: p.SourceUser, Dest: p.DestUser, State: state, Error: p.invalid}
		if p.ID == "" { // a bad row without users
			ls.view.Accounts[fmt.Sprintf("line %d (%d)", p.line, i)] = acc
			continue
		}
		ls.byID[p.ID] = acc
		ls.view.Accounts[accountLabel(p.ID)] = acc
	}
	ls.done.Add(1)
	go func() {
		defer ls.done.Done()
		t := time.NewTicker(liveStatusEvery)
		defer t.Stop()
		for {
			ls.write()
			select {
			case <-ls.stop:
				return
			case <-t.C:
			}
		}
	}()
	return ls
}

func (ls *liveStatus) event(e migrate.Event) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	acc := ls.byID[e.ID]
	if acc == nil {
		return
	}
	switch e.Kind {
	case migrate.EventAccountStart:
		acc.State = "running"
	case migrate.EventAppended:
		acc.Appended += int64(e.Count)
		acc.Bytes += e.Bytes
	case migrate.EventMailboxDone:
		acc.Mailboxes++
		acc.Failed += e.Summary.Failed
	case migrate.EventAccountDone:
		acc.State, acc.Error = e.Account.Status, e.Account.Error
	}
}

func (ls *liveStatus) write() {
	ls.mu.Lock()
	ls.view.Updated = time.Now().UTC()
	b, err := json.Marshal(ls.view)
	ls.mu.Unlock()
	if err != nil {
		return
	}
	tmp := ls.path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, ls.path)
	}
}

// close stops the writer and removes the view: the checkpoint is the truth
// once the run has ended.
func (ls *liveStatus) close() {
	close(ls.stop)
	ls.done.Wait()
	os.Remove(ls.path)
}

func readLiveStatus(checkpoint string) (liveView, error) {
	var v liveView
	b, err := os.ReadFile(liveStatusPath(checkpoint))
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(b, &v)
}
