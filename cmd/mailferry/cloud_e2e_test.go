package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/fakecloud"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// tokenFiles is a token command for the tests: for user $1, its Nth run
// prints line N of DIR/$1.tokens (the last line once they run out) and
// counts the runs in DIR/$1.runs.
type tokenFiles struct{ dir string }

func newTokenFiles(t *testing.T) tokenFiles {
	t.Helper()
	tf := tokenFiles{t.TempDir()}
	script := `n=$(($(cat "` + tf.dir + `/$1.runs" 2>/dev/null || echo 0) + 1)); echo $n > "` + tf.dir + `/$1.runs"
line=$(sed -n "${n}p" "` + tf.dir + `/$1.tokens"); [ -n "$line" ] || line=$(tail -n 1 "` + tf.dir + `/$1.tokens"); echo "$line"`
	writeFile(t, tf.dir, "token.sh", script)
	return tf
}

func (tf tokenFiles) command() string { return "sh " + filepath.Join(tf.dir, "token.sh") + ` "$1"` }

func (tf tokenFiles) give(t *testing.T, user string, tokens ...string) {
	t.Helper()
	writeFile(t, tf.dir, user+".tokens", strings.Join(tokens, "\n")+"\n")
}

func (tf tokenFiles) runs(t *testing.T, user string) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(tf.dir, user+".runs"))
	var n int
	fmt.Sscan(string(b), &n)
	return n
}

func hashes[M any](msgs []M, raw func(M) []byte) []string {
	var out []string
	for _, m := range msgs {
		sum := sha256.Sum256(raw(m))
		out = append(out, hex.EncodeToString(sum[:]))
	}
	slices.Sort(out)
	return out
}

// noToken fails the test if any of the tokens shows in text.
func noToken(t *testing.T, what, text string, tokens []string) {
	t.Helper()
	for _, tok := range tokens {
		if strings.Contains(text, tok) {
			t.Errorf("%s shows an OAuth token", what)
		}
	}
}

