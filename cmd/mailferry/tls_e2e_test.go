package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// testCert makes a certificate for a test server, PEM-encoded with its
// key: self-signed when ca is nil. Without ip it names its server only in
// the Common Name, as old in-house certificates do.
func testCert(t *testing.T, cn string, ip net.IP, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	parent, signer := tmpl, key
	if ca == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), cert, key
}

// TestPerSideTLS: an in-house source with a Common-Name-only, self-signed
// certificate and a destination with a certificate from a private CA. No
// CA file can make the first valid: the refusal says so and prints the
// certificate's fingerprint, and pinning it moves the mail while the
// destination's certificate is still checked, by its own CA file: trusting
// one side does not stop the other from being verified.
func TestPerSideTLS(t *testing.T) {
	cnPEM, cnKey, cnCert, _ := testCert(t, "127.0.0.1", nil, nil, nil)
	caPEM, _, ca, caKey := testCert(t, "mailferry test CA", nil, nil, nil)
	dstPEM, dstKey, _, _ := testCert(t, "new.example.test", net.ParseIP("127.0.0.1"), ca, caKey)
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}, TLS: &imaptest.TLS{CertPEM: cnPEM, KeyPEM: cnKey}})
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": dstPass}, TLS: &imaptest.TLS{CertPEM: dstPEM, KeyPEM: dstKey}})
	seed(t, src, "INBOX", 20, 1<<10, 8<<10, 71)
	dir := t.TempDir()
	cnFile := writeFile(t, dir, "inhouse.pem", string(cnPEM))
	caFile := writeFile(t, dir, "ca.pem", string(caPEM))
	sum := sha256.Sum256(cnCert.Raw)
	fp := "sha256:" + hex.EncodeToString(sum[:])
	ckpt := filepath.Join(dir, "tls.db")
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass, "MAILFERRY_TO_PASSWORD=" + dstPass}
	// Implicit TLS to the source, STARTTLS to the destination.
	run := func(extra ...string) result {
		return runBinary(t, env, append([]string{"migrate", "--from", "imaps://alice@" + src.TLSAddr(), "--to", "imap://alice@" + dst.Addr(),
			"--checkpoint", ckpt, "--output", "text"}, extra...)...)
	}

	r := run("--from-ca-file", cnFile, "--to-ca-file", caFile)
	if r.code != exitUsage || !strings.Contains(r.stderr, "legacy Common Name") || !strings.Contains(r.stderr, "--from-tls-fingerprint "+fp) ||
		!strings.Contains(r.stderr, "no CA file can make valid") {
		t.Fatalf("CN-only certificate with --from-ca-file: exit %d, want %d with the fingerprint %s to pin\n%s", r.code, exitUsage, fp, r.stderr)
	}
	if _, err := os.Stat(ckpt); !os.IsNotExist(err) {
		t.Errorf("a refused certificate left a checkpoint: %v", err)
	}
	// The fingerprint as the refusal printed it, and as openssl prints it.
	printed := regexp.MustCompile(`--from-tls-fingerprint (sha256:[0-9a-f]{64})`).FindStringSubmatch(r.stderr)[1]
	var opensslForm []string
	for i := 0; i < len(sum); i++ {
		opensslForm = append(opensslForm, strings.ToUpper(hex.EncodeToString(sum[i:i+1])))
	}
	for _, pin := range []string{printed, "SHA256 Fingerprint=" + strings.Join(opensslForm, ":")} {
		if r := run("--from-tls-fingerprint", pin, "--to-ca-file", caFile); r.code != exitOK {
			t.Fatalf("pinned %q: exit %d\n%s", pin, r.code, r.stderr)
		}
	}
	if got, want := lineSet(dst.Messages(t, "alice", "INBOX")), lineSet(src.Messages(t, "alice", "INBOX")); !slices.Equal(got, want) {
		t.Errorf("destination INBOX differs from the source: %d vs %d messages", len(got), len(want))
	}

	other := make([]byte, 32)
	r = run("--from-tls-fingerprint", "sha256:"+hex.EncodeToString(other), "--to-ca-file", caFile)
	if r.code != exitUsage || !strings.Contains(r.stderr, "not the one pinned") {
		t.Errorf("wrong pin: exit %d\n%s", r.code, r.stderr)
	}
	// The source pinned, the destination without its CA: the destination
	// is still checked, and refused.
	r = run("--from-tls-fingerprint", fp)
	if r.code != exitUsage || !strings.Contains(r.stderr, "the destination imap://127.0.0.1") || !strings.Contains(r.stderr, "not trusted") {
		t.Errorf("destination without its CA: exit %d, want it refused\n%s", r.code, r.stderr)
	}
	// Per-side insecure on the source only; the global flag as before.
	if r := run("--from-insecure-skip-verify", "--to-ca-file", caFile); r.code != exitOK {
		t.Errorf("--from-insecure-skip-verify: exit %d\n%s", r.code, r.stderr)
	}
	if r := run("--insecure-skip-verify"); r.code != exitOK {
		t.Errorf("--insecure-skip-verify: exit %d\n%s", r.code, r.stderr)
	}
	if r := run("--from-tls-fingerprint", fp, "--from-insecure-skip-verify"); r.code != exitUsage {
		t.Errorf("pin and insecure together: exit %d, want %d", r.code, exitUsage)
	}
}
