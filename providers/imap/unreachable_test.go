package imap_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
)

// TestUnreachable: a connection that cannot be made (here refused: nothing
// listens on the port) is marked ErrUnreachable, so that a login is not
// retried as if the server were busy, and stays transient for a copy
// under way, whose server may be restarting.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ep, err := imap.ParseURL("imap+plain://alice@" + addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = imap.Open(context.Background(), imap.Config{Endpoint: ep, User: "alice", Password: "pw"})
	if !errors.Is(err, providers.ErrUnreachable) {
		t.Fatalf("refused connection: %v, want ErrUnreachable", err)
	}
	if providers.ClassOf(err) != providers.ClassTransient {
		t.Errorf("class %v, want transient", providers.ClassOf(err))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Errorf("%v: the dial error is not in the chain", err)
	}
}
