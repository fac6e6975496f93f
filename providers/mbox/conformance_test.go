package mbox_test

import (
	"testing"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
	"github.com/mailferry/mailferry/providers/providertest"
)

// openStore opens an mbox store and closes it with the test.
func openStore(t *testing.T, dir string, opts mbox.Options) *mbox.Store {
	t.Helper()
	st, err := mbox.Open(dir, opts)
	if err != nil {
		t.Fatalf("mbox.Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		for _, p := range st.Problems() {
			t.Logf("problem: %s", p)
		}
		st.Close()
	})
	return st
}

func TestConformance(t *testing.T) {
	dirs := map[providers.Store]string{}
	providertest.Run(t, providertest.Options{
		NewStore: func(t *testing.T) providers.Store {
			dir := t.TempDir()
			st := openStore(t, dir, mbox.Options{})
			dirs[st] = dir
			return st
		},
		Reopen: func(t *testing.T, s providers.Store) providers.Store {
			return openStore(t, dirs[s], mbox.Options{})
		},
		NoSubscribe:     true, // an mbox directory has no subscriptions
		NoSpecialUse:    true, // nowhere to keep a role; roles are guessed from names
		StreamsMessages: true,
	})
}
