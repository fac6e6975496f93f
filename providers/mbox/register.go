package mbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mailferry/mailferry/providers"
)

// Provider registers mbox:DIR, a directory of mbox files, one per
// mailbox.
var Provider = providers.Registration{
	Name:    "mbox",
	Schemes: []string{"mbox"},
	Usage:   "mbox:DIR",
	New:     newEndpoint,
}

// endpoint is a directory of mbox files (or, in a batch, a directory of
// them, one per account).
type endpoint struct{ root string }

var (
	_ providers.Endpoint = (*endpoint)(nil)
	_ providers.Local    = (*endpoint)(nil)
)

func newEndpoint(location string, _ providers.Values) (providers.Endpoint, error) {
	dir := location[len("mbox:"):]
	if dir == "" {
		return nil, errors.New("mbox: needs a directory (mbox:/path/to/mail)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &endpoint{root: abs}, nil
}

func (e *endpoint) ID() string   { return "mbox:" + e.root }
func (e *endpoint) User() string { return "" }
func (e *endpoint) Root() string { return e.root }

// Open opens the directory, or the account's own in a batch (DIR/<user>).
func (e *endpoint) Open(_ context.Context, acct providers.Account) (providers.Store, error) {
	dir := e.root
	if acct.PerUser {
		if acct.User == "" {
			return nil, fmt.Errorf("mbox:%s: a batch needs a user for each directory", e.root)
		}
		dir = filepath.Join(dir, acct.User)
	}
	return Open(dir, Options{ReadOnly: acct.ReadOnly, EmptyIfMissing: acct.EmptyIfMissing})
}
