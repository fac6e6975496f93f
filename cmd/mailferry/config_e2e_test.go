package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// TestConfigFile: a wave's settings in a YAML file serve every command;
// relative paths are the file's; a command's section is its own; flags and
// the environment override the file; a password written in it, or a
// setting no command has, is refused.
func TestConfigFile(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 12, 1<<10, 4<<10, 81)
	seed(t, p.src, "Junk", 3, 1<<10, 2<<10, 82)
	dir := t.TempDir()
	writeFile(t, dir, "dst.pw", dstPass+"\n")
	cfg := writeFile(t, dir, "wave.yaml", `# wave 1
from: imap+plain://alice@`+p.src.Addr()+`
to: imap+plain://alice@`+p.dst.Addr()+`
from-password: env:OLD_PW
to-password: file:dst.pw
checkpoint: wave.db
exclude: [Junk]
migrate:
  commit-every: 16
  output: text
`)
	env := []string{"OLD_PW=" + srcPass, "MAILFERRY_FROM_PASSWORD=", "MAILFERRY_TO_PASSWORD="}
	r := runBinary(t, env, "migrate", "--config", cfg)
	if r.code != exitOK {
		t.Fatalf("migrate --config: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "wave.db")); err != nil {
		t.Errorf("the checkpoint is not beside the config file: %v", err)
	}
	if got, want := lineSet(p.dst.Messages(t, "alice", "INBOX")), lineSet(p.src.Messages(t, "alice", "INBOX")); !slices.Equal(got, want) {
		t.Errorf("INBOX not copied as the config says")
	}
	if slices.Contains(p.dst.Mailboxes(t, "alice"), "Junk") && len(p.dst.Messages(t, "alice", "Junk")) > 0 {
		t.Errorf("Junk copied despite exclude in the config")
	}
	if r := runBinary(t, env, "verify", "--config", cfg, "--output", "text"); r.code != exitOK || !strings.Contains(r.stdout, "PASS") {
		t.Errorf("verify --config: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// A flag wins over the file.
	if r := runBinary(t, env, "status", "--config", cfg, "--checkpoint", filepath.Join(dir, "other.db")); r.code != exitUsage || !strings.Contains(r.stderr, "other.db does not exist") {
		t.Errorf("--checkpoint over the config's: exit %d\n%s", r.code, r.stderr)
	}
	// The environment wins over the file's reference.
	r = runBinary(t, []string{"OLD_PW=" + srcPass, "MAILFERRY_FROM_PASSWORD=not-it"}, "migrate", "--config", cfg)
	if r.code != exitPartial || !strings.Contains(r.stdout+r.stderr, "AUTHENTICATIONFAILED") {
		t.Errorf("$MAILFERRY_FROM_PASSWORD over the config's env: exit %d\n%s", r.code, r.stderr)
	}
	for name, body := range map[string]string{
		"literal.yaml": "to-password: " + dstPass + "\n",
		"unknown.yaml": "concurency: 2\n",
		"flag.yaml":    "password: x\n",
	} {
		r := runBinary(t, nil, "status", "--config", writeFile(t, dir, name, body), "--checkpoint", filepath.Join(dir, "wave.db"))
		if r.code != exitUsage || strings.Contains(r.stderr, dstPass) {
			t.Errorf("%s: exit %d, want %d without echoing the secret\n%s", name, r.code, exitUsage, r.stderr)
		}
	}
}

// TestFolderFlags: one pair of folder flags, a glob unless "re:" says a
// regular expression; a glob that looks like one is warned about; the old
// names still work, with a notice.
func TestFolderFlags(t *testing.T) {
	p := newPair(t, imaptest.DovecotOptions{})
	seed(t, p.src, "INBOX", 3, 1<<10, 2<<10, 91)
	seed(t, p.src, "Junk", 2, 1<<10, 2<<10, 92)
	seed(t, p.src, "Trash", 2, 1<<10, 2<<10, 93)
	seed(t, p.src, "Projects/Alpha", 2, 1<<10, 2<<10, 94)
	skipped := func(r result, report string) []string {
		t.Helper()
		if r.code != exitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		var out []string
		for _, s := range readReport(t, report).Accounts[0].Skipped {
			out = append(out, s.Mailbox)
		}
		slices.Sort(out)
		return out
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	r := p.migrate(t, nil, "--dry-run", "--output", "text", "--report", report, "--exclude", "Junk|Trash")
	if got := skipped(r, report); len(got) != 0 || !strings.Contains(r.stderr, "--exclude 're:Junk|Trash'") {
		t.Errorf("--exclude 'Junk|Trash': skipped %v; want none, and a warning that it is a glob\n%s", got, r.stderr)
	}
	for _, args := range [][]string{{"--exclude", "re:Junk|Trash"}, {"--exclude", "Junk", "--exclude", "Tr*"}, {"--exclude-folder", "Junk|Trash"}} {
		r := p.migrate(t, nil, append([]string{"--dry-run", "--output", "text", "--report", report}, args...)...)
		if got := skipped(r, report); !slices.Equal(got, []string{"Junk", "Trash"}) {
			t.Errorf("%v: skipped %v, want Junk and Trash", args, got)
		}
		if args[0] == "--exclude-folder" && !strings.Contains(r.stderr, "--exclude-folder is now --exclude 're:REGEX'") {
			t.Errorf("--exclude-folder without a notice:\n%s", r.stderr)
		}
	}
	if r := p.migrate(t, nil, "--dry-run", "--output", "text", "--report", report, "--include", "Projects/*"); !slices.Contains(skipped(r, report), "INBOX") {
		t.Errorf("--include 'Projects/*' kept INBOX")
	}
	if r := p.migrate(t, nil, "--batch-size", "8", "--output", "text"); r.code != exitOK || !strings.Contains(r.stderr, "--commit-every") {
		t.Errorf("--batch-size: exit %d, want it to work and name --commit-every\n%s", r.code, r.stderr)
	}
}
