package providers_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/providers"
)

// TestHeldBytes: a held message is lent whole through a Body, the same
// array and not a copy; once reading has begun, or from a reader that
// holds nothing, there is nothing to lend.
func TestHeldBytes(t *testing.T) {
	msg := []byte("Subject: x\r\n\r\nbody\r\n")
	r := providers.HeldReader(msg)
	got := providers.HeldBytes(providers.NewBody(r))
	if !bytes.Equal(got, msg) || &got[0] != &msg[0] {
		t.Fatalf("HeldBytes = %q, want the held array itself", got)
	}
	if _, err := io.ReadFull(r, make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	if got := providers.HeldBytes(r); got != nil {
		t.Errorf("after a read: HeldBytes = %q, want nil", got)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != string(msg[3:]) {
		t.Errorf("read %q after the first 3 bytes, want %q", rest, msg[3:])
	}
	if got := providers.HeldBytes(providers.NewBody(strings.NewReader("x"))); got != nil {
		t.Errorf("a streaming reader lent %q", got)
	}
}
