package providers

import (
	"strings"
	"testing"
)

func TestNormalizeMessageID(t *testing.T) {
	long := strings.Repeat("x", 400)
	cases := []struct{ in, want string }{
		{"<abc@example.org>", "<abc@example.org>"},
		{"  <abc@example.org>  ", "<abc@example.org>"},
		{"<abc@\r\n example.org>", "<abc@example.org>"},
		{"abc@example.org", "<abc@example.org>"},
		{"1234.ABC", "<1234.ABC>"},
		{"<first@a> <second@b>", "<first@a>"},
		{"junk before <id@host> junk after", "<id@host>"},
		{"<unterminated@host", "<unterminated@host>"},
		{"<ünïcødé@hóst>", "<ünïcødé@hóst>"},
		{"<\xff\xfe@8bit>", "<\xff\xfe@8bit>"},
		{"", ""},
		{"   ", ""},
		{"<>", ""},
		{"<" + long + ">", NormalizeMessageID(long)},
	}
	for _, c := range cases {
		if got := NormalizeMessageID(c.in); got != c.want {
			t.Errorf("NormalizeMessageID(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := NormalizeMessageID(long); len(got) > maxMessageIDLen+2 || !strings.HasPrefix(got, "<sha256:") {
		t.Errorf("long Message-ID kept as %d bytes: %.40q", len(got), got)
	}
}

const fullMessage = "Received: from x by y\r\n" +
	"Message-ID:\r\n <folded@example.org>\r\n" +
	"X-Other: ignored\r\n" +
	"Subject: Hello\r\n  world\r\n" +
	"From: a@example.org\r\n" +
	"To: b@example.org\r\n" +
	"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n" +
	"\r\n" +
	"Body line 1\r\nBody line 2\r\n"

// The IMAP adapter hashes only the key fields (HEADER.FIELDS) and the first
// KeyBodyPrefix bytes of TEXT; an in-memory store hashes the whole message.
// Both must give the same key.
func TestKeyFromFieldsEqualsKeyFromWholeMessage(t *testing.T) {
	fields := "Message-ID:\r\n <folded@example.org>\r\nSubject: Hello\r\n  world\r\nFrom: a@example.org\r\nTo: b@example.org\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
	whole := KeyOf([]byte(fullMessage))
	partial := NewKey([]byte(fields), []byte("Body line 1\r\nBody line 2\r\n"), int64(len(fullMessage)))
	if whole != partial {
		t.Errorf("keys differ:\n whole   %+v\n partial %+v", whole, partial)
	}
	if whole.MessageID != "<folded@example.org>" {
		t.Errorf("MessageID = %q", whole.MessageID)
	}
	lf := KeyOf([]byte(strings.ReplaceAll(fullMessage, "\r\n", "\n")))
	if lf.Fingerprint == whole.Fingerprint {
		t.Errorf("a message of another size has the same fingerprint")
	}
}

func TestKeysTellMessagesApart(t *testing.T) {
	base := KeyOf([]byte(fullMessage))
	variants := map[string]string{
		"other body":       strings.Replace(fullMessage, "Body line 2", "Body line X", 1),
		"other subject":    strings.Replace(fullMessage, "Hello", "Hallo", 1),
		"other message-id": strings.Replace(fullMessage, "folded@", "other@", 1),
	}
	for name, v := range variants {
		if KeyOf([]byte(v)).Fingerprint == base.Fingerprint {
			t.Errorf("%s: same fingerprint", name)
		}
	}
	// Unrelated header fields and trace lines do not count.
	same := strings.Replace(fullMessage, "X-Other: ignored", "X-Other: changed", 1)
	if KeyOf([]byte(same)).Fingerprint != base.Fingerprint {
		t.Errorf("a change to a non-key field changed the fingerprint")
	}
}

func TestKeyNeverFailsOnJunk(t *testing.T) {
	junk := []string{
		"",
		"\r\n",
		"no header at all, just text",
		"\r\nbody without header",
		": empty name\r\n\r\nbody",
		" starts with a continuation\r\nSubject: x\r\n\r\n",
		"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n",
		"Subject: \x00\xff\xfe\r\n\r\n\x00",
		strings.Repeat("X-Long: "+strings.Repeat("y", 5000)+"\r\n", 50) + "\r\n",
	}
	for _, j := range junk {
		k := KeyOf([]byte(j))
		_ = k.Fingerprint.String()
	}
	dup := KeyOf([]byte("Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n"))
	if dup.MessageID != "<a@b>" {
		t.Errorf("duplicated Message-ID: got %q, want the first", dup.MessageID)
	}
}

func TestSplitMessage(t *testing.T) {
	cases := []struct{ in, header, body string }{
		{"A: b\r\n\r\nbody", "A: b\r\n", "body"},
		{"A: b\n\nbody", "A: b\n", "body"},
		{"A: b\r\n", "A: b\r\n", ""},
		{"\r\nbody", "", "body"},
		{"A: b\r\nC: d\n\r\nbody\r\n\r\nmore", "A: b\r\nC: d\n", "body\r\n\r\nmore"},
	}
	for _, c := range cases {
		h, b := SplitMessage([]byte(c.in))
		if string(h) != c.header || string(b) != c.body {
			t.Errorf("SplitMessage(%q) = %q, %q; want %q, %q", c.in, h, b, c.header, c.body)
		}
	}
}

func FuzzKey(f *testing.F) {
	f.Add([]byte(fullMessage))
	f.Add([]byte("Message-ID: 1234\r\n\r\n"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k := KeyOf(raw)
		if k != KeyOf(raw) {
			t.Fatal("key not deterministic")
		}
		h, b := SplitMessage(raw)
		if len(b) > KeyBodyPrefix {
			b = b[:KeyBodyPrefix]
		}
		if NewKey(h, b, int64(len(raw))) != k {
			t.Fatal("NewKey and KeyOf disagree")
		}
		if id := k.MessageID; id != "" && (id[0] != '<' || id[len(id)-1] != '>' || len(id) > maxMessageIDLen+2 && !strings.HasPrefix(id, "<sha256:")) {
			t.Fatalf("bad normalised Message-ID %q", id)
		}
	})
}

// TestFingerprintIsPinned: checkpoints store fingerprints, so the
// definition may never change (these values were computed before Loose was
// added, and must stay).
func TestFingerprintIsPinned(t *testing.T) {
	for raw, want := range map[string]string{
		"Message-ID: <golden@example.org>\r\nDate: Tue, 1 Feb 2022 10:00:00 +0000\r\nFrom: a@example.org\r\nSubject: pinned\r\n\r\nbody\r\n": "eb35502abd17d2f22a44cfb6f7d8a6a9",
		"no header at all": "6e282ae565b62d0e1132483ddf51f033",
	} {
		if got := KeyOf([]byte(raw)).Fingerprint.String(); got != want {
			t.Errorf("fingerprint of %q = %s, want %s: a changed definition orphans every checkpoint", raw, got, want)
		}
	}
}

// TestLooseIgnoresSizeOnly: the loose fingerprint survives what servers and
// tools do to a message's bytes (CRLF normalisation, an added header
// outside the key fields) and still tells different bodies apart.
func TestLooseIgnoresSizeOnly(t *testing.T) {
	base := "Message-ID: <l@example.org>\r\nDate: Tue, 1 Feb 2022 10:00:00 +0000\r\nSubject: s\r\n\r\nline one\r\nline two\r\n" +
		strings.Repeat("a longer body, past the 1,024 bytes the key reads\r\n", 60)
	k := KeyOf([]byte(base))
	for name, variant := range map[string]string{
		"bare LF":      strings.ReplaceAll(base, "\r\n", "\n"),
		"X-TUID added": "X-TUID: abcdef\r\n" + base,
		"CR CR LF":     strings.Replace(base, "line one\r\n", "line one\r\r\n", 1),
	} {
		v := KeyOf([]byte(variant))
		if v.Fingerprint == k.Fingerprint {
			t.Errorf("%s: same fingerprint as the original, the test says nothing", name)
		}
		if v.Loose != k.Loose {
			t.Errorf("%s: loose fingerprint differs from the original's", name)
		}
	}
	if other := KeyOf([]byte(strings.Replace(base, "line two", "line 2", 1))); other.Loose == k.Loose {
		t.Errorf("another body has the same loose fingerprint")
	}
}

// A NUL counts as the 0x80 Dovecot serves in its place: the same message
// read from Dovecot and from Cyrus (which serves NUL) has one key.
func TestKeyNULIsItsStandIn(t *testing.T) {
	head := []byte("From: a@b\r\nSubject: x\x00y\r\nMessage-ID: <n@b>\r\n")
	withNUL := NewKey(head, []byte("body\x00\x00 end\r\n"), 100)
	served := NewKey([]byte(strings.ReplaceAll(string(head), "\x00", "\x80")), []byte("body\x80\x80 end\r\n"), 100)
	if withNUL != served {
		t.Errorf("keys differ: %+v, %+v", withNUL, served)
	}
	if other := NewKey(head, []byte("body\x80\x81 end\r\n"), 100); other.Fingerprint == withNUL.Fingerprint {
		t.Errorf("a different body gives the same fingerprint")
	}
}
