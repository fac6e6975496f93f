package mbox_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"testing"

	gombox "github.com/emersion/go-mbox"
)

// Readers of mbox files that share no code with mailferry's, to check the
// files it writes as other programs will see them.

var messageIDField = regexp.MustCompile(`(?mi)^Message-ID:[ \t]*(<[^>\r\n]*>)`)

// goMboxIDs splits an mbox file with github.com/emersion/go-mbox and returns
// the Message-ID of each message ("" for one without).
func goMboxIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := gombox.NewReader(f)
	ids := []string{}
	for {
		m, err := r.NextMessage()
		if errors.Is(err, io.EOF) {
			return ids
		}
		if err != nil {
			t.Fatalf("go-mbox reading %s: %v", path, err)
		}
		raw, err := io.ReadAll(m)
		if err != nil {
			t.Fatalf("go-mbox reading %s: %v", path, err)
		}
		ids = append(ids, firstID(raw))
	}
}

func firstID(raw []byte) string {
	header, _, _ := bytes.Cut(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n\n"))
	if m := messageIDField.FindSubmatch(header); m != nil {
		return string(m[1])
	}
	return ""
}

// pythonScript prints, for each file named on the command line, the
// Message-ID of each message Python's mailbox module finds in it.
const pythonScript = `
import json, mailbox, sys
out = {}
for path in sys.argv[1:]:
    box = mailbox.mbox(path, create=False)
    out[path] = [(m['Message-ID'] or '').strip() for m in box]
    box.close()
print(json.dumps(out))
`

// pythonIDs reads the files with python3's mailbox module, in one run. It
// returns nil when python3 is not installed; under CI it must be.
func pythonIDs(t *testing.T, paths ...string) map[string][]string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is needed as an independent mbox reader (CI=true)")
		}
		t.Log("python3 not found: files checked with go-mbox only")
		return nil
	}
	out, err := exec.Command(py, append([]string{"-c", pythonScript}, paths...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python3 mailbox: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var ids map[string][]string
	if err := json.Unmarshal(out, &ids); err != nil {
		t.Fatal(err)
	}
	return ids
}
