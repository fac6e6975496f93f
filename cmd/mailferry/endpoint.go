package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/providers"
)

// endpointOptions are the connection flags shared by every command that
// talks to servers. The providers' own options (TLS, timeouts, … of
// imap) are flags too, made from the registry (see providerFlags).
type endpointOptions struct {
	from, to                 string
	fromPasswordFile         string
	toPasswordFile           string
	fromAdmin, toAdmin       string
	fromAdminPasswordFile    string
	toAdminPasswordFile      string
	maxConnectionsPerAccount int
	maxConnectionsPerHost    int
	fromTokenCmd, toTokenCmd string
	fromPreset, toPreset     string
	// hostCapOf explains a per-host cap that is a shard\'s share.
	hostCapOf string

	reg   *providers.Registry
	flags *pflag.FlagSet // where the providers' options are, nil: defaults
}

func (o *endpointOptions) addFlags(f *pflag.FlagSet) {
	forms := o.registry().Usage()
	f.StringVar(&o.from, "from", "", "source: "+forms)
	f.StringVar(&o.to, "to", "", "destination, same forms as --from (mbox:DIR and maildir:DIR export; with --batch, one DIR/<user> tree per account)")
	f.StringVar(&o.fromPasswordFile, "from-password-file", "", "read the source password from this file (default: $MAILFERRY_FROM_PASSWORD)")
	f.StringVar(&o.toPasswordFile, "to-password-file", "", "read the destination password from this file (default: $MAILFERRY_TO_PASSWORD)")
	f.StringVar(&o.fromAdmin, "from-admin", "", "log in to the source as this admin acting as the user (SASL PLAIN authzid); password from $MAILFERRY_FROM_ADMIN_PASSWORD or --from-admin-password-file")
	f.StringVar(&o.toAdmin, "to-admin", "", "log in to the destination as this admin acting as the user; password from $MAILFERRY_TO_ADMIN_PASSWORD or --to-admin-password-file")
	f.StringVar(&o.fromAdminPasswordFile, "from-admin-password-file", "", "read the source admin password from this file")
	f.StringVar(&o.toAdminPasswordFile, "to-admin-password-file", "", "read the destination admin password from this file")
	f.IntVar(&o.maxConnectionsPerAccount, "max-connections-per-account", 10, "cap on connections per account and side")
	f.IntVar(&o.maxConnectionsPerHost, "max-connections-per-host", 0, "cap on connections to one server across all accounts (0: no cap beyond the per-account one)")
	f.StringVar(&o.fromTokenCmd, "from-oauth-token-cmd", "", "log in to the source with OAuth 2.0: this shell command prints an access token for the user given as $1 (and $MAILFERRY_OAUTH_USER); re-run when the token expires or is refused (default token: $MAILFERRY_FROM_OAUTH_TOKEN)")
	f.StringVar(&o.toTokenCmd, "to-oauth-token-cmd", "", "log in to the destination with OAuth 2.0, as --from-oauth-token-cmd (default token: $MAILFERRY_TO_OAUTH_TOKEN)")
	f.StringVar(&o.fromPreset, "from-preset", "", "the source is this kind of server: "+strings.Join(presetNames(), ", ")+" (host, connection cap, message size limit, folders that are not mail; see docs/clouds.md)")
	f.StringVar(&o.toPreset, "to-preset", "", "the destination is this kind of server, as --from-preset")
	o.providerFlags(f)
}

// side is one end of the move, resolved from the flags and environment.
type side struct {
	name     string // "source" or "destination", for messages
	needed   bool   // the command logs in to this side
	reg      *providers.Registration
	ep       providers.Endpoint
	admin    string
	password providers.Secret
	host     *providers.HostLimiter
	opts     *endpointOptions
	preset   preset
	// tokens, when set, log in with OAuth 2.0 instead of a password.
	tokens *tokens
	// perUser: a directory side of a batch, one DIR/<user> tree per
	// account.
	perUser bool
	dryRun  bool // write nothing through this side, not even a directory
}

// id names the side for the checkpoint: scheme://host:port, mbox:DIR or
// maildir:DIR with its options.
func (s *side) id() string {
	if s.ep == nil {
		return ""
	}
	return s.ep.ID()
}

// user is the account named in the URL ("" for a batch or a directory).
func (s *side) user() string {
	if s.ep == nil {
		return ""
	}
	return s.ep.User()
}

// local reports whether the side is a directory on this machine (mbox,
// maildir): nothing logs in to it.
func (s *side) local() bool {
	_, ok := s.ep.(providers.Local)
	return ok
}

// open logs in to (or opens) one account on this side.
func (s *side) open(ctx context.Context, user string, password providers.Secret) (providers.Store, error) {
	return s.ep.Open(ctx, s.account(user, password))
}

// account says which account to open and how: the source is only ever
// read (no sidecar, no file is written), nor is the destination of a dry
// run, even its directory.
func (s *side) account(user string, password providers.Secret) providers.Account {
	acct := providers.Account{
		User: user, Admin: s.admin, Password: password, Host: s.host, MaxConns: s.maxConns(),
		AppendLimit: s.preset.appendLimit, PerUser: s.perUser,
		ReadOnly: s.name == "source" || s.dryRun, EmptyIfMissing: s.dryRun && s.name != "source",
	}
	if s.tokens != nil {
		acct.Token, acct.Password = s.tokens.forUser(user), ""
	}
	return acct
}

// sides says which ends a command logs in to.
type sides struct{ source, dest bool }

var bothSides = sides{true, true}

