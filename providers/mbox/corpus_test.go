package mbox_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mbox"
)

// corpusDir is the shared corpus (see mbox.CorpusRoot); tests that need
// it skip without it.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir := mbox.CorpusRoot()
	if dir == "" {
		t.Skip("the shared corpus is not here (set MAILFERRY_CORPUS to its directory)")
	}
	return dir
}

func TestTestdata(t *testing.T) {
	dir := t.TempDir()
	files, err := filepath.Glob("testdata/*.mbox")
	if err != nil || len(files) != 7 {
		t.Fatalf("testdata: %v, %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, filepath.Base(f)), string(b))
	}
	st := openStore(t, dir, mbox.Options{ReadOnly: true})

	t.Run("unmunged", func(t *testing.T) {
		msgs := read(t, st, "mimekit__unmunged")
		if len(msgs) != 2 {
			t.Fatalf("%d messages, want 2: the From lines in the bodies are text", len(msgs))
		}
		if !strings.HasPrefix(string(msgs[0].raw), "From: Jeffrey Stedfast") || !strings.Contains(string(msgs[0].raw), "\n\nFrom Russia with love\n\nWhat does Thunderbird do?") {
			t.Errorf("first message %q", msgs[0].raw)
		}
		if !strings.HasSuffix(string(msgs[1].raw), "What did Thunderbird do this time?\n") {
			t.Errorf("second message ends %q", msgs[1].raw[max(0, len(msgs[1].raw)-40):])
		}
		path := filepath.Join(dir, "mimekit__unmunged.mbox")
		hasProblem(t, st, path, 9, "kept as message text")
		hasProblem(t, st, path, 13, "no blank line after the last message")
		if d := st.Doubts("mimekit__unmunged"); len(d) != 2 || !strings.Contains(d[0], ":9 (byte 195)") || !strings.Contains(d[1], ":21 (byte 435)") {
			t.Errorf("doubts %q, want the two From Russia lines", d)
		}
	})
	t.Run("Mail::Box mbox.src and mbox.win", func(t *testing.T) {
		for _, name := range []string{"perl-mail-box__mbox-src", "perl-mail-box__mbox-win"} {
			msgs := read(t, st, name)
			if len(msgs) != 45 {
				t.Fatalf("%s: %d messages, want 45", name, len(msgs))
			}
			// From magick-owner@unca-don.wizards.dupont.com Wed Feb  9 23:15 MET 2000
			if got, want := msgs[1].info.InternalDate, time.Date(2000, 2, 9, 22, 15, 0, 0, time.UTC); !got.Equal(want) {
				t.Errorf("%s message 2: InternalDate %v, want %v", name, got, want)
			}
			for i, m := range msgs {
				if !fieldLine.Match(m.raw) {
					t.Errorf("%s message %d starts %q, not with a header", name, i+1, m.raw[:min(40, len(m.raw))])
				}
				if bytes.Contains(m.raw, []byte("\nFrom magick-owner@")) {
					t.Errorf("%s message %d holds another message's From_ line", name, i+1)
				}
			}
			if d := st.Doubts(name); len(d) != 0 {
				t.Errorf("%s: doubts %q", name, d)
			}
		}
		// The same messages, but for line ends and Content-Length fields,
		// which the CRLF file counts with its CRs (and which agree with
		// the From_ lines in both).
		src, win := read(t, st, "perl-mail-box__mbox-src"), read(t, st, "perl-mail-box__mbox-win")
		length := regexp.MustCompile(`(?m)^Content-Length: \d+\r?$`)
		for i := range src {
			lf := length.ReplaceAll(src[i].raw, nil)
			if !bytes.Equal(length.ReplaceAll(bytes.ReplaceAll(win[i].raw, []byte("\r\n"), []byte("\n")), nil), lf) {
				t.Errorf("message %d differs between the LF and the CRLF file beyond line ends", i+1)
			}
			crlf := bytes.ReplaceAll(src[i].raw, []byte("\n"), []byte("\r\n"))
			if src[i].info.CRLFSize != int64(len(crlf)) || win[i].info.CRLFSize != win[i].info.Size {
				t.Errorf("message %d: CRLF sizes %d (LF file) and %d (CRLF file), want %d and %d", i+1,
					src[i].info.CRLFSize, win[i].info.CRLFSize, len(crlf), win[i].info.Size)
			}
		}
	})
	t.Run("mime4j rlug", func(t *testing.T) {
		msgs := read(t, st, "james-mime4j__mbox-rlug")
		if len(msgs) != 5 {
			t.Fatalf("%d messages, want 5", len(msgs))
		}
		if got, want := msgs[0].info.InternalDate, time.Date(2003, 3, 4, 3, 33, 20, 0, time.UTC); !got.Equal(want) {
			t.Errorf("InternalDate %v, want %v", got, want)
		}
	})
	t.Run("independent readers", func(t *testing.T) {
		var paths []string
		for _, f := range files {
			paths = append(paths, filepath.Join(dir, filepath.Base(f)))
		}
		py := pythonIDs(t, paths...)
		for _, path := range paths {
			name := strings.TrimSuffix(filepath.Base(path), ".mbox")
			msgs := read(t, st, name)
			var ids []string
			for _, m := range msgs {
				ids = append(ids, firstID(m.raw))
			}
			doubt := len(st.Doubts(name)) > 0
			if py != nil && slices.Equal(py[path], ids) == doubt {
				t.Errorf("%s: mailferry finds %d messages (doubt: %v), Python %d: they must agree unless the count is in doubt", name, len(ids), doubt, len(py[path]))
			}
		}
	})
	t.Run("issue1189", func(t *testing.T) {
		msgs := read(t, st, "mimekit__issue1189")
		if len(msgs) != 4 {
			t.Fatalf("%d messages, want 4", len(msgs))
		}
		for i, m := range msgs {
			// No date on the From_ line: the Date field gives it.
			if want := fmt.Sprintf("Body of message %d.", i+1); !strings.Contains(string(m.raw), want) {
				t.Errorf("message %d lacks %q", i+1, want)
			}
			if m.info.InternalDate.Year() != 2025 {
				t.Errorf("message %d: InternalDate %v, want the Date field's (2025)", i+1, m.info.InternalDate)
			}
		}
	})
	t.Run("intdate", func(t *testing.T) {
		msgs := read(t, st, "imaptest__broken__search-intdate")
		if len(msgs) != 16 {
			t.Fatalf("%d messages, want 16", len(msgs))
		}
		if got, want := msgs[4].info.InternalDate, time.Date(2007, 3, 25, 1, 0, 0, 0, time.UTC); !got.Equal(want) {
			t.Errorf("message 5: InternalDate %v, want the From_ line's %v", got, want)
		}
	})
	t.Run("partial", func(t *testing.T) {
		got := raws(read(t, st, "imaptest__search-partial"))
		if want := []string{"\n1\n", "\n2\n", "\n3\n", "\n4\n", "\n5\n"}; !slices.Equal(got, want) {
			t.Errorf("messages %q, want %q", got, want)
		}
	})
}

// fieldLine matches a message that starts with a header field.
var fieldLine = regexp.MustCompile(`^[!-9;-~]+:`)

// manifestCounts reads the corpus manifest's message counts per mbox (as
// split on a blank line and "From ").
func manifestCounts(t *testing.T, corpus string) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join(corpus, "manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`mbox:(\d+) msgs`)
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			out[cols[0]] = n
		}
	}
	return out
}

