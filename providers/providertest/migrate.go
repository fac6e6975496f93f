package providertest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// migrateBoxes are the mailboxes of the end-to-end step and what they hold.
var migrateBoxes = []string{"INBOX", "Archive/2023", boxNonASCII}

// testMigrate copies a store of this provider into a mem store and back into
// a second store of this provider with migrate.Migrate, as a real run does,
// and checks every message byte for byte with its flags and date; a second
// run through the same checkpoint must do nothing.
func (s *suite) testMigrate(t *testing.T) {
	src := s.opt.NewStore(t)
	fx := fixtures(s.opt)
	for i, name := range migrateBoxes {
		err := src.CreateMailbox(ctx(t), name, "")
		if err != nil && !(name == "INBOX" && errors.Is(err, providers.ErrMailboxExists)) {
			t.Fatalf("CreateMailbox(%q): %v", name, err)
		}
		mb := open(t, src, name)
		// Different mailboxes get different slices, and one gets them all.
		msgs := fx
		if i < 2 {
			msgs = fx[i*len(fx)/3 : (i+2)*len(fx)/3]
		}
		appendAll(t, s.opt, mb, msgs)
	}
	want := snapshot(t, s.opt, src)
	if len(want) != len(migrateBoxes) {
		t.Fatalf("source has mailboxes %v, want %v", keys(want), migrateBoxes)
	}

	dir := t.TempDir()
	there := mem.New()
	run(t, src, there, filepath.Join(dir, "there.db"), false)
	if got := snapshot(t, s.opt, there); !sameSnapshot(t, "provider -> mem", got, want) {
		return
	}
	run(t, src, there, filepath.Join(dir, "there.db"), true)
	sameSnapshot(t, "provider -> mem, re-run", snapshot(t, s.opt, there), want)

	back := s.opt.NewStore(t)
	run(t, there, back, filepath.Join(dir, "back.db"), false)
	sameSnapshot(t, "mem -> provider", snapshot(t, s.opt, back), want)
	run(t, there, back, filepath.Join(dir, "back.db"), true)
	sameSnapshot(t, "mem -> provider, re-run", snapshot(t, s.opt, back), want)
}

// run migrates src into dst through the checkpoint at ledger. With rerun
// it must find nothing new; otherwise every message must be new.
func run(t *testing.T, src, dst providers.Store, ledger string, rerun bool) {
	t.Helper()
	l, err := checkpoint.Open(ledger, checkpoint.Options{})
	if err != nil {
		t.Fatalf("checkpoint.Open: %v", err)
	}
	defer l.Close()
	sum, err := migrate.Migrate(ctx(t), migrate.Account{ID: "providertest", SourceUser: "a", DestUser: "a", Source: src, Dest: dst},
		l, migrate.Options{Retries: -1})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !sum.OK() {
		t.Fatalf("Migrate not OK: %+v", sum)
	}
	tot := sum.Totals()
	if tot.Failed != 0 || tot.Pending != 0 || tot.Duplicate != 0 {
		t.Errorf("Migrate totals %+v: want every message copied, none duplicate, failed or pending", tot)
	}
	switch {
	case rerun && tot.New != 0:
		t.Errorf("re-run copied %d new messages, want 0", tot.New)
	case !rerun && (tot.New != tot.Seen || tot.Seen == 0):
		t.Errorf("first run copied %d of %d messages", tot.New, tot.Seen)
	}
}

// snapshot reads every mailbox of st through the providers interface: per
// mailbox, one sorted line per message with its sha256, size, flags and
// internal date.
func snapshot(t *testing.T, opt Options, st providers.Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name := range mailboxes(t, st) {
		mb := open(t, st, name)
		infos := map[providers.UID]providers.MessageInfo{}
		for _, m := range listAll(t, mb, nil) {
			infos[m.UID] = m
		}
		var lines []string
		for _, f := range fetchAll(t, mb, nil) {
			m := infos[f.uid]
			lines = append(lines, fmt.Sprintf("%x %d %q %s", sha256.Sum256(f.raw), m.Size, opt.normFlags(m.Flags), m.InternalDate.UTC().Format(time.RFC3339)))
		}
		if len(lines) == 0 && name == "INBOX" {
			continue // an empty INBOX is what every store starts with
		}
		slices.Sort(lines)
		out[name] = lines
	}
	return out
}

func sameSnapshot(t *testing.T, what string, got, want map[string][]string) bool {
	t.Helper()
	ok := true
	for name, w := range want {
		g, present := got[name]
		if !present {
			t.Errorf("%s: mailbox %q missing", what, name)
			ok = false
			continue
		}
		if !slices.Equal(g, w) {
			t.Errorf("%s: mailbox %q differs:\n got %d: %s\nwant %d: %s", what, name, len(g), strings.Join(g, "\n      "), len(w), strings.Join(w, "\n      "))
			ok = false
		}
	}
	for name := range got {
		if _, present := want[name]; !present {
			t.Errorf("%s: unexpected mailbox %q", what, name)
			ok = false
		}
	}
	return ok
}
