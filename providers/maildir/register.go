package maildir

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mailferry/mailferry/providers"
)

// Provider registers maildir:DIR[:LAYOUT=fs][:UTF-8]: a Maildir or
// Maildir++ tree on this machine, its options in the location as
// Dovecot's mail_location writes them.
var Provider = providers.Registration{
	Name:    "maildir",
	Schemes: []string{"maildir"},
	Usage:   "maildir:DIR[:LAYOUT=fs][:UTF-8]",
	New:     newEndpoint,
}

// endpoint is a tree (or, in a batch, a directory of trees, one per
// account).
type endpoint struct {
	root     string // absolute
	location string // the options as given (":LAYOUT=fs"), for the ID
	opts     Options
}

var (
	_ providers.Endpoint = (*endpoint)(nil)
	_ providers.Local    = (*endpoint)(nil)
)

func newEndpoint(location string, _ providers.Values) (providers.Endpoint, error) {
	rest := location[len("maildir:"):]
	dir, opts, err := ParseLocation(rest)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &endpoint{root: abs, location: strings.TrimPrefix(rest, dir), opts: opts}, nil
}

func (e *endpoint) ID() string   { return "maildir:" + e.root + e.location }
func (e *endpoint) User() string { return "" }
func (e *endpoint) Root() string { return e.root }

// Open opens the tree, or the account's own in a batch (DIR/<user>).
func (e *endpoint) Open(_ context.Context, acct providers.Account) (providers.Store, error) {
	dir := e.root
	if acct.PerUser {
		if acct.User == "" {
			return nil, fmt.Errorf("maildir:%s: a batch needs a user for each tree", e.root)
		}
		dir = filepath.Join(dir, acct.User)
	}
	opts := e.opts
	opts.ReadOnly, opts.EmptyIfMissing = acct.ReadOnly, acct.EmptyIfMissing
	return Open(dir, opts)
}
