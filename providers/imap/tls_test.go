package imap_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/memserver"
)

// testCA makes a CA and a server certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T) (serverCfg *tls.Config, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailferry test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, roots
}

func TestTLS(t *testing.T) {
	serverCfg, roots := testCA(t)
	users := map[string]string{"alice": "pw-alice"}
	implicit, err := memserver.StartTLS(users, serverCfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer implicit.Close()
	starttls, err := memserver.StartTLS(users, serverCfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer starttls.Close()
	plainOnly := startMem(t)

	open := func(sec imap.Security, port int, cfg *tls.Config) error {
		st, err := imap.Open(context.Background(), imap.Config{
			Endpoint: imap.Endpoint{Security: sec, Host: "127.0.0.1", Port: port},
			TLS:      cfg, User: "alice", Password: "pw-alice", Timeout: 5 * time.Second,
		})
		if err == nil {
			st.Close()
		}
		return err
	}
	trusted := &tls.Config{ServerName: "127.0.0.1", RootCAs: roots}
	if err := open(imap.TLS, implicit.Port(), trusted); err != nil {
		t.Errorf("imaps with the CA trusted: %v", err)
	}
	if err := open(imap.StartTLS, starttls.Port(), trusted); err != nil {
		t.Errorf("STARTTLS with the CA trusted: %v", err)
	}
	err = open(imap.TLS, implicit.Port(), nil)
	if err == nil {
		t.Errorf("imaps accepted a certificate from an unknown CA")
	} else if providers.ClassOf(err) != providers.ClassAccount || !strings.Contains(err.Error(), "--ca-file") {
		t.Errorf("untrusted certificate: class %v, err %v; want an account error pointing at --ca-file", providers.ClassOf(err), err)
	}
	if err := open(imap.TLS, implicit.Port(), &tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Errorf("imaps with verification skipped: %v", err)
	}
	if err := open(imap.StartTLS, plainOnly.Port(), trusted); err == nil {
		t.Errorf("imap:// went on without STARTTLS")
	}
}

// TestTLSAppendsBorrowTheReadConnection: over TLS, where the read that
// lending wakes is TLS's, appends borrow the read connection and give it
// back: reading after appending works, mailbox after mailbox.
func TestTLSAppendsBorrowTheReadConnection(t *testing.T) {
	serverCfg, roots := testCA(t)
	srv, err := memserver.StartTLS(map[string]string{"alice": "pw-alice"}, serverCfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st, err := imap.Open(context.Background(), imap.Config{Endpoint: imap.Endpoint{Security: imap.TLS, Host: "127.0.0.1", Port: srv.Port()},
		TLS: &tls.Config{ServerName: "127.0.0.1", RootCAs: roots}, User: "alice", Password: "pw-alice", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := imap.ReadAppendRead(t, st, []string{"One", "Two"}); got["One"] != 5 || got["Two"] != 6 {
		t.Errorf("appended %v", got)
	}
}
