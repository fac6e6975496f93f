package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/mailferry/mailferry/providers/mutf7"
)

// Layout is how folders sit in the tree. In both, the root's cur, new and
// tmp are INBOX.
type Layout uint8

const (
	// LayoutAuto reads the layout the tree has, and writes Maildir++ into a
	// tree that has no folder yet.
	LayoutAuto Layout = iota
	// LayoutMaildirPP is Maildir++ (Courier, and Dovecot's default): every
	// folder is a directory of the root named '.' and the levels of its
	// name joined with '.': ".Work.Projects", ".INBOX.Lists". Each has a
	// "maildirfolder" file.
	LayoutMaildirPP
	// LayoutFS is Dovecot's LAYOUT=fs: a folder's levels are nested
	// directories, "Work/Projects".
	LayoutFS
)

func (l Layout) String() string {
	switch l {
	case LayoutMaildirPP:
		return "Maildir++"
	case LayoutFS:
		return "fs"
	}
	return "auto"
}

// Folder names on disk (see docs/providers.md for the table):
//
//   - Each level of a name is stored in modified UTF-7, as Dovecot and
//     Courier-IMAP before 5.0 do, or in UTF-8 with Options.UTF8Names
//     (Dovecot's :UTF-8, Courier-IMAP 5).
//   - Characters a level cannot hold are written as '\' and two hex
//     digits, as Dovecot's listescape plugin writes them: '.' in Maildir++
//     ("v1.2" as "v1\2e2"), '\' itself, and '~' at the start of a level.
//     Reading decodes them, so such names read back as themselves; a
//     Dovecot serving the tree shows them the same with mail_plugins =
//     listescape.
//   - In the fs layout "cur", "new" and "tmp" cannot be levels (they are a
//     folder's own directories); such names are refused.

const escapeChar = '\\'

// encodeLevel writes one level of a canonical name as a directory name.
func encodeLevel(level string, layout Layout, utf8Names bool) string {
	var b strings.Builder
	for i := 0; i < len(level); i++ {
		c := level[i]
		if c == escapeChar || c == '.' && layout == LayoutMaildirPP || c == '~' && i == 0 {
			fmt.Fprintf(&b, "%c%02x", escapeChar, c)
			continue
		}
		b.WriteByte(c)
	}
	s := b.String()
	if utf8Names {
		return s
	}
	return mutf7.Encode(s)
}

// decodeLevel reads one level of a directory name; bad reports a level
// that is neither modified UTF-7 nor UTF-8 (its bad bytes become "%XX").
func decodeLevel(s string, utf8Names bool) (name string, bad bool) {
	if !utf8Names {
		if d, ok := mutf7.DecodeCanonical(s); ok {
			s = d
		}
	}
	if !utf8.ValidString(s) {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				fmt.Fprintf(&b, "%%%02X", s[i])
			} else {
				b.WriteString(s[i : i+n])
			}
			i += n
		}
		s, bad = b.String(), true
	}
	return unescape(s), bad
}

// unescape decodes "\XX" (two hex digits) into the byte XX.
func unescape(s string) string {
	if !strings.ContainsRune(s, escapeChar) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == escapeChar && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(hexVal(s[i+1])<<4 | hexVal(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
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

// folderPath returns the maildir directory of a canonical name.
func folderPath(root string, name string, layout Layout, utf8Names bool) (string, error) {
	if name == "INBOX" {
		return root, nil
	}
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return "", fmt.Errorf("mailbox name %q: want non-empty UTF-8 without NUL, CR or LF", name)
	}
	levels := strings.Split(name, "/")
	enc := make([]string, len(levels))
	for i, l := range levels {
		if l == "" {
			return "", fmt.Errorf("mailbox name %q: empty level", name)
		}
		if layout == LayoutFS && (l == "." || l == ".." || isMaildirDir(l)) {
			return "", fmt.Errorf("mailbox name %q: %q cannot be a level in the fs layout", name, l)
		}
		enc[i] = encodeLevel(l, layout, utf8Names)
	}
	if layout == LayoutFS {
		return filepath.Join(root, filepath.Join(enc...)), nil
	}
	return filepath.Join(root, "."+strings.Join(enc, ".")), nil
}

func isMaildirDir(name string) bool { return name == "cur" || name == "new" || name == "tmp" }

// isMaildir reports whether dir holds a maildir (its cur directory).
func isMaildir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "cur"))
	return err == nil && fi.IsDir()
}

