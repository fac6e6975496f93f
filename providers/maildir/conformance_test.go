package maildir_test

import (
	"testing"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/maildir"
	"github.com/mailferry/mailferry/providers/providertest"
)

// openStore opens a maildir store and logs its problems with the test.
func openStore(t *testing.T, dir string, opts maildir.Options) *maildir.Store {
	t.Helper()
	st, err := maildir.Open(dir, opts)
	if err != nil {
		t.Fatalf("maildir.Open(%s): %v", dir, err)
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
	for _, layout := range []maildir.Layout{maildir.LayoutMaildirPP, maildir.LayoutFS} {
		t.Run(layout.String(), func(t *testing.T) {
			dirs := map[providers.Store]string{}
			opts := maildir.Options{Layout: layout}
			providertest.Run(t, providertest.Options{
				NewStore: func(t *testing.T) providers.Store {
					dir := t.TempDir()
					st := openStore(t, dir, opts)
					dirs[st] = dir
					return st
				},
				Reopen: func(t *testing.T, s providers.Store) providers.Store {
					// Detected, not told: the tree says its layout.
					return openStore(t, dirs[s], maildir.Options{})
				},
				NoSpecialUse:    true, // nowhere to keep a role; roles are guessed from names
				StreamsMessages: true,
			})
		})
	}
}

// TestReadOnly runs the read-only suite over a Maildir++ tree: the
// wrappers of a dry run write nothing to it, not even a folder.
func TestReadOnly(t *testing.T) {
	opt := providertest.Options{
		NewStore:     func(t *testing.T) providers.Store { return openStore(t, t.TempDir(), maildir.Options{}) },
		NoSpecialUse: true,
	}
	t.Run("ReadOnly", func(t *testing.T) { providertest.RunReadOnly(t, opt, providers.ReadOnly, false) })
	t.Run("DryRun", func(t *testing.T) {
		providertest.RunReadOnly(t, opt, func(s providers.Store) providers.Store { return providers.DryRun(s) }, true)
	})
}
