package imap

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// Provider registers imaps://, imap:// (STARTTLS required) and
// imap+plain:// with the options that are IMAP's: how the server's
// certificate is checked, plain text to loopback only, timeouts, and the
// SASL mechanism for an OAuth token.
var Provider = providers.Registration{
	Name:    "imap",
	Schemes: []string{"imaps", "imap", "imap+plain"},
	Usage:   "imaps://user@host[:993], imap://user@host[:143] (STARTTLS), imap+plain://user@host:port",
	Options: []providers.Option{
		{Name: "insecure-skip-verify", Kind: providers.KindBool,
			Help:     "accept any TLS certificate (dangerous: only for test servers)",
			SideHelp: "accept any TLS certificate from the {side} (dangerous: only for test servers)"},
		{Name: "ca-file", Path: true,
			Help:     "PEM file of CA certificates to trust in addition to the system's, for both sides",
			SideHelp: "PEM file of CA certificates to trust for the {side} (instead of --ca-file), in addition to the system's"},
		{Name: "tls-fingerprint",
			SideHelp: "trust exactly the {side} certificate with this SHA-256 fingerprint (sha256:HEX, colons allowed): the way to trust a self-signed or Common-Name-only certificate; the error of a refused certificate prints the fingerprint it saw"},
		{Name: "insecure-plaintext", Kind: providers.KindBool,
			Help: "allow imap+plain:// to hosts other than loopback (passwords cross the network unencrypted)"},
		{Name: "timeout", Kind: providers.KindDuration, Default: "2m0s",
			Help: "close a connection on which nothing moved for this long (greeting, login, any command), and retry"},
		{Name: "connect-timeout", Kind: providers.KindDuration, Default: "30s",
			Help: "give up a TCP connect after this long, and retry"},
		{Name: "oauth-mech", Default: "auto",
			SideHelp: "SASL mechanism for the {side}'s OAuth token: auto (OAUTHBEARER if offered, else XOAUTH2), xoauth2 or oauthbearer"},
	},
	New: newEndpoint,
}

// endpoint is a server as the options say to reach it.
type endpoint struct {
	ep                   Endpoint
	tls                  *tls.Config
	mech                 string
	timeout, dialTimeout time.Duration
}

var (
	_ providers.Endpoint = (*endpoint)(nil)
	_ providers.Server   = (*endpoint)(nil)
)

func newEndpoint(location string, opts providers.Values) (providers.Endpoint, error) {
	ep, err := ParseURL(location)
	if err != nil {
		return nil, err
	}
	if ep.Security == Plain && !ep.IsLoopback() && !opts.Bool("insecure-plaintext") {
		return nil, fmt.Errorf("imap+plain:// to %s would send the password unencrypted; use imaps:// or imap://, or pass --insecure-plaintext", ep.Host)
	}
	e := &endpoint{ep: ep, timeout: opts.Duration("timeout"), dialTimeout: opts.Duration("connect-timeout")}
	if e.mech, err = parseOAuthMech(opts); err != nil {
		return nil, err
	}
	if e.tls, err = tlsConfig(ep.Host, opts); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *endpoint) ID() string   { return e.ep.String() }
func (e *endpoint) User() string { return e.ep.User }
func (e *endpoint) Addr() string { return e.ep.Addr() }
func (e *endpoint) Host() string { return e.ep.Host }
func (e *endpoint) Port() int    { return e.ep.Port }

// Open logs in to one account. A source is opened read-only by the
// protocol (EXAMINE, BODY.PEEK) whatever acct says.
func (e *endpoint) Open(ctx context.Context, acct providers.Account) (providers.Store, error) {
	user := acct.User
	if user == "" {
		user = e.ep.User
	}
	cfg := Config{
		Endpoint: e.ep, TLS: e.tls, User: user, Admin: acct.Admin, Password: acct.Password,
		MaxConns: acct.MaxConns, Host: acct.Host, Timeout: e.timeout, DialTimeout: e.dialTimeout,
		AppendLimit: acct.AppendLimit,
	}
	if acct.Token != nil {
		cfg.Token, cfg.OAuthMech, cfg.Password = acct.Token, e.mech, ""
	}
	return Open(ctx, cfg)
}

func parseOAuthMech(opts providers.Values) (string, error) {
	switch m := opts.String("oauth-mech"); strings.ToLower(strings.TrimSpace(m)) {
	case "", "auto":
		return OAuthAuto, nil
	case "xoauth2":
		return OAuthXOAUTH2, nil
	case "oauthbearer":
		return OAuthOAUTHBEARER, nil
	default:
		return "", fmt.Errorf("%s %q: want auto, xoauth2 or oauthbearer", opts.Flag("oauth-mech"), m)
	}
}

// tlsConfig builds the TLS settings of one side's server. The shared
// --ca-file and --insecure-skip-verify apply to both sides; a side's own
// flags override them, so that an in-house server with an odd certificate
// does not cost the check of the cloud's.
func tlsConfig(host string, opts providers.Values) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	pin, caFile := opts.String("tls-fingerprint"), opts.String("ca-file")
	// The shared skip-verify yields to the side's pin.
	insecure := opts.Bool("insecure-skip-verify") && (opts.FromSide("insecure-skip-verify") || pin == "")
	switch {
	case pin != "" && insecure:
		return nil, fmt.Errorf("%s and %s: give one (the fingerprint checks, the other accepts anything)", opts.Flag("tls-fingerprint"), opts.Flag("insecure-skip-verify"))
	case pin != "":
		want, err := parseFingerprint(pin)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %v", opts.Flag("tls-fingerprint"), pin, err)
		}
		// A pin replaces the chain and name checks: it trusts one
		// certificate, whoever signed it and whatever name it carries,
		// which is what a self-signed or Common-Name-only one needs.
		flag := opts.Flag("tls-fingerprint")
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			if got := fingerprint(cs.PeerCertificates[0]); got != want {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates,
					Err: fmt.Errorf("the certificate is %s, not the one pinned by %s (%s)", got, flag, want)}
			}
			return nil
		}
		return cfg, nil
	case insecure:
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", opts.Flag("ca-file"), err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// fingerprint is a certificate's SHA-256 in the form --*-tls-fingerprint
// takes.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// parseFingerprint reads sha256:HEX, upper or lower case, with or without
// the colons openssl prints ("openssl x509 -noout -fingerprint -sha256").
func parseFingerprint(s string) (string, error) {
	rest, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if !ok {
		if _, after, found := strings.Cut(strings.ToLower(s), "sha256 fingerprint="); found {
			rest, ok = after, true
		}
	}
	if !ok {
		return "", errors.New("want sha256:HEX")
	}
	b, err := hex.DecodeString(strings.ReplaceAll(rest, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return "", errors.New("want sha256: and 64 hexadecimal digits")
	}
	return "sha256:" + hex.EncodeToString(b), nil
}