// found is a folder found in the tree.
type found struct {
	name string // canonical
	dir  string
}

// detect tells the layout of an existing tree: Maildir++ if a dot
// directory of the root is a maildir, fs if another directory holds one.
// With both, Maildir++ wins and both is true.
func detect(root string) (layout Layout, both bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return LayoutAuto, false
	}
	pp, fsl := false, false
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || isMaildirDir(name) || name == courierKeywords {
			continue
		}
		dir := filepath.Join(root, name)
		if strings.HasPrefix(name, ".") {
			pp = pp || isMaildir(dir)
		} else {
			fsl = fsl || holdsMaildir(dir, 8)
		}
	}
	switch {
	case pp:
		return LayoutMaildirPP, fsl
	case fsl:
		return LayoutFS, false
	}
	return LayoutAuto, false
}

// holdsMaildir reports whether dir or a directory below it (depth levels
// at most) is a maildir.
func holdsMaildir(dir string, depth int) bool {
	if isMaildir(dir) {
		return true
	}
	if depth == 0 {
		return false
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() && !isMaildirDir(e.Name()) && holdsMaildir(filepath.Join(dir, e.Name()), depth-1) {
			return true
		}
	}
	return false
}

// walk finds the folders of the tree. What it skips it reports.
func walk(root string, layout Layout, utf8Names bool) ([]found, []Problem) {
	var out []found
	var problems []Problem
	byName := map[string]string{}
	report := func(path, format string, args ...any) {
		problems = append(problems, Problem{Path: path, What: fmt.Sprintf(format, args...)})
	}
	add := func(name, dir string, bad bool) {
		if bad {
			report(dir, "folder name is neither modified UTF-7 nor UTF-8; mailbox named %q", name)
		}
		if other, dup := byName[name]; dup {
			report(dir, "mailbox %q is already %s; skipped", name, other)
			return
		}
		byName[name] = dir
		out = append(out, found{name: name, dir: dir})
	}
	if isMaildir(root) {
		add("INBOX", root, false)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			report(root, "cannot read: %v", err)
		}
		return out, problems
	}
	if layout == LayoutFS {
		walkFS(root, nil, utf8Names, add, report)
		return out, problems
	}
	for _, e := range entries {
		dname := e.Name()
		if !strings.HasPrefix(dname, ".") || dname == "." || dname == ".." {
			continue
		}
		dir := filepath.Join(root, dname)
		if e.Type()&fs.ModeSymlink != 0 {
			if isMaildir(dir) {
				report(dir, "a symbolic link (a shared folder?) is not followed; skipped")
			}
			continue
		}
		if !e.IsDir() || !isMaildir(dir) {
			continue
		}
		levels := strings.Split(dname[1:], ".")
		names := make([]string, len(levels))
		bad := false
		for i, l := range levels {
			if l == "" {
				names = nil
				break
			}
			var b bool
			names[i], b = decodeLevel(l, utf8Names)
			bad = bad || b
		}
		if names == nil {
			report(dir, "folder name has an empty level; skipped")
			continue
		}
		name := canonical(strings.Join(names, "/"))
		if name == "INBOX" {
			report(dir, "a folder named INBOX beside the root's INBOX; skipped")
			continue
		}
		add(name, dir, bad)
	}
	return out, problems
}

// walkFS finds the folders below dir in the fs layout; levels are the
// names of the directories down to dir.
func walkFS(dir string, levels []string, utf8Names bool, add func(string, string, bool), report func(string, string, ...any)) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		report(dir, "cannot read: %v", err)
		return
	}
	for _, e := range entries {
		dname := e.Name()
		if len(levels) == 0 && isMaildirDir(dname) || isMaildirDir(dname) && isMaildir(dir) || dname == courierKeywords {
			continue
		}
		sub := filepath.Join(dir, dname)
		if e.Type()&fs.ModeSymlink != 0 {
			report(sub, "a symbolic link is not followed; skipped")
			continue
		}
		if !e.IsDir() {
			continue
		}
		name, bad := decodeLevel(dname, utf8Names)
		path := append(append([]string(nil), levels...), name)
		if isMaildir(sub) {
			full := canonical(strings.Join(path, "/"))
			if full == "INBOX" {
				report(sub, "a folder named INBOX beside the root's INBOX; skipped")
			} else {
				add(full, sub, bad)
			}
		}
		walkFS(sub, path, utf8Names, add, report)
	}
}
