package mbox

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/providers"
)

// CorpusRoot finds the shared corpus of real, often malformed mail: at
// $MAILFERRY_CORPUS, else ../shared/corpus beside the repository, else
// /work/shared/corpus; "" when there is none (it is not part of this
// repository, and tests must pass without it). Exported for the mbox_test
// package; it exists only in tests.
func CorpusRoot() string {
	for _, d := range []string{os.Getenv("MAILFERRY_CORPUS"), filepath.Join("..", "..", "..", "shared", "corpus"), "/work/shared/corpus"} {
		if d == "" {
			continue
		}
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	return ""
}

// quoteRoundTrip quotes msg as the writer does, checks the stored form
// against want if given, and unquotes it as the reader does.
func quoteRoundTrip(t *testing.T, msg []byte, want string) {
	t.Helper()
	var stored bytes.Buffer
	c, err := copyQuoted(&stored, nil, bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatalf("copyQuoted: %v", err)
	}
	if c.stored != int64(stored.Len()) {
		t.Errorf("copyQuoted reports %d bytes stored, wrote %d", c.stored, stored.Len())
	}
	if len(msg) > 0 && c.last != msg[len(msg)-1] {
		t.Errorf("copyQuoted reports last byte %q, want %q", c.last, msg[len(msg)-1])
	}
	if want := int64(bytes.Count(msg, []byte{'\n'}) - bytes.Count(msg, []byte("\r\n"))); c.bare != want {
		t.Errorf("copyQuoted counts %d bare LFs, the message has %d", c.bare, want)
	}
	if want != "" && stored.String() != want {
		t.Errorf("stored form:\n got %q\nwant %q", stored.String(), want)
	}
	for _, line := range bytes.SplitAfter(stored.Bytes(), []byte{'\n'}) {
		if bytes.HasPrefix(line, fromSpace) {
			t.Errorf("stored form has an unquoted From line %q", line)
		}
	}
	got, err := io.ReadAll(newUnquoter(bufio.NewReaderSize(&stored, bufSize)))
	if err != nil {
		t.Fatalf("unquote: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("round trip changed the message: %d bytes in, %d out", len(msg), len(got))
	}
}

func TestQuote(t *testing.T) {
	quoteRoundTrip(t, []byte("From a\nx From b\n>From c\n>>From d\n>Fro\n> From e\nFrom"), ""+
		">From a\nx From b\n>>From c\n>>>From d\n>Fro\n> From e\nFrom")
	quoteRoundTrip(t, []byte("From x\r\n\r\nFrom y\r\n"), ">From x\r\n\r\n>From y\r\n")
	quoteRoundTrip(t, nil, "")
	quoteRoundTrip(t, []byte(">>>"), ">>>")
	quoteRoundTrip(t, []byte(">>>From "), ">>>>From ")

	// Lines longer than the buffer, with "From " or a run of '>' across the
	// buffer boundary.
	long := strings.Repeat("x", bufSize-3)
	for _, msg := range []string{
		long + "\nFrom after a long line\n",
		strings.Repeat(">", bufSize+10) + "From a run longer than the buffer\n",
		strings.Repeat(">", 2*bufSize) + "\n",
		strings.Repeat(">", bufSize-2) + "From across the boundary\n",
		strings.Repeat(">", bufSize-2) + "Fromage across the boundary\n",
		"x\n" + strings.Repeat(">", bufSize-4) + "From\n",
		strings.Repeat("a", bufSize) + "From not at a line start\n",
	} {
		quoteRoundTrip(t, []byte(msg), "")
	}
}

func TestCopyQuotedShortSource(t *testing.T) {
	_, err := copyQuoted(io.Discard, nil, strings.NewReader("short"), 10)
	if err == nil {
		t.Fatal("copyQuoted of 5 bytes announced as 10 succeeded")
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "From x\n", ">From\n>>From \n", "a\nFrom b\r\n>From c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) { quoteRoundTrip(t, msg, "") })
}

// keyMatches checks that List's key (readHeader over a stream) is KeyOf's.
func keyMatches(t *testing.T, raw []byte) {
	t.Helper()
	got, err := readHeader(bufio.NewReaderSize(bytes.NewReader(raw), 4096), int64(len(raw)))
	if err != nil {
		t.Fatalf("readHeader: %v", err)
	}
	if want := providers.KeyOf(raw); got.key != want {
		t.Errorf("key of %q:\n got %+v\nwant %+v", raw[:min(len(raw), 80)], got.key, want)
	}
}

func TestReadHeaderKey(t *testing.T) {
	for _, raw := range []string{
		"",
		"\r\n",
		"\n\nbody",
		"Message-ID: <a@b>\r\n\r\nbody",
		"Message-ID:\r\n <folded@b>\r\nSubject: x\r\n\ty\r\n\r\nbody",
		"Subject: a\r\nnot a field\r\n continued\r\nMessage-ID: <a@b>\r\n\r\n",
		"Subject: only a header, no blank line",
		"Subject : spaced name\nDate: Mon, 1 Jan 2001 00:00:00 +0000\n\n" + strings.Repeat("b", 5000),
		"X-Long: " + strings.Repeat("y", 3*4096) + "\r\nMessage-ID: <after-long@b>\r\n\r\nbody",
		"Subject: " + strings.Repeat("s", 3*4096) + "\r\n\r\nbody",
		"From x Mon Jan 1 00:00:00 2001\nMessage-ID: <z@b>\n\nbody",
		"Message-ID: <a@b>\r\n\r",
		"Message-ID: <a@b>\r\n\r\r\nbody",
	} {
		keyMatches(t, []byte(raw))
	}
	// Every message of the shared corpus, when present.
	var files []string
	if dir := CorpusRoot(); dir != "" {
		files, _ = filepath.Glob(filepath.Join(dir, "messages", "*", "*.eml"))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		keyMatches(t, raw)
	}
	t.Logf("checked %d corpus messages", len(files))
}

func FuzzReadHeaderKey(f *testing.F) {
	for _, s := range []string{"Message-ID: <a@b>\r\n\r\nbody", "Subject: x\n y\n\n", "a\n\n", "\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { keyMatches(t, raw) })
}

func TestHeaderFlags(t *testing.T) {
	raw := "Status: RO\r\nX-Status: AFT\r\nX-Keywords: $Label1, Work junk\r\nX-Mozilla-Status: 1008\r\n" +
		"X-Mozilla-Status2: 04800000\r\nX-Mozilla-Keys: todo                \r\nKeywords: Project-X, not valid\r\n\r\n"
	got, err := readHeader(bufio.NewReader(strings.NewReader(raw)), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`\Seen`, `\Answered`, `\Flagged`, `\Draft`, `\Deleted`, "$Forwarded", "$MDNSent", "$Label2",
		"$Label1", "Work", "junk", "todo", "Project-X"}
	if strings.Join(got.flags, " ") != strings.Join(want, " ") {
		t.Errorf("flags %q, want %q", got.flags, want)
	}
}
