package providertest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// roundTripBoxes are the mailboxes of RoundTrip and what they hold.
var roundTripBoxes = []string{"INBOX", "Archive/2023", boxNonASCII}

// A Copier copies every mailbox of src into dst as a migration does, and
// fails t if it cannot. RoundTrip gives each pair twice, the second time
// with again set: then it must find nothing new to copy.
type Copier func(t *testing.T, src, dst providers.Store, again bool)

// RoundTrip is the end-to-end check of a provider, for the engine's tests
// to run (providertest depends on nothing but providers, so the copying
// is theirs): it fills a store of the provider, has cp carry it into a
// mem store and from there into a second store of the provider, and
// checks every message byte for byte with its flags and date after each
// copy and after each copy again.
func RoundTrip(t *testing.T, opt Options, cp Copier) {
	t.Helper()
	if opt.NewStore == nil {
		t.Fatal("providertest: Options.NewStore is required")
	}
	src := opt.NewStore(t)
	fx := fixtures(opt)
	for i, name := range roundTripBoxes {
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
		appendAll(t, opt, mb, msgs)
	}
	want := snapshot(t, opt, src)
	if len(want) != len(roundTripBoxes) {
		t.Fatalf("source has mailboxes %v, want %v", keys(want), roundTripBoxes)
	}

	there := mem.New()
	cp(t, src, there, false)
	if got := snapshot(t, opt, there); !sameSnapshot(t, "provider -> mem", got, want) {
		return
	}
	cp(t, src, there, true)
	sameSnapshot(t, "provider -> mem, again", snapshot(t, opt, there), want)

	back := opt.NewStore(t)
	cp(t, there, back, false)
	sameSnapshot(t, "mem -> provider", snapshot(t, opt, back), want)
	cp(t, there, back, true)
	sameSnapshot(t, "mem -> provider, again", snapshot(t, opt, back), want)
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
