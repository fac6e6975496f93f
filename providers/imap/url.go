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

// redactURL hides anything between "://" and "@" after a colon.
func redactURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return s
	}
	if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
		return s[:i+3] + rest[:c] + ":REDACTED" + rest[at:]
	}
	return s
}
