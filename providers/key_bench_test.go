package providers

import (
	"strings"
	"testing"
)

var benchMessage = []byte(strings.Repeat("Received: from relay.example.org by mx.example.com; Tue, 1 Feb 2022 10:00:00 +0000\r\n", 8) +
	"Message-ID: <1234.5678@example.org>\r\nDate: Tue, 1 Feb 2022 10:00:00 +0000\r\nFrom: Ana <ana@example.org>\r\n" +
	"To: Bob <bob@example.com>\r\nCc: carol@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus dem B\r\n =?utf-8?q?=C3=BCro?=\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("body line of a typical message\r\n", 200))

// BenchmarkKeyOf is the fingerprint of a whole 7 KB message.
func BenchmarkKeyOf(b *testing.B) {
	b.SetBytes(int64(len(benchMessage)))
	for b.Loop() {
		KeyOf(benchMessage)
	}
}

// BenchmarkNewKey is the fingerprint from what the IMAP adapter fetches:
// the key header fields and 1 KiB of body.
func BenchmarkNewKey(b *testing.B) {
	header, body := SplitMessage(benchMessage)
	body = body[:KeyBodyPrefix]
	for b.Loop() {
		NewKey(header, body, int64(len(benchMessage)))
	}
}

func BenchmarkNormalizeMessageID(b *testing.B) {
	ids := []string{"<1234.5678@example.org>", "  <folded@\r\n example.org>", "no-brackets@example.org", "junk <a@b> junk"}
	for b.Loop() {
		for _, id := range ids {
			NormalizeMessageID(id)
		}
	}
}