// TestToOffice365WithTokens moves a Dovecot mailbox into a fake Exchange
// Online that takes only XOAUTH2, caps connections, throttles and hangs
// up: the first token given is expired and must be renewed, the preset's
// connection cap must hold against a run asking for more, and every
// message must arrive byte-exact in the mapped folders.
func TestToOffice365WithTokens(t *testing.T) {
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": srcPass}})
	cloud := fakecloud.Start(t, fakecloud.Options{Flavor: fakecloud.Office365, MaxConnsPerUser: 16, ThrottleEvery: 60, ByeEvery: 173})
	cloud.AddUser("alice")
	rng := rand.New(rand.NewPCG(10, 10))
	var inbox, sent []imaptest.SeedMessage
	for i := range 400 {
		inbox = append(inbox, imaptest.SeedMessage{Raw: genMessage(rng, "INBOX", i, 500+rng.IntN(4000)), Flags: []string{`\Seen`}, InternalDate: time.Unix(1_700_000_000+int64(i)*60, 0)})
	}
	for i := range 30 {
		sent = append(sent, imaptest.SeedMessage{Raw: genMessage(rng, "Sent", i, 800), Flags: []string{`\Seen`}, InternalDate: time.Unix(1_700_100_000+int64(i)*60, 0)})
	}
	src.Seed(t, "alice", "INBOX", inbox)
	src.Seed(t, "alice", "Sent", sent)

	expired := cloud.IssueToken("alice")
	cloud.Expire(expired)
	tokens := []string{expired, cloud.IssueToken("alice"), cloud.IssueToken("alice")}
	tf := newTokenFiles(t)
	tf.give(t, "alice", tokens...)

	ckpt := filepath.Join(t.TempDir(), "o365.db")
	report := filepath.Join(t.TempDir(), "report.json")
	common := []string{"--from", "imap+plain://alice@" + src.Addr(), "--to", "imap+plain://alice@" + cloud.Addr(),
		"--to-preset", "office365", "--to-oauth-token-cmd", tf.command(), "--checkpoint", ckpt, "--output", "text",
		// More than the preset allows: it must not matter.
		"--max-connections-per-account", "40"}
	args := append([]string{"migrate"}, append(slices.Clone(common), "--mailbox-workers", "8", "--streams", "4")...)
	env := []string{"MAILFERRY_FROM_PASSWORD=" + srcPass}
	r := runBinary(t, env, append(args, "--report", report)...)
	if r.code != 0 {
		t.Fatalf("migrate exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n := tf.runs(t, "alice"); n != 2 {
		t.Errorf("token command ran %d times, want 2 (the expired token replaced once, then shared)", n)
	}
	st := cloud.Stats()
	if peak := cloud.PeakConns("alice"); peak > 16 || st.Refused > 0 {
		t.Errorf("peak %d connections (refused %d); the office365 preset allows 16", peak, st.Refused)
	}
	if st.Throttled == 0 || st.Byes == 0 {
		t.Errorf("the fake throttled %d and hung up %d times: the test did not exercise backoff", st.Throttled, st.Byes)
	}
	raw := func(m fakecloud.Message) []byte { return m.Raw }
	seedRaw := func(m imaptest.SeedMessage) []byte { return m.Raw }
	if got, want := hashes(cloud.Messages(t, "alice", "INBOX"), raw), hashes(inbox, seedRaw); !slices.Equal(got, want) {
		t.Errorf("INBOX: %d messages on the cloud, want the %d of the source byte for byte", len(got), len(want))
	}
	if got, want := hashes(cloud.Messages(t, "alice", "Sent Items"), raw), hashes(sent, seedRaw); !slices.Equal(got, want) {
		t.Errorf("Sent -> Sent Items: %d messages, want %d (special-use mapping)", len(got), len(want))
	}
	for _, m := range cloud.Messages(t, "alice", "INBOX") {
		if !slices.Contains(m.Flags, `\Seen`) {
			t.Fatalf("message UID %d lost \\Seen: %v", m.UID, m.Flags)
		}
	}
	rep := readReport(t, report)
	if len(rep.Accounts) != 1 || rep.Accounts[0].Totals().Copied != 430 {
		t.Errorf("report: %+v, want 430 copied", rep.Accounts)
	}
	ckptBytes, _ := os.ReadFile(ckpt)
	reportBytes, _ := os.ReadFile(report)
	noToken(t, "stdout", r.stdout, tokens)
	noToken(t, "stderr", r.stderr, tokens)
	noToken(t, "the checkpoint", string(ckptBytes), tokens)
	noToken(t, "the report", string(reportBytes), tokens)

	again := runBinary(t, env, args...)
	if again.code != 0 || cloud.Stats().Appends != st.Appends {
		t.Errorf("re-run: exit %d, %d more APPENDs; want 0 and none\n%s", again.code, cloud.Stats().Appends-st.Appends, again.stderr)
	}
	v := runBinary(t, env, append([]string{"verify"}, common...)...)
	if v.code != 0 {
		t.Errorf("verify exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
}

// TestFromGmailLabels moves a fake Gmail account to Dovecot with the gmail
// preset: a message in two labels is copied once, archived mail (only in
// All Mail) lands in Archive, Starred is not copied, and verify agrees.
func TestFromGmailLabels(t *testing.T) {
	cloud := fakecloud.Start(t, fakecloud.Options{Flavor: fakecloud.Gmail, MaxConnsPerUser: 15})
	cloud.AddUser("bob")
	dst := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"bob": dstPass}})
	date := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	m := func(i int) []byte {
		return fmt.Appendf(nil, "From: x%d@example.org\r\nTo: bob@example.com\r\nSubject: label test %d\r\nMessage-ID: <label%d@example.org>\r\nDate: Sun, 1 Jun 2025 12:00:%02d +0000\r\n\r\nbody %d\r\n", i, i, i, i, i)
	}
	cloud.Append(t, "bob", "INBOX", m(1), []string{`\Seen`}, date)
	cloud.Append(t, "bob", "Work", m(1), []string{`\Seen`}, date)
	cloud.Append(t, "bob", "Work", m(2), nil, date)
	cloud.Append(t, "bob", "Work/2026", m(6), nil, date)
	cloud.Append(t, "bob", "INBOX", m(4), []string{`\Flagged`}, date)
	cloud.Append(t, "bob", "[Gmail]/Starred", m(4), []string{`\Flagged`}, date)
	cloud.Append(t, "bob", "[Gmail]/Sent Mail", m(5), []string{`\Seen`}, date)
	cloud.Append(t, "bob", "[Gmail]/All Mail", m(3), nil, date) // archived
	if n := len(cloud.Messages(t, "bob", "[Gmail]/All Mail")); n != 6 {
		t.Fatalf("the fake's All Mail holds %d, want 6 (its label semantics changed?)", n)
	}
	tf := newTokenFiles(t)
	tf.give(t, "bob", cloud.IssueToken("bob"))

	ckpt := filepath.Join(t.TempDir(), "gmail.db")
	args := []string{"migrate", "--from", "imap+plain://bob@" + cloud.Addr(), "--from-preset", "gmail", "--from-oauth-token-cmd", tf.command(),
		"--to", "imap+plain://bob@" + dst.Addr(), "--checkpoint", ckpt, "--output", "text"}
	env := []string{"MAILFERRY_TO_PASSWORD=" + dstPass}
	r := runBinary(t, env, args...)
	if r.code != 0 {
		t.Fatalf("migrate exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	want := map[string][][]byte{"INBOX": {m(1), m(4)}, "Work": {m(2)}, "Work/2026": {m(6)}, "Sent": {m(5)}, "Archive": {m(3)}}
	for box, msgs := range want {
		got := dst.Messages(t, "bob", box)
		var gotHashes []string
		for _, g := range got {
			gotHashes = append(gotHashes, g.SHA256)
		}
		slices.Sort(gotHashes)
		if wantHashes := hashes(msgs, func(b []byte) []byte { return b }); !slices.Equal(gotHashes, wantHashes) {
			t.Errorf("%s holds %d message(s), want %d", box, len(got), len(msgs))
		}
	}
	for _, box := range dst.Mailboxes(t, "bob") {
		if strings.Contains(box, "Starred") || strings.Contains(box, "All Mail") || strings.Contains(box, "Important") {
			t.Errorf("view %q was copied as a folder", box)
		}
	}
	if !strings.Contains(r.stdout, "in another label folder") {
		t.Errorf("the summary does not say that label duplicates were left out:\n%s", r.stdout)
	}
	v := runBinary(t, env, append([]string{"verify"}, args[1:]...)...)
	if v.code != 0 {
		t.Errorf("verify with the gmail preset: exit %d\n%s\n%s", v.code, v.stdout, v.stderr)
	}
	again := runBinary(t, env, args...)
	if again.code != 0 {
		t.Errorf("re-run: exit %d\n%s", again.code, again.stdout)
	}
	if n := strings.Count(dst.Doveadm(t, "search", "-u", "bob", "ALL"), "\n"); n != 6 {
		t.Errorf("destination holds %d messages after the re-run, want 6", n)
	}
}

// TestBatchToGmailWithTokens runs a batch into a fake Gmail: the token
// command gets each row's user, runs once per user, and one user whose
// token is refused fails alone.
func TestBatchToGmailWithTokens(t *testing.T) {
	users := map[string]string{"ann": "ann-pw", "ben": "ben-pw", "cat": "cat-pw"}
	src := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: users})
	cloud := fakecloud.Start(t, fakecloud.Options{Flavor: fakecloud.Gmail, MaxConnsPerUser: 15})
	tf := newTokenFiles(t)
	csv := "source_user,source_password,dest_user,dest_password\n"
	for i, u := range []string{"ann", "ben", "cat"} {
		cloud.AddUser(u + "@example.com")
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		var msgs []imaptest.SeedMessage
		for j := range 20 {
			msgs = append(msgs, imaptest.SeedMessage{Raw: genMessage(rng, u, j, 1500), Flags: []string{`\Seen`}, InternalDate: time.Unix(1_710_000_000+int64(j), 0)})
		}
		src.Seed(t, u, "INBOX", msgs)
		tok := cloud.IssueToken(u + "@example.com")
		if u == "cat" {
			cloud.Expire(tok) // and no fresh one: cat fails, the others go on
		}
		tf.give(t, u+"@example.com", tok)
		csv += u + "," + users[u] + "," + u + "@example.com,\n"
	}
	batch := writeFile(t, t.TempDir(), "wave.csv", csv)
	r := runBinary(t, nil, "migrate", "--batch", batch, "--from", "imap+plain://"+src.Addr(), "--to", "imap+plain://"+cloud.Addr(),
		"--to-preset", "gmail", "--to-oauth-token-cmd", tf.command(), "--checkpoint", filepath.Join(t.TempDir(), "wave.db"), "--output", "text")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (cat's token refused)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, u := range []string{"ann", "ben"} {
		if n := len(cloud.Messages(t, u+"@example.com", "INBOX")); n != 20 {
			t.Errorf("%s: %d messages on Gmail, want 20", u, n)
		}
		if n := tf.runs(t, u+"@example.com"); n != 1 {
			t.Errorf("%s: token command ran %d times, want once for all connections", u, n)
		}
	}
	if n := tf.runs(t, "cat@example.com"); n != 2 {
		t.Errorf("cat: token command ran %d times, want 2 (refused, renewed, refused again)", n)
	}
	if !strings.Contains(r.stdout+r.stderr, "cat@example.com") || !strings.Contains(r.stdout+r.stderr, "AUTHENTICATIONFAILED") {
		t.Errorf("the failure does not name cat and the server's refusal:\n%s\n%s", r.stdout, r.stderr)
	}
}
