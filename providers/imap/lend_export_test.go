package imap

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/providers"
)

// ReadAppendRead does with each mailbox what an account's copy does:
// create it, EXAMINE and read it, append 5, 6, 7… messages, read it again
// (the appender gives the connection back to go-imap) and close it; it
// checks what each step sees and returns the messages appended by
// mailbox.
func ReadAppendRead(t *testing.T, st *Store, boxes []string) map[string]int {
	t.Helper()
	ctx := context.Background()
	want := map[string]int{}
	for i, box := range boxes {
		if err := st.CreateMailbox(ctx, box, ""); err != nil {
			t.Fatal(err)
		}
		mb, err := st.Mailbox(ctx, box)
		if err != nil {
			t.Fatal(err)
		}
		if n := countListed(t, mb); n != 0 {
			t.Fatalf("%s: %d messages listed before appending", box, n)
		}
		n := 5 + i
		for j := range n {
			raw := []byte(fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s.%d@x>\r\n\r\nbody\r\n", box, j, box, j))
			if err := mb.Append(ctx, bytes.NewReader(raw), int64(len(raw)), providers.MessageInfo{Flags: []string{`\Seen`}}, func(_ providers.UID, err error) {
				if err != nil {
					t.Errorf("append: %v", err)
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		if got := countListed(t, mb); got != n {
			t.Errorf("%s: %d messages listed after appending %d", box, got, n)
		}
		if err := mb.Close(); err != nil {
			t.Fatal(err)
		}
		if info, err := st.Status(ctx, box); err != nil || info.Messages != n {
			t.Errorf("%s: STATUS says %d messages (%v), want %d", box, info.Messages, err, n)
		}
		want[box] = n
	}
	return want
}

func countListed(t *testing.T, mb providers.Mailbox) int {
	t.Helper()
	n := 0
	if err := mb.List(context.Background(), nil, func(providers.MessageInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