// resolveSides parses both ends; every command names both, so that the
// checkpoint can check it is the same move. userPasswords says the users'
// passwords come from the environment or files (no batch file); an admin's
// password always does. A side the command does not log in to needs none.
func (a *app) resolveSides(o *endpointOptions, userPasswords bool, need sides) (src, dst *side, err error) {
	fromPreset, err := lookupPreset(o.fromPreset)
	if err != nil {
		return nil, nil, err
	}
	toPreset, err := lookupPreset(o.toPreset)
	if err != nil {
		return nil, nil, err
	}
	from, to := fromPreset.presetURL(o.from), toPreset.presetURL(o.to)
	if from == "" || to == "" {
		return nil, nil, usagef("--from and --to are required (or --from-preset / --to-preset with a known host)")
	}
	if src, err = a.resolveSide(o, sideFlags{name: "source", url: from, env: "FROM", admin: o.fromAdmin, passFile: o.fromPasswordFile,
		adminPassFile: o.fromAdminPasswordFile, tokenCmd: o.fromTokenCmd, preset: fromPreset}, userPasswords && need.source, need.source); err != nil {
		return nil, nil, err
	}
	if dst, err = a.resolveSide(o, sideFlags{name: "destination", url: to, env: "TO", admin: o.toAdmin, passFile: o.toPasswordFile,
		adminPassFile: o.toAdminPasswordFile, tokenCmd: o.toTokenCmd, preset: toPreset}, userPasswords && need.dest, need.dest); err != nil {
		return nil, nil, err
	}
	// One limiter per server. When both sides are the same server, they
	// share its backoff, and each side gets half of its cap: a copy holds
	// a source connection while it opens the destination, so a shared cap
	// could be filled by copies all waiting for their second connection.
	n := o.maxConnectionsPerHost
	switch {
	case src.id() != dst.id():
		src.host, dst.host = providers.NewHostLimiter(n), providers.NewHostLimiter(n)
	case need.source && need.dest:
		if n == 1 {
			return nil, nil, usagef("--max-connections-per-host 1%s: both sides are %s, and copying needs a connection to each at once; allow at least 2", o.hostCapOf, src.id())
		}
		src.host = providers.NewHostLimiter(n / 2)
		dst.host = src.host.WithCap(n - n/2)
	default:
		src.host = providers.NewHostLimiter(n)
		dst.host = src.host
	}
	return src, dst, nil
}

// sideFlags are the flags of one side.
type sideFlags struct {
	name, url, env                 string
	admin, passFile, adminPassFile string
	tokenCmd                       string
	preset                         preset
}

func (a *app) resolveSide(o *endpointOptions, sf sideFlags, userPassword, needed bool) (*side, error) {
	name, rawURL, env, admin := sf.name, sf.url, sf.env, sf.admin
	fixedToken := a.getenv("MAILFERRY_" + env + "_OAUTH_TOKEN")
	oauth := a.hasOAuth(sf.tokenCmd, env)
	reg, err := o.registry().Lookup(rawURL)
	if err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	ep, err := reg.New(rawURL, o.values(reg, flagSide(name)))
	if err != nil {
		return nil, &usageError{fmt.Errorf("%s: %w", name, err)}
	}
	s := &side{name: name, reg: reg, ep: ep, opts: o, needed: needed, preset: sf.preset}
	if s.local() {
		if oauth && sf.tokenCmd != "" {
			return nil, usagef("%s: --%s-oauth-token-cmd is for servers that log in, not %s:", name, flagSide(name), reg.Name)
		}
		s.perUser = !userPassword && needed
		return s, nil
	}
	s.admin = admin
	switch {
	case !needed:
	case oauth && admin != "":
		return nil, usagef("%s: --%s-admin and OAuth: an OAuth token logs in as the user itself (Microsoft 365 and Google grant an application access to every mailbox); drop --%s-admin", name, flagSide(name), flagSide(name))
	case oauth:
		s.tokens = &tokens{side: name, env: "MAILFERRY_" + env + "_OAUTH_TOKEN", fixed: providers.Secret(fixedToken), command: sf.tokenCmd,
			now: time.Now, users: map[string]*userToken{}}
	case admin != "":
		s.password, err = a.secret(name+" admin", "MAILFERRY_"+env+"_ADMIN_PASSWORD", sf.adminPassFile)
	case userPassword:
		s.password, err = a.secret(name, "MAILFERRY_"+env+"_PASSWORD", sf.passFile)
		if err != nil && sf.preset.oauthOnly {
			return nil, usagef("%s: %s takes no password over IMAP: give --%s-oauth-token-cmd or $MAILFERRY_%s_OAUTH_TOKEN (see docs/clouds.md)", name, sf.preset.name, flagSide(name), env)
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// hasOAuth reports whether a side logs in with OAuth: a token command or a
// token in MAILFERRY_<env>_OAUTH_TOKEN.
func (a *app) hasOAuth(tokenCmd, env string) bool {
	return tokenCmd != "" || a.getenv("MAILFERRY_"+env+"_OAUTH_TOKEN") != ""
}

// secret reads a password from a file or the environment, never from a
// flag value, which any user could read from ps.
func (a *app) secret(what, env, file string) (providers.Secret, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usagef("%s password file: %v", what, err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", usagef("%s password file %s is empty", what, file)
		}
		return providers.Secret(pw), nil
	}
	if pw := a.getenv(env); pw != "" {
		return providers.Secret(pw), nil
	}
	return "", usagef("no %s password: set %s or use the matching --*-password-file flag", what, env)
}

// maxConns is the per-account cap: the flag's, within the preset's.
func (s *side) maxConns() int {
	n := s.opts.maxConnectionsPerAccount
	if p := s.preset.maxConns; p > 0 && (n <= 0 || n > p) {
		return p
	}
	return n
}

// hasLogin reports whether every account of this side can log in without
// a password of its own.
func (s *side) hasLogin() bool { return s.admin != "" || s.tokens != nil || s.local() }
