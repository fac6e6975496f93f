package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// sideTLS is how one side's server certificate is checked. The global
// --ca-file and --insecure-skip-verify apply to both sides; the per-side
// flags override them for their side, so that an in-house server with an
// odd certificate does not cost the check of the cloud's.
type sideTLS struct {
	caFile      string
	fingerprint string // sha256:HEX, pins exactly one certificate
	insecure    bool
}

func (o *endpointOptions) addTLSFlags(f *pflag.FlagSet) {
	for _, s := range []struct {
		flag, name string
		t          *sideTLS
	}{{"from", "source", &o.fromTLS}, {"to", "destination", &o.toTLS}} {
		f.StringVar(&s.t.caFile, s.flag+"-ca-file", "", "PEM file of CA certificates to trust for the "+s.name+" (instead of --ca-file), in addition to the system's")
		f.StringVar(&s.t.fingerprint, s.flag+"-tls-fingerprint", "", "trust exactly the "+s.name+" certificate with this SHA-256 fingerprint (sha256:HEX, colons allowed): the way to trust a self-signed or Common-Name-only certificate; the error of a refused certificate prints the fingerprint it saw")
		f.BoolVar(&s.t.insecure, s.flag+"-insecure-skip-verify", false, "accept any TLS certificate from the "+s.name+" (dangerous: only for test servers)")
	}
}

// tlsFor resolves the settings of one side, "from" or "to".
func (o *endpointOptions) tlsFor(flag string) sideTLS {
	t := o.fromTLS
	if flag == "to" {
		t = o.toTLS
	}
	if t.caFile == "" {
		t.caFile = o.caFile
	}
	t.insecure = t.insecure || o.insecureSkipVerify && t.fingerprint == ""
	return t
}

// tlsConfig builds the TLS settings of one side's server.
func tlsConfig(host, flag string, t sideTLS) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	switch {
	case t.fingerprint != "" && t.insecure:
		return nil, usagef("--%s-tls-fingerprint and --%s-insecure-skip-verify: give one (the fingerprint checks, the other accepts anything)", flag, flag)
	case t.fingerprint != "":
		want, err := parseFingerprint(t.fingerprint)
		if err != nil {
			return nil, usagef("--%s-tls-fingerprint %q: %v", flag, t.fingerprint, err)
		}
		// A pin replaces the chain and name checks: it trusts one
		// certificate, whoever signed it and whatever name it carries,
		// which is what a self-signed or Common-Name-only one needs.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			if got := fingerprint(cs.PeerCertificates[0]); got != want {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates,
					Err: fmt.Errorf("the certificate is %s, not the one pinned by --%s-tls-fingerprint (%s)", got, flag, want)}
			}
			return nil
		}
		return cfg, nil
	case t.insecure:
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, usagef("--%s-ca-file: %v", flag, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("CA file %s holds no PEM certificate", t.caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// fingerprint is a certificate's SHA-256 in the form the flags take.
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

// certificateHint explains a refused server certificate and the ways to
// trust it, with the fingerprint seen, or "" if err is not about one.
func certificateHint(err error, flag string) string {
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || len(cve.UnverifiedCertificates) == 0 {
		return ""
	}
	leaf := cve.UnverifiedCertificates[0]
	fp := fingerprint(leaf)
	var b strings.Builder
	fmt.Fprintf(&b, "the server's certificate (subject %q, issuer %q, valid until %s) is not trusted: %v\n",
		leaf.Subject.String(), leaf.Issuer.String(), leaf.NotAfter.Format("2006-01-02"), cve.Err)
	fmt.Fprintf(&b, "  its fingerprint is %s; if that is your server's certificate (compare: openssl x509 -noout -fingerprint -sha256 -in CERT.pem),\n", fp)
	fmt.Fprintf(&b, "  trust exactly it with --%s-tls-fingerprint %s", flag, fp)
	var hostErr x509.HostnameError
	switch {
	case len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 && (errors.As(cve.Err, &hostErr) || strings.Contains(cve.Err.Error(), "Common Name")):
		fmt.Fprintf(&b, "\n  (it names its server only in the Common Name, without a SAN, which no CA file can make valid: the pin is the way)")
	default:
		fmt.Fprintf(&b, ", or trust the CA that signed it with --%s-ca-file CA.pem", flag)
	}
	return b.String()
}
