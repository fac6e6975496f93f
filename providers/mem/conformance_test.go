package mem_test

import (
	"testing"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
	"github.com/mailferry/mailferry/providers/providertest"
)

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Options{
		NewStore: func(*testing.T) providers.Store { return mem.New() },
		// No Reopen: the store lives in memory; reopening its mailboxes is all
		// there is.
	})
}

func TestReadOnly(t *testing.T) {
	opt := providertest.Options{NewStore: func(*testing.T) providers.Store { return mem.New() }}
	t.Run("ReadOnly", func(t *testing.T) { providertest.RunReadOnly(t, opt, providers.ReadOnly, false) })
	t.Run("DryRun", func(t *testing.T) {
		providertest.RunReadOnly(t, opt, func(s providers.Store) providers.Store { return providers.DryRun(s) }, true)
	})
}
