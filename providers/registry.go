package providers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Registration is how a provider makes itself known: the location schemes
// it takes, its options, and how it opens a location (rclone's fs.RegInfo,
// restic's backend locations). A provider package exports one; the CLI
// lists every Registration in one place (cmd/mailferry/providers.go) and
// knows no provider otherwise: it turns the options into flags, parses
// --from and --to by scheme and asks the provider for the Endpoint.
type Registration struct {
	// Name is the provider's name ("imap", "maildir"), for messages.
	Name string
	// Schemes are the location schemes it takes, lower case: "imaps" for
	// imaps://…, "mbox" for mbox:DIR.
	Schemes []string
	// Usage shows the forms of a location, for --from's help:
	// "mbox:DIR".
	Usage string
	// Options are the provider's settings; the CLI offers each as a flag
	// (see Option) and a config-file key of the same name.
	Options []Option
	// New checks a location (the whole --from or --to value, scheme
	// included) and the provider's option values for one side, and
	// returns the Endpoint it names. Its errors are the user's (a bad
	// location, a bad option value): the CLI reports them as usage
	// errors, so they must not quote a secret.
	New func(location string, opts Values) (Endpoint, error)
}

// OptionKind is the type of an option's value.
type OptionKind uint8

const (
	KindString OptionKind = iota
	KindBool
	KindDuration
)

// Option is one setting of a provider. The CLI offers it as --NAME for
// both sides when Help is set, and as --from-NAME and --to-NAME for one
// side when SideHelp is set (both: the side's flag wins over --NAME).
type Option struct {
	Name    string
	Kind    OptionKind
	Default string // as the flag would take it; "" for none (false, 0)
	// Help is the help of --NAME, "" for no such flag. SideHelp is the
	// help of --from-NAME and --to-NAME, "" for none; "{side}" in it
	// reads "source" or "destination".
	Help, SideHelp string
	// Path: the value is a file or directory, which a config file gives
	// relative to itself.
	Path bool
}

// Values are the values of a provider's options for one side, as the CLI
// resolved them: the side's flag, else the shared flag, else the default.
type Values struct {
	vals  map[string]string
	flags map[string]string // the flag each value came from, "--from-ca-file"
	side  map[string]bool   // the value is the side's own
}

// Set records an option's value and the flag it came from; fromSide says
// it is the side's own flag (--from-NAME), not the shared one.
func (v *Values) Set(name, value, flag string, fromSide bool) {
	if v.vals == nil {
		v.vals, v.flags, v.side = map[string]string{}, map[string]string{}, map[string]bool{}
	}
	v.vals[name], v.flags[name], v.side[name] = value, flag, fromSide
}

// String is the value of option name, "" if unset.
func (v Values) String(name string) string { return v.vals[name] }

// Bool is the value of a KindBool option.
func (v Values) Bool(name string) bool {
	b, _ := strconv.ParseBool(v.vals[name])
	return b
}

// Duration is the value of a KindDuration option, 0 if unset or bad.
func (v Values) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(v.vals[name])
	return d
}

// Flag names the flag option name's value came from ("--from-ca-file"),
// for messages; "--NAME" if none was recorded.
func (v Values) Flag(name string) string {
	if f, ok := v.flags[name]; ok {
		return f
	}
	return "--" + name
}

// FromSide reports whether the value came from the side's own flag.
func (v Values) FromSide(name string) bool { return v.side[name] }

// Endpoint is one side of a migration as its provider understood the
// location: a server or a directory, not yet any account on it.
type Endpoint interface {
	// ID names the endpoint for the checkpoint and the output, without
	// user or secret: imaps://host:993, mbox:/abs/dir.
	ID() string
	// User is the account the location names, "" if none (a batch, a
	// directory).
	User() string
	// Open opens one account of the endpoint.
	Open(ctx context.Context, acct Account) (Store, error)
}

// Server is implemented by endpoints that are a network server: their
// accounts log in, and the CLI shares one HostLimiter per server.
type Server interface {
	// Addr is host:port.
	Addr() string
	// Host and Port as the location gave them.
	Host() string
	Port() int
}

// Local is implemented by endpoints that are a directory on this
// machine: nothing logs in; a batch keeps one tree per account under it.
type Local interface {
	// Root is the absolute directory.
	Root() string
}

