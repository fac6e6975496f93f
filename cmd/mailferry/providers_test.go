package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/providers"
)

// testEndpoint resolves a location through the binary's registry with
// every option at its default.
func testEndpoint(t *testing.T, location string) providers.Endpoint {
	t.Helper()
	var o endpointOptions
	reg, err := o.registry().Lookup(location)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := reg.New(location, o.values(reg, "from"))
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// fakeEndpoint is a provider the CLI was never told about.
type fakeEndpoint struct {
	providers.Endpoint
	loc  string
	opts providers.Values
}

func (e fakeEndpoint) ID() string   { return e.loc }
func (e fakeEndpoint) User() string { return "" }
func (e fakeEndpoint) Root() string { return "/fake" }

// TestProviderIsOneRegistration: a provider added to the registry gets its
// scheme parsed, its options as flags (shared and per side, the side's
// winning) and config keys, with no other CLI edit; the existing flags
// are the imap provider's options.
func TestProviderIsOneRegistration(t *testing.T) {
	fake := providers.Registration{
		Name: "fake", Schemes: []string{"fake"}, Usage: "fake:WHERE",
		Options: []providers.Option{
			{Name: "fake-depth", Default: "3", Help: "how deep, both sides", SideHelp: "how deep on the {side}"},
			{Name: "fake-file", Path: true, SideHelp: "a file for the {side}"},
		},
		New: func(loc string, v providers.Values) (providers.Endpoint, error) {
			return fakeEndpoint{loc: loc, opts: v}, nil
		},
	}
	o := endpointOptions{reg: providers.NewRegistry(append(newRegistry().Registrations(), fake)...)}
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.addFlags(f)
	for _, name := range []string{"fake-depth", "from-fake-depth", "to-fake-depth", "from-fake-file", "to-fake-file",
		"ca-file", "from-ca-file", "to-ca-file", "from-tls-fingerprint", "to-tls-fingerprint", "insecure-skip-verify",
		"from-insecure-skip-verify", "to-insecure-skip-verify", "insecure-plaintext", "timeout", "connect-timeout",
		"from-oauth-mech", "to-oauth-mech"} {
		if f.Lookup(name) == nil {
			t.Errorf("no --%s", name)
		}
	}
	if !strings.Contains(f.Lookup("from").Usage, "fake:WHERE") {
		t.Errorf("--from's help does not show the new form: %s", f.Lookup("from").Usage)
	}
	if err := f.Parse([]string{"--from", "fake:a", "--to", "fake:b", "--fake-depth", "5", "--to-fake-depth", "7"}); err != nil {
		t.Fatal(err)
	}
	a := &app{getenv: func(string) string { return "" }}
	src, dst, err := a.resolveSides(&o, false, bothSides)
	if err != nil {
		t.Fatal(err)
	}
	sv, dv := src.ep.(fakeEndpoint).opts, dst.ep.(fakeEndpoint).opts
	if sv.String("fake-depth") != "5" || dv.String("fake-depth") != "7" || !dv.FromSide("fake-depth") || sv.FromSide("fake-depth") {
		t.Errorf("depth: source %q, destination %q", sv.String("fake-depth"), dv.String("fake-depth"))
	}
	if got := sv.Flag("fake-file"); got != "--from-fake-file" {
		t.Errorf("Flag of an unset per-side option: %q", got)
	}
	if !src.local() || src.id() != "fake:a" {
		t.Errorf("source %q local %v", src.id(), src.local())
	}
	if _, _, err := a.resolveSides(&endpointOptions{from: "nosuch:x", to: "fake:b", reg: o.reg}, false, bothSides); err == nil ||
		!strings.Contains(err.Error(), `unknown scheme "nosuch"`) || !strings.Contains(err.Error(), "fake:WHERE") {
		t.Errorf("unknown scheme: %v", err)
	}
	if !slices.Contains(providerPaths(), "from-ca-file") || !slices.Contains(providerPaths(), "ca-file") {
		t.Errorf("config paths from the registry: %v", providerPaths())
	}
}
