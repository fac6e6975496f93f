package fakecloud

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"time"
)

// wireListener wraps every accepted connection in a wireConn, which the
// sessions reach through imapserver.Conn.NetConn.
type wireListener struct {
	net.Listener
	c       *Cloud
	started startSignal
}

// startSignal is closed at a server's first Accept. imapserver.Serve
// calls WaitGroup.Add only after registering the listener, so a Close
// before that races with it (the race detector says so); Start waits for
// this signal, by which time Add has run.
type startSignal struct {
	once sync.Once
	ch   chan struct{}
}

func newStartSignal() startSignal { return startSignal{ch: make(chan struct{})} }

func (s *startSignal) fire() { s.once.Do(func() { close(s.ch) }) }

func (l *wireListener) Accept() (net.Conn, error) {
	l.started.fire()
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &wireConn{Conn: conn, c: l.c}
	l.c.mu.Lock()
	l.c.wires[w] = struct{}{}
	l.c.mu.Unlock()
	return w, nil
}

// lingerTime bounds how long a closed connection keeps draining input.
const lingerTime = time.Second

// wireConn exists for two things imapserver cannot do. It hangs up right
// after a given reply (imapserver only closes after BYE or LOGOUT, but
// Gmail closes after its "too many connections" NO). And it closes
// gracefully: FIN, then discard what the client still sends, because
// closing a socket with unread input sends a reset, and a reset can make
// the client lose the BYE it has not read yet.
//
// After Close, Read says io.EOF and Write net.ErrClosed, which imapserver
// treats as a quiet end of the connection, with nothing logged.
type wireConn struct {
	net.Conn
	c *Cloud

	mu      sync.Mutex
	closed  bool
	armed   bool
	trailer []byte
}

// closeAfterNextWrite closes the connection after the next reply, and
// trailer (a raw "* BYE ...\r\n", or nil) following it.
func (w *wireConn) closeAfterNextWrite(trailer []byte) {
	w.mu.Lock()
	w.armed, w.trailer = true, trailer
	w.mu.Unlock()
}

func (w *wireConn) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func (w *wireConn) Read(p []byte) (int, error) {
	if w.isClosed() {
		return 0, io.EOF
	}
	n, err := w.Conn.Read(p)
	if w.isClosed() {
		return 0, io.EOF
	}
	return n, err
}

// Write relies on imapserver flushing each reply in one Write (its
// buffer is 4 KiB; the replies that arm a close are one short line).
func (w *wireConn) Write(p []byte) (int, error) {
	if w.isClosed() {
		return 0, net.ErrClosed
	}
	n, err := w.Conn.Write(p)
	w.mu.Lock()
	armed, trailer := w.armed, w.trailer
	w.armed, w.trailer = false, nil
	w.mu.Unlock()
	if armed {
		if err == nil && len(trailer) > 0 {
			w.Conn.Write(trailer)
		}
		w.Close()
	}
	return n, err
}

func (w *wireConn) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	if cw, ok := w.Conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		go func() {
			w.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			io.Copy(io.Discard, w.Conn)
			w.Conn.Close()
			w.forget()
		}()
		return nil
	}
	defer w.forget()
	return w.Conn.Close()
}

func (w *wireConn) forget() {
	w.c.mu.Lock()
	delete(w.c.wires, w)
	w.c.mu.Unlock()
}

// kill closes at once, at the end of the test.
func (w *wireConn) kill() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.Conn.Close()
}

// Deadlines set by imapserver after Close would cut the drain short.
func (w *wireConn) SetDeadline(t time.Time) error {
	if w.isClosed() {
		return nil
	}
	return w.Conn.SetDeadline(t)
}

func (w *wireConn) SetReadDeadline(t time.Time) error {
	if w.isClosed() {
		return nil
	}
	return w.Conn.SetReadDeadline(t)
}

// pipeListener hands in-memory connections to the admin server.
type pipeListener struct {
	ch      chan net.Conn
	done    chan struct{}
	once    sync.Once
	started startSignal
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{}), started: newStartSignal()}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	l.started.fire()
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.ch <- server:
		return client, nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "fakecloud-admin" }

// selfSigned makes a throwaway certificate for the loopback address and
// the real services' host names.
func selfSigned() (*tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fakecloud"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", "imap.gmail.com", "outlook.office365.com"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
