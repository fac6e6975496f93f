// Package imap is the providers.Store adapter for IMAP servers, built on
// github.com/emersion/go-imap/v2.
package imap

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Security is how a connection is protected.
type Security int

const (
	// TLS is implicit TLS (imaps://, port 993).
	TLS Security = iota
	// StartTLS upgrades a plain connection and refuses to go on without
	// (imap://, port 143).
	StartTLS
	// Plain is no protection at all (imap+plain://), for loopback tests or
	// with --insecure-plaintext.
	Plain
)

func (s Security) scheme() string {
	switch s {
	case StartTLS:
		return "imap"
	case Plain:
		return "imap+plain"
	}
	return "imaps"
}

// Endpoint is a parsed server URL. It never holds a password.
type Endpoint struct {
	Security Security
	Host     string
	Port     int
	User     string // "" for a batch URL, where users come from the batch file
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// String gives the URL back, without the user: what a checkpoint records to
// recognise the same servers, whoever the users are.
func (e Endpoint) String() string { return e.Security.scheme() + "://" + e.Addr() }

// IsLoopback reports whether the host is this machine.
func (e Endpoint) IsLoopback() bool {
	if strings.EqualFold(e.Host, "localhost") {
		return true
	}
	ip := net.ParseIP(e.Host)
	return ip != nil && ip.IsLoopback()
}

// ErrPasswordInURL refuses URLs that carry a password: it would show in ps
// and in shell history.
var ErrPasswordInURL = errors.New("a password in the URL would be visible to every user of this machine; use MAILFERRY_FROM_PASSWORD / MAILFERRY_TO_PASSWORD or --from-password-file / --to-password-file")

// ParseURL parses imaps://user@host:port, imap://… and imap+plain://…. A
// user name containing @ is written percent-encoded (user%40example.com).
func ParseURL(s string) (Endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse echoes the input, which may hold a password.
		return Endpoint{}, fmt.Errorf("invalid server URL %q", redactURL(s))
	}
	var e Endpoint
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		e.Security, e.Port = TLS, 993
	case "imap":
		e.Security, e.Port = StartTLS, 143
	case "imap+plain":
		e.Security, e.Port = Plain, 143
	case "":
		return Endpoint{}, fmt.Errorf("server URL %q has no scheme: use imaps://, imap:// or imap+plain://", redactURL(s))
	default:
		return Endpoint{}, fmt.Errorf("server URL %q: unknown scheme %q: use imaps://, imap:// or imap+plain://", redactURL(s), u.Scheme)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return Endpoint{}, ErrPasswordInURL
		}
		e.User = u.User.Username()
	}
	e.Host = u.Hostname()
	if e.Host == "" {
		return Endpoint{}, fmt.Errorf("server URL %q has no host", redactURL(s))
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return Endpoint{}, fmt.Errorf("server URL %q: bad port %q", redactURL(s), p)
		}
		e.Port = n
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, fmt.Errorf("server URL %q: a path, query or fragment means nothing here", redactURL(s))
	}
	return e, nil
}

// redactURL hides anything between the first ':' of the user information
// and the last '@'. The user information starts after "scheme://", or at
// the start when there is no such scheme: "//alice:pw@host",
// "alice:pw@host" and "imaps:alice:pw@host" must not show pw either.
func redactURL(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 && i < at && isScheme(s[:i]) {
		start = i + 3
	}
	if c := strings.IndexByte(s[start:at], ':'); c >= 0 {
		return s[:start+c] + ":REDACTED" + s[at:]
	}
	return s
}

// isScheme reports whether s is a URL scheme (RFC 3986 section 3.1).
func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
