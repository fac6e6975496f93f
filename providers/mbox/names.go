package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Mailbox files and names (see docs/providers.md for the rules as a table):
//
//   - NAME.mbox is the mailbox NAME; a file without that extension is a
//     mailbox too if it is empty or starts with "From " (Thunderbird keeps
//     its folders in files named after them, "Inbox", "Sent", ...).
//   - A directory is a level of the hierarchy; Thunderbird's "X.sbd" and
//     Apple Mail's "X.mbox" directories count as "X", and Apple Mail's
//     "X.mbox/mbox" file is the mailbox "X".
//   - Dotfiles, Thunderbird's .msf indexes, mailferry's own .mailferry
//     sidecars and a few known non-mail files are skipped silently; any other
//     file that is not an mbox is skipped and reported as a Problem.
//   - "INBOX" in any case at the top is the inbox, spelled "INBOX".
//   - Names are written with '%' as "%25", a leading '.' as "%2E", and the
//     last '.' of a directory that would read as "X.sbd" or "X.mbox" as
//     "%2E", so that every name reads back as itself; reading decodes only
//     those two escapes. Bytes of a file name that are not UTF-8 become
//     "%XX" and are reported.

const (
	mboxExt    = ".mbox"
	sbdExt     = ".sbd"
	sidecarExt = ".mailferry"
)

// skipped are file name endings that are never mail.
var skipped = []string{".msf", sidecarExt, ".dat", ".plist", ".html", ".json", ".lock", ".tmp", ".db", "table_of_contents"}

// found is one mailbox file found under the root.
type found struct {
	name string // canonical
	path string
}

// walk finds the mailbox files under root.
func walk(root string) ([]found, []Problem) {
	var out []found
	var problems []Problem
	byName := map[string]string{}
	report := func(path, format string, args ...any) {
		problems = append(problems, Problem{Path: path, Offset: -1, What: fmt.Sprintf(format, args...)})
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			report(path, "cannot read: %v", err)
			if d != nil && d.IsDir() && path != root {
				return fs.SkipDir
			}
			return nil
		}
		if path == root {
			return nil
		}
		base := d.Name()
		if strings.HasPrefix(base, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		for _, ext := range skipped {
			if strings.HasSuffix(base, ext) {
				return nil
			}
		}
		if !d.Type().IsRegular() {
			report(path, "not a regular file (symbolic links are not followed); skipped")
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		comps := strings.Split(filepath.ToSlash(rel), "/")
		apple := len(comps) > 1 && base == "mbox" && strings.HasSuffix(comps[len(comps)-2], mboxExt)
		if !strings.HasSuffix(base, mboxExt) && !apple {
			ok, err := looksLikeMbox(path)
			if err != nil {
				report(path, "cannot read: %v", err)
				return nil
			}
			if !ok {
				report(path, "not an mbox file (does not start with \"From \"); skipped")
				return nil
			}
		}
		if apple {
			comps = comps[:len(comps)-1]
		}
		name, bad := fileName(comps)
		if name == "" {
			report(path, "no mailbox name left after removing extensions; skipped")
			return nil
		}
		if bad {
			report(path, "file name is not UTF-8; mailbox named %q", name)
		}
		if other, dup := byName[name]; dup {
			report(path, "mailbox %q is already %s; skipped", name, other)
			return nil
		}
		byName[name] = path
		out = append(out, found{name: name, path: path})
		return nil
	})
	if err != nil {
		report(root, "cannot walk: %v", err)
	}
	return out, problems
}

// looksLikeMbox reports whether a file without the .mbox extension holds
// an mbox: it is empty or starts with "From " (after a byte order mark).
func looksLikeMbox(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(bom)+len(fromSpace))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	head = bytes.TrimPrefix(head[:n], bom)
	return n == 0 || bytes.HasPrefix(head, fromSpace), nil
}

// fileName maps the path components of a mailbox file to its name, and
// reports whether a component was not UTF-8.
func fileName(comps []string) (string, bool) {
	bad := false
	out := make([]string, len(comps))
	for i, c := range comps {
		if i == len(comps)-1 {
			c = strings.TrimSuffix(c, mboxExt)
		} else if s, ok := strings.CutSuffix(c, sbdExt); ok {
			c = s
		} else {
			c = strings.TrimSuffix(c, mboxExt)
		}
		if c == "" {
			return "", false
		}
		var b bool
		c, b = decodeComponent(c)
		bad = bad || b
		out[i] = c
	}
	if strings.EqualFold(out[0], "INBOX") {
		out[0] = "INBOX"
	}
	return strings.Join(out, "/"), bad
}

// decodeComponent undoes the two escapes the writer uses and turns bytes
// that are not UTF-8 into "%XX".
func decodeComponent(c string) (string, bool) {
	bad := false
	if !utf8.ValidString(c) {
		bad = true
		var b strings.Builder
		for i := 0; i < len(c); {
			r, n := utf8.DecodeRuneInString(c[i:])
			if r == utf8.RuneError && n == 1 {
				fmt.Fprintf(&b, "%%%02X", c[i])
			} else {
				b.WriteString(c[i : i+n])
			}
			i += n
		}
		return b.String(), bad
	}
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		if c[i] == '%' && i+2 < len(c) {
			switch strings.ToUpper(c[i+1 : i+3]) {
			case "25":
				b.WriteByte('%')
				i += 2
				continue
			case "2E":
				b.WriteByte('.')
				i += 2
				continue
			}
		}
		b.WriteByte(c[i])
	}
	return b.String(), bad
}

// mailboxPath returns the file of a new mailbox name under root.
func mailboxPath(root, name string) (string, error) {
	if name == "" || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("mailbox name %q: want non-empty UTF-8 without NUL", name)
	}
	comps := strings.Split(name, "/")
	parts := make([]string, len(comps))
	for i, c := range comps {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("mailbox name %q: empty, \".\" or \"..\" level", name)
		}
		c = strings.ReplaceAll(c, "%", "%25")
		if strings.HasPrefix(c, ".") {
			c = "%2E" + c[1:]
		}
		if i < len(comps)-1 {
			for _, ext := range []string{sbdExt, mboxExt} {
				if strings.HasSuffix(c, ext) {
					c = c[:len(c)-len(ext)] + "%2E" + ext[1:]
				}
			}
		} else {
			c += mboxExt
		}
		parts[i] = c
	}
	if len(parts) == 1 && strings.EqualFold(name, "INBOX") {
		parts[0] = "INBOX" + mboxExt
	}
	return filepath.Join(root, filepath.Join(parts...)), nil
}

// canonical spells the inbox INBOX, at the top and as a parent.
func canonical(name string) string {
	first, rest, nested := strings.Cut(name, "/")
	if strings.EqualFold(first, "INBOX") {
		if nested {
			return "INBOX/" + rest
		}
		return "INBOX"
	}
	return name
}