// TestCorpusMbox reads every mbox file of the shared corpus, checks the
// count against the manifest where the split rules agree, then writes every
// message to a new mbox store and reads it back byte for byte with its
// flags and date.
func TestCorpusMbox(t *testing.T) {
	corpus := corpusDir(t)
	files, _ := filepath.Glob(filepath.Join(corpus, "mbox", "*", "*.mbox"))
	if len(files) == 0 {
		t.Skip("no shared corpus at " + corpus)
	}
	counts := manifestCounts(t, corpus)
	src := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(src, filepath.Base(filepath.Dir(f)), filepath.Base(f)), string(b))
	}
	in := openStore(t, src, mbox.Options{ReadOnly: true})
	outDir := t.TempDir()
	out := openStore(t, outDir, mbox.Options{})
	ctx := context.Background()
	total := 0
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join(corpus, "mbox"), f)
		name := strings.TrimSuffix(filepath.ToSlash(rel), ".mbox")
		msgs := read(t, in, name)
		total += len(msgs)
		// The manifest splits at every "From " after a blank line. Where
		// that and mailferry differ, mailferry must say the count is in
		// doubt (MimeKit's unmunged.mbox and content-length.mbox, with
		// unquoted From lines in bodies and From_ lines without blank
		// lines before them).
		want := counts["mbox/"+filepath.ToSlash(rel)]
		if doubts := in.Doubts(name); len(doubts) > 0 {
			t.Logf("%s: %d messages (manifest %d), count in doubt: %s", rel, len(msgs), want, doubts[0])
		} else if len(msgs) != want {
			t.Errorf("%s: %d messages, manifest says %d, and no doubt reported", rel, len(msgs), want)
		}
		if err := out.CreateMailbox(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		mb := openBox(t, out, name)
		for _, m := range msgs {
			info := m.info
			info.Flags = []string{`\Seen`, "From", ">From"}
			if err := mb.Append(ctx, bytes.NewReader(m.raw), int64(len(m.raw)), info, func(_ providers.UID, err error) {
				if err != nil {
					t.Errorf("%s: append refused: %v", name, err)
				}
			}); err != nil {
				t.Fatalf("%s: Append: %v", name, err)
			}
		}
		if err := mb.Close(); err != nil {
			t.Fatal(err)
		}
		back := read(t, openStore(t, outDir, mbox.Options{ReadOnly: true}), name)
		if len(back) != len(msgs) {
			t.Fatalf("%s: %d messages written, %d read back", name, len(msgs), len(back))
		}
		for i := range back {
			if !bytes.Equal(back[i].raw, msgs[i].raw) {
				t.Errorf("%s message %d: bytes changed by writing and reading", name, i+1)
			}
			if !back[i].info.InternalDate.Equal(msgs[i].info.InternalDate.Truncate(time.Second)) {
				t.Errorf("%s message %d: date %v, written %v", name, i+1, back[i].info.InternalDate, msgs[i].info.InternalDate)
			}
			if !slices.Equal(back[i].info.Flags, []string{`\Seen`, "From", ">From"}) {
				t.Errorf("%s message %d: flags %q", name, i+1, back[i].info.Flags)
			}
		}
	}
	t.Logf("%d files, %d messages; problems reported: %d", len(files), total, len(in.Problems()))
}

// TestCorpusMessages writes every message file of the shared corpus as one
// mbox and reads it back byte for byte, in another store.
func TestCorpusMessages(t *testing.T) {
	corpus := corpusDir(t)
	files, _ := filepath.Glob(filepath.Join(corpus, "messages", "*", "*.eml"))
	if len(files) == 0 {
		t.Skip("no shared corpus at " + corpus)
	}
	dir := t.TempDir()
	st := openStore(t, dir, mbox.Options{})
	ctx := context.Background()
	if err := st.CreateMailbox(ctx, "all", ""); err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	var raw []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
		raw = append(raw, string(b))
	}
	appendRaw(t, st, "all", raw...)
	again := openStore(t, dir, mbox.Options{ReadOnly: true})
	got := read(t, again, "all")
	if len(got) != len(want) {
		t.Fatalf("%d messages written, %d read", len(want), len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i].raw, want[i]) {
			t.Errorf("%s: bytes changed (%d written, %d read)", files[i], len(want[i]), len(got[i].raw))
		}
	}
	if p := again.Problems(); len(p) != 0 {
		t.Errorf("problems reading mailferry's own file: %v", p)
	}
}
