package imaptest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// TLS makes an instance speak TLS with the certificate a test made: STARTTLS
// on its plaintext port and implicit TLS (imaps) on Dovecot.TLSPort. The
// plaintext LOGIN stays allowed, so the same instance serves tests of both.
type TLS struct {
	CertPEM, KeyPEM []byte // the server's certificate (chain) and key
}

// TLSAddr returns "127.0.0.1:TLSPORT", the implicit TLS listener; "" if
// the instance has no TLS.
func (d *Dovecot) TLSAddr() string {
	if d.TLSPort == 0 {
		return ""
	}
	return net.JoinHostPort(d.Host, strconv.Itoa(d.TLSPort))
}

// writeTLSFiles puts the test's certificate and key in the instance
// directory.
func (d *Dovecot) writeTLSFiles() error {
	t := d.opts.TLS
	if t == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "tls-cert.pem"), t.CertPEM, 0o644); err != nil {
		return fmt.Errorf("write TLS certificate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "tls-key.pem"), t.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("write TLS key: %w", err)
	}
	return nil
}

// writeSSL writes the ssl settings, and picks the imaps port of this
// attempt (a config is rendered per attempt, see startOnce). Without a
// free port the instance has no TLS listener and TLSAddr is "".
func (d *Dovecot) writeSSL(p func(string, ...any)) {
	d.TLSPort = 0
	if d.opts.TLS == nil {
		p("ssl = no")
		return
	}
	p("ssl = yes")
	p("ssl_cert = <%s", filepath.Join(d.Dir, "tls-cert.pem"))
	p("ssl_key = <%s", filepath.Join(d.Dir, "tls-key.pem"))
	if port, err := freePort(); err == nil {
		d.TLSPort = port
	}
}
