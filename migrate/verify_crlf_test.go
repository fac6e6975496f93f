package migrate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
	"github.com/mailferry/mailferry/providers/mem"
)

// lineEnds is a store that changes line ends on the way in, as an IMAP
// server does (to CRLF), or as a broken one could (to LF).
type lineEnds struct {
	*mem.Store
	crlf bool
}

func (s lineEnds) Mailbox(ctx context.Context, name string) (providers.Mailbox, error) {
	mb, err := s.Store.Mailbox(ctx, name)
	if err != nil {
		return nil, err
	}
	return lineEndsBox{mb, s.crlf}, nil
}

type lineEndsBox struct {
	providers.Mailbox
	crlf bool
}

func (b lineEndsBox) Append(ctx context.Context, r io.Reader, size int64, info providers.MessageInfo, done func(providers.UID, error)) error {
	raw, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return err
	}
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	if b.crlf {
		raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	}
	return b.Mailbox.Append(ctx, bytes.NewReader(raw), int64(len(raw)), info, done)
}

// lfMbox is an mbox file with LF line ends, a message without a
// Message-ID among them.
func lfMbox() string {
	var b strings.Builder
	for i := range 6 {
		fmt.Fprintf(&b, "From a@example.org Mon Jan  %d 00:00:00 2001\nSubject: m%d\n", i+1, i)
		if i != 3 {
			fmt.Fprintf(&b, "Message-ID: <m%d@example.org>\n", i)
		}
		fmt.Fprintf(&b, "\n%s\n\n", strings.Repeat(fmt.Sprintf("line %d of a body\n", i), 100+i))
	}
	return b.String()
}

// TestVerifyLFMboxIntoCRLFServer: an import of an LF mbox file into a
// store that keeps CRLF passes verify, shallow and deep, every message
// counted as present by content too; a changed byte or line still fails.
func TestVerifyLFMboxIntoCRLFServer(t *testing.T) {
	dir := t.TempDir()
	writeMbox(t, filepath.Join(dir, "INBOX"), lfMbox())
	src, err := mbox.Open(dir, mbox.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	m := mem.New()
	dst := lineEnds{m, true}
	l := openLedger(t)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	a := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	for _, deep := range []bool{false, true} {
		sum, err := Verify(context.Background(), a, src, dst, l, VerifyOptions{Deep: deep})
		if err != nil || !sum.Pass {
			t.Fatalf("deep %v: %v, pass=%v\n%s", deep, err, sum.Pass, problems(sum))
		}
		if v := sum.Mailboxes[0]; v.Verified != 6 || v.Unmatched != 0 || v.Others != 0 {
			t.Errorf("deep %v: verified %d of 6, unmatched %d, others %d", deep, v.Verified, v.Unmatched, v.Others)
		}
	}

	msgs := m.Messages("INBOX")
	// Past the first KiB of the body: only the deep check sees it.
	late := bytes.Clone(msgs[1].Raw)
	late[len(late)-5] ^= 1
	m.Replace("INBOX", msgs[1].UID, late)
	// A line end lost: the size differs from the CRLF form's; without a
	// Message-ID, nothing says it is the same message.
	for _, i := range []int{2, 3} {
		m.Replace("INBOX", msgs[i].UID, bytes.Replace(msgs[i].Raw, []byte("\r\n"), []byte("\n"), 1))
	}
	shallow, _ := Verify(context.Background(), a, src, dst, l, VerifyOptions{})
	got := problems(shallow)
	if shallow.Pass || shallow.Mailboxes[0].Problems != 2 || !strings.Contains(got, "size differs: source 1777, destination 1882 bytes (1883 with CRLF line ends)") ||
		!strings.Contains(got, "the destination UID holds another message") {
		t.Errorf("lost CRs: pass=%v, %d problems, want 2:\n%s", shallow.Pass, shallow.Mailboxes[0].Problems, got)
	}
	deep, _ := Verify(context.Background(), a, src, dst, l, VerifyOptions{Deep: true})
	if !strings.Contains(problems(deep), "bytes differ") {
		t.Errorf("the deep check missed a changed byte:\n%s", problems(deep))
	}
}

// TestVerifyIntoLFStoreFails: the other way round, a store that drops the
// CRs of CRLF mail changed it, and verify says so.
func TestVerifyIntoLFStoreFails(t *testing.T) {
	src := mem.New()
	for i := range 4 {
		src.Put("INBOX", msg(i, strings.Repeat("crlf body line\r\n", 80)), nil, testDate)
	}
	m := mem.New()
	dst := lineEnds{m, false}
	l := openLedger(t)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	sum, err := Verify(context.Background(), BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}, src, dst, l, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Pass || sum.Mailboxes[0].Problems != 4 {
		t.Errorf("pass=%v, %d problems; want 4 FAILs:\n%s", sum.Pass, sum.Mailboxes[0].Problems, problems(sum))
	}
}

// TestVerifyCRLFSourceIntoMbox: IMAP (CRLF) to an mbox directory, which
// stores the bytes exactly: verify passes, deep too.
func TestVerifyCRLFSourceIntoMbox(t *testing.T) {
	src := mem.New()
	for i := range 4 {
		src.Put("INBOX", msg(i, strings.Repeat("crlf body line\r\n", 80)), []string{`\Seen`}, testDate)
	}
	dst, err := mbox.Open(t.TempDir(), mbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := openLedger(t)
	run(t, src, dst, l, Options{QuietWait: time.Millisecond})
	sum, err := Verify(context.Background(), BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}, src, dst, l, VerifyOptions{Deep: true})
	if err != nil || !sum.Pass || sum.Mailboxes[0].Verified != 4 {
		t.Errorf("%v, pass=%v, verified %d:\n%s", err, sum.Pass, sum.Mailboxes[0].Verified, problems(sum))
	}
}