// Account says which account of an endpoint to open, how to log in, and
// what the caller will do with it. A provider uses what applies to it.
type Account struct {
	// User is the account; "" means the one the location names.
	User string
	// Admin, when set, logs in as Admin acting as User with Password
	// (Admin's); else Password is User's. Token, when set, logs in with
	// an OAuth 2.0 bearer token instead of a password.
	Admin    string
	Password Secret
	Token    TokenSource
	// ReadOnly: nothing may be written through the store, not even a
	// sidecar file (a source, a dry run's destination). EmptyIfMissing:
	// a destination that does not exist yet reads as empty, for a dry
	// run that must not create it.
	ReadOnly, EmptyIfMissing bool
	// PerUser: the location holds one account per user (a directory
	// endpoint in a batch: DIR/<user>).
	PerUser bool
	// Host, if set, is shared by every Store of the same server.
	Host *HostLimiter
	// MaxConns caps the account's connections (0: the provider's
	// default). AppendLimit is the largest message the destination takes
	// beyond what the store itself says (a cloud's documented limit); 0:
	// none.
	MaxConns    int
	AppendLimit int64
}

// TokenSource gives OAuth 2.0 access tokens for one account (Microsoft 365
// and Google Workspace refuse passwords over IMAP; they take a bearer
// token).
type TokenSource interface {
	// Token returns a token to log in with. refused, when not empty, is a
	// token the server just turned down: the source must not hand it out
	// again (it fetches a new one or fails).
	Token(ctx context.Context, refused Secret) (Secret, error)
}

// Registry is the providers a program knows, by scheme. It is built once,
// from a list (NewRegistry), and handed to whatever parses locations: no
// package-level state.
type Registry struct {
	regs     []Registration
	byScheme map[string]*Registration
}

// NewRegistry lists regs. Two providers claiming one scheme, or two
// options of one name with different meanings, is a programming error
// and panics.
func NewRegistry(regs ...Registration) *Registry {
	r := &Registry{byScheme: map[string]*Registration{}}
	r.regs = slices.Clone(regs)
	opts := map[string]Option{}
	for i := range r.regs {
		reg := &r.regs[i]
		if reg.New == nil || len(reg.Schemes) == 0 {
			panic(fmt.Sprintf("providers: registration %q needs New and a scheme", reg.Name))
		}
		for _, s := range reg.Schemes {
			if _, dup := r.byScheme[s]; dup {
				panic(fmt.Sprintf("providers: scheme %q registered twice", s))
			}
			r.byScheme[s] = reg
		}
		for _, o := range reg.Options {
			if prev, dup := opts[o.Name]; dup && prev != o {
				panic(fmt.Sprintf("providers: option %q registered twice, differently", o.Name))
			}
			opts[o.Name] = o
		}
	}
	return r
}

// Registrations lists the providers in the order given.
func (r *Registry) Registrations() []Registration { return slices.Clone(r.regs) }

// Options lists every provider's options once, in registration order.
func (r *Registry) Options() []Option {
	var out []Option
	for _, reg := range r.regs {
		for _, o := range reg.Options {
			if !slices.ContainsFunc(out, func(p Option) bool { return p.Name == o.Name }) {
				out = append(out, o)
			}
		}
	}
	return out
}

// Usage lists the location forms of every provider: "a, b, or c".
func (r *Registry) Usage() string {
	var forms []string
	for _, reg := range r.regs {
		if reg.Usage != "" {
			forms = append(forms, reg.Usage)
		}
	}
	if len(forms) < 2 {
		return strings.Join(forms, "")
	}
	return strings.Join(forms[:len(forms)-1], ", ") + ", or " + forms[len(forms)-1]
}

// Scheme returns the scheme of a location, lower case: what comes before
// "://" or ":". ok is false when there is none.
func Scheme(location string) (scheme string, ok bool) {
	i := strings.IndexByte(location, ':')
	if i <= 0 {
		return "", false
	}
	for j, c := range location[:i] {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", false
		}
	}
	return strings.ToLower(location[:i]), true
}

// Lookup returns the provider of a location's scheme.
func (r *Registry) Lookup(location string) (*Registration, error) {
	scheme, ok := Scheme(location)
	if !ok {
		return nil, fmt.Errorf("the location has no scheme: use %s", r.Usage())
	}
	reg, ok := r.byScheme[scheme]
	if !ok {
		return nil, fmt.Errorf("unknown scheme %q: use %s", scheme, r.Usage())
	}
	return reg, nil
}
