package imap

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in   string
		want Endpoint
	}{
		{"imaps://alice@mail.example.com", Endpoint{TLS, "mail.example.com", 993, "alice"}},
		{"imap://alice@mail.example.com", Endpoint{StartTLS, "mail.example.com", 143, "alice"}},
		{"imap+plain://bob@127.0.0.1:10143", Endpoint{Plain, "127.0.0.1", 10143, "bob"}},
		{"imaps://alice%40example.com@outlook.office365.com:993", Endpoint{TLS, "outlook.office365.com", 993, "alice@example.com"}},
		{"IMAPS://[::1]:1993/", Endpoint{TLS, "::1", 1993, ""}},
		{"imaps://mail.example.com", Endpoint{TLS, "mail.example.com", 993, ""}},
	}
	for _, c := range cases {
		got, err := ParseURL(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	bad := []string{"", "mail.example.com", "pop3://a@b", "imaps://", "imaps://a@b:0", "imaps://a@b:99999", "imaps://a@b/INBOX", "imaps://a@b?x=1"}
	for _, in := range bad {
		if _, err := ParseURL(in); err == nil {
			t.Errorf("ParseURL(%q) succeeded", in)
		}
	}
	_, err := ParseURL("imaps://alice:hunter2@mail.example.com")
	if !errors.Is(err, ErrPasswordInURL) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("password in URL: %v", err)
	}
	_, err = ParseURL("ftp://alice:hunter2@mail.example.com")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error for a bad scheme shows the password: %v", err)
	}
}

func TestEndpointString(t *testing.T) {
	e, _ := ParseURL("imap://alice@Mail.Example.com:1143")
	if got := e.String(); got != "imap://Mail.Example.com:1143" {
		t.Errorf("String() = %q: the checkpoint must record no user", got)
	}
	if e.IsLoopback() {
		t.Errorf("a remote host counts as loopback")
	}
	for _, h := range []string{"127.0.0.1", "localhost", "::1", "127.5.5.5"} {
		if !(Endpoint{Host: h}).IsLoopback() {
			t.Errorf("%s is not loopback", h)
		}
	}
}

func TestNamespaceTranslation(t *testing.T) {
	slash := namespace{delim: '/'}
	dotPrefix := namespace{prefix: "INBOX.", delim: '.'}
	cases := []struct {
		ns                namespace
		native, canonical string
	}{
		{slash, "INBOX", "INBOX"},
		{slash, "inbox", "INBOX"},
		{slash, "Work/Projects/2024", "Work/Projects/2024"},
		{slash, "v1.2 release", "v1.2 release"},
		{dotPrefix, "INBOX", "INBOX"},
		{dotPrefix, "INBOX.Sent Items", "Sent Items"},
		{dotPrefix, "INBOX.Work.Projects.2024", "Work/Projects/2024"},
		{dotPrefix, "INBOX.a/b", "a∕b"},
		{dotPrefix, "INBOX.v1․2 release", "v1.2 release"},
	}
	for _, c := range cases {
		if got := c.ns.canonical(c.native); got != c.canonical {
			t.Errorf("%+v canonical(%q) = %q, want %q", c.ns, c.native, got, c.canonical)
		}
		if got := c.ns.native(c.canonical); !strings.EqualFold(got, c.native) {
			t.Errorf("%+v native(%q) = %q, want %q", c.ns, c.canonical, got, c.native)
		}
	}
	// A '.' inside a name from a '/' server survives on a '.' server.
	if got := dotPrefix.native("v1.2 release"); got != "INBOX.v1․2 release" {
		t.Errorf("native(v1.2 release) = %q", got)
	}
	// INBOX children are not nested twice under an INBOX. prefix.
	if got := dotPrefix.native("INBOX/Lists"); got != "INBOX.Lists" {
		t.Errorf("native(INBOX/Lists) = %q", got)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	cfg := Config{User: "alice", Password: "hunter2"}
	for _, s := range []string{
		strings.Join([]string{cfg.Password.String()}, ""),
		sprintf("%v", cfg), sprintf("%+v", cfg), sprintf("%#v", cfg), sprintf("%s", cfg.Password),
	} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password printed: %s", s)
		}
	}
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
