package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

func TestAppendUIDs(t *testing.T) {
	cases := []struct {
		in   string
		want []providers.UID
	}{
		{"OK [APPENDUID 38505 3955] done", []providers.UID{3955}},
		{"OK [APPENDUID 38505 3955:3957] done", []providers.UID{3955, 3956, 3957}},
		{"OK [APPENDUID 38505 7,9:10,3] done", []providers.UID{7, 9, 10, 3}},
		{"OK [APPENDUID 1 5] other validity", nil},
		{"OK done", nil},
		{"OK [APPENDUID 38505 x:y] junk", nil},
	}
	for _, c := range cases {
		a := &appender{validity: 38505}
		if got := a.appendUIDs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("appendUIDs(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	// A mailbox empty when opened takes the UIDVALIDITY of its first
	// APPENDUID, once.
	var adopted uint32
	a := &appender{validity: 38505, fresh: true, adopt: func(v uint32) { adopted = v }}
	if got := a.appendUIDs("OK [APPENDUID 1 5] numbered now"); !slices.Equal(got, []providers.UID{5}) || adopted != 1 {
		t.Errorf("fresh mailbox: uids %v, adopted %d; want [5], 1", got, adopted)
	}
	if got := a.appendUIDs("OK [APPENDUID 2 6] renumbered"); got != nil || adopted != 1 {
		t.Errorf("after the first APPENDUID: uids %v, adopted %d; want none, still 1", got, adopted)
	}
}

func dovecotStoreInternal(t *testing.T, d *imaptest.Dovecot, user, pass string) *Store {
	st, err := Open(context.Background(), Config{Endpoint: Endpoint{Security: Plain, Host: d.Host, Port: d.Port},
		User: user, Password: providers.Secret(pass), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestAppenderGroupsMessages appends through MULTIAPPEND to a real Dovecot:
// every message arrives byte for byte with its flags and date, and each
// done gets the message's own UID.
func TestAppenderGroupsMessages(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"bob": "pw"}})
	st := dovecotStoreInternal(t, d, "bob", "pw")
	if err := st.CreateMailbox(context.Background(), "Entwürfe", ""); err != nil {
		t.Fatal(err)
	}
	mb, err := st.Mailbox(context.Background(), "Entwürfe")
	if err != nil {
		t.Fatal(err)
	}
	validity := mb.Info().UIDValidity
	mb.Close()
	a, err := st.getAppender(context.Background(), "Entwürfe", validity, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*groupMessages + 17
	date := time.Date(2022, 3, 4, 5, 6, 7, 0, time.FixedZone("", -7200))
	var mu sync.Mutex
	uids := make([]providers.UID, n)
	buf := make([]byte, 4096)
	for i := range n {
		raw := fmt.Appendf(nil, "Subject: m%d\r\n\r\n%s\r\n", i, bytes.Repeat([]byte("x"), i*37))
		err := a.Append(context.Background(), bytes.NewReader(raw), int64(len(raw)),
			providers.MessageInfo{Flags: []string{`\Seen`, "Kw" + fmt.Sprint(i%3)}, InternalDate: date},
			func(u providers.UID, err error) {
				if err != nil {
					t.Errorf("message %d: %v", i, err)
				}
				mu.Lock()
				uids[i] = u
				mu.Unlock()
			}, buf)
		if err != nil {
			t.Fatal(err)
		}
	}
	if !a.multi {
		t.Fatal("Dovecot offers MULTIAPPEND; the appender should group messages")
	}
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.putAppender(a)
	msgs := d.Messages(t, "bob", "Entwürfe")
	if len(msgs) != n {
		t.Fatalf("%d messages stored, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if uids[i] != providers.UID(m.UID) {
			t.Errorf("message %d: done got UID %d, stored as %d", i, uids[i], m.UID)
		}
		if !slices.Contains(m.Flags, `\Seen`) || !slices.Contains(m.Flags, "Kw"+fmt.Sprint(i%3)) || !m.InternalDate.Equal(date) {
			t.Errorf("message %d: flags %v date %v", i, m.Flags, m.InternalDate)
		}
	}
}

// A refused MULTIAPPEND stores nothing; its messages come back as a
// transient refusal, and the store sends that mailbox's messages one by one
// from then on.
func TestAppenderGroupRefusal(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"bob": "pw"}})
	st := dovecotStoreInternal(t, d, "bob", "pw")
	mb, err := st.Mailbox(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	validity := mb.Info().UIDValidity
	mb.Close()
	a, err := st.getAppender(context.Background(), "INBOX", validity, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	var mu sync.Mutex
	for i := range 3 {
		flags := []string{`\Seen`}
		if i == 1 {
			flags = []string{`\Bogus`} // Dovecot refuses unknown system flags
		}
		raw := fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i)
		a.Append(context.Background(), bytes.NewReader(raw), int64(len(raw)), providers.MessageInfo{Flags: flags},
			func(_ providers.UID, err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }, make([]byte, 512))
	}
	a.Flush(context.Background())
	st.putAppender(a)
	if len(errs) != 3 {
		t.Fatalf("%d dones, want 3", len(errs))
	}
	for _, err := range errs {
		if !errors.Is(err, errGroupRefused) || providers.ClassOf(err) != providers.ClassTransient {
			t.Errorf("done got %v (class %v), want a transient group refusal", err, providers.ClassOf(err))
		}
	}
	if n := len(d.Messages(t, "bob", "INBOX")); n != 0 {
		t.Errorf("%d messages stored from a refused MULTIAPPEND", n)
	}
	if !st.singleAppendTo("INBOX") {
		t.Errorf("after a refused group the mailbox should get single APPENDs")
	}
}

// TestGrow: a held buffer is reused while it is large enough, at least
// doubles when it is not (so rising sizes cost few allocations), never
// exceeds the limit unless one message needs more, and is always exactly
// as long as asked.
func TestGrow(t *testing.T) {
	var buf []byte
	allocs := 0
	for _, n := range []int64{100, 5000, 16 << 10, 17 << 10, 20 << 10, 40 << 10, 300 << 10, 10} {
		before := cap(buf)
		buf = grow(buf, n, 256<<10)
		if int64(len(buf)) != n {
			t.Fatalf("grow to %d: len %d", n, len(buf))
		}
		if cap(buf) != before {
			allocs++
			if want := min(max(2*int64(before), 16<<10), 256<<10); int64(cap(buf)) != max(want, n) {
				t.Errorf("grow from cap %d to %d: cap %d, want %d", before, n, cap(buf), max(want, n))
			}
		}
	}
	// 16 KiB, 32 KiB, 64 KiB and the 300 KiB message's own.
	if allocs != 4 {
		t.Errorf("%d allocations, want 4", allocs)
	}
	if cap(buf) != 300<<10 {
		t.Errorf("cap %d after the large message, want it kept (%d)", cap(buf), 300<<10)
	}
}
