package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

func TestVerify(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 60, 1<<10, 8<<10, 31)
	seed(t, p.src, "Archive/2022", 20, 1<<10, 4<<10, 32)
	if r := p.migrate(t, nil); r.code != 0 {
		t.Fatalf("migrate exit %d\n%s", r.code, r.stderr)
	}
	verify := func(args ...string) result {
		base := []string{"verify", "--from", "imap+plain://alice@" + p.src.Addr(), "--to", "imap+plain://alice@" + p.dst.Addr(), "--checkpoint", p.ckpt, "--output", "text"}
		return runBinary(t, p.env, append(base, args...)...)
	}
	r := verify("--deep")
	if r.code != 0 || !strings.Contains(r.stdout, "PASS alice -> alice") {
		t.Fatalf("verify after migrate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// Break the destination behind mailferry's back, with doveadm.
	msgs := p.dst.Messages(t, "alice", "INBOX")
	p.dst.Doveadm(t, "expunge", "-u", "alice", "mailbox", "INBOX", "uid", itoa(msgs[3].UID))
	p.dst.Doveadm(t, "flags", "remove", "-u", "alice", `\Seen`, "mailbox", "INBOX", "uid", itoa(msgs[4].UID))
	r = verify()
	if r.code != exitPartial || !strings.Contains(r.stdout, "FAIL alice -> alice") {
		t.Fatalf("verify after damage: exit %d\n%s", r.code, r.stdout)
	}
	for _, want := range []string{"missing on the destination", "flags differ", "1 without a copy by content", "destination uid " + itoa(msgs[3].UID)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, r.stdout)
		}
	}
	// migrate does not restore what it recorded as copied; verify keeps
	// saying so until someone decides (this is the user deleting mail).
	if r := p.migrate(t, nil); r.code != 0 {
		t.Fatalf("migrate exit %d", r.code)
	}
	if r := verify(); r.code != exitPartial {
		t.Errorf("verify after re-migrate: exit %d\n%s", r.code, r.stdout)
	}
}

func itoa(u uint32) string { return strconv.Itoa(int(u)) }
