package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// The TLS flags are the imap provider's options (providers/imap,
// register.go); what is left here is explaining a refused certificate.

// fingerprint is a certificate's SHA-256 in the form the flags take.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
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
