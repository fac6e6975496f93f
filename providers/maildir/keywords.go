package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	dovecotKeywords = "dovecot-keywords"
	courierKeywords = "courierimapkeywords"
	maxKeywords     = 26 // the letters a-z
)

// keywords is a folder's dovecot-keywords: lines "<n> <name>", where n in
// 0..25 stands for the letter 'a'+n in file names.
type keywords struct {
	names [maxKeywords]string
	mtime time.Time // of the file as read; zero when there was none
}

// readKeywords reads path; a missing file is no keywords. Lines Dovecot
// would skip are skipped.
func readKeywords(path string) (*keywords, error) {
	kw := &keywords{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return kw, nil
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil {
		kw.mtime = fi.ModTime()
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		num, name, ok := strings.Cut(line, " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || n >= maxKeywords || name == "" {
			continue
		}
		kw.names[n] = name
	}
	return kw, nil
}

// name returns the keyword of a letter, "" if its name is not known.
func (kw *keywords) name(c byte) string {
	if c < 'a' || c > 'z' {
		return ""
	}
	return kw.names[c-'a']
}

// letter returns the letter of keyword k (case-insensitive, as Dovecot
// looks them up), or 0.
func (kw *keywords) letter(k string) byte {
	for i, n := range kw.names {
		if n != "" && strings.EqualFold(n, k) {
			return byte('a' + i)
		}
	}
	return 0
}

// add gives k a letter if it has none; false if all 26 are taken.
func (kw *keywords) add(k string) (byte, bool, error) {
	if c := kw.letter(k); c != 0 {
		return c, false, nil
	}
	for i, n := range kw.names {
		if n == "" {
			kw.names[i] = k
			return byte('a' + i), true, nil
		}
	}
	return 0, false, fmt.Errorf("keyword %q: the folder has all %d keywords a maildir file name can hold", k, maxKeywords)
}

// write replaces path with the keywords, as Dovecot does: through
// path.lock, renamed over the file, with an mtime later than the old
// one's (Dovecot rereads the file only when its mtime, in seconds,
// changes). The caller holds the folder's dovecot-uidlist lock, which is
// what guards this file.
func (kw *keywords) write(path string) error {
	var b bytes.Buffer
	for i, n := range kw.names {
		if n != "" {
			fmt.Fprintf(&b, "%d %s\n", i, n)
		}
	}
	tmp := path + ".lock"
	mtime := time.Now().Truncate(time.Second)
	if !mtime.After(kw.mtime) {
		mtime = kw.mtime.Truncate(time.Second).Add(time.Second)
	}
	if err := writeSynced(tmp, b.Bytes(), mtime); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	kw.mtime = mtime
	return nil
}

// writeSynced writes a new file and fsyncs it, with the given mtime
// unless it is zero.
func writeSynced(path string, data []byte, mtime time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !mtime.IsZero() {
		err = os.Chtimes(path, mtime, mtime)
	}
	return err
}

// readCourierKeywords reads Courier-IMAP's courierimapkeywords directory
// of a folder: the ":list" file (keyword names, a blank line, then
// "<base>:<n> <n>..." lines) and the update files that supersede it for
// one message each ("<base>" or, older, ".<n>.<base>" with the highest n
// winning), which hold keyword names one per line. It returns keyword
// names by message base; a missing directory is none.
func readCourierKeywords(dir string) (map[string][]string, []string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var problems []string
	out := map[string][]string{}
	if b, err := os.ReadFile(filepath.Join(dir, ":list")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		var names []string
		for sc.Scan() && sc.Text() != "" {
			names = append(names, sc.Text())
		}
		for sc.Scan() {
			base, nums, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				problems = append(problems, fmt.Sprintf("line %q is not \"<file>:<keyword numbers>\"; ignored", sc.Text()))
				continue
			}
			var kws []string
			for f := range strings.FieldsSeq(nums) {
				n, err := strconv.Atoi(f)
				if err != nil || n < 0 || n >= len(names) {
					problems = append(problems, fmt.Sprintf("%s: keyword number %q is not in the list; ignored", base, f))
					continue
				}
				kws = append(kws, names[n])
			}
			out[base] = kws
		}
		if err := sc.Err(); err != nil {
			return nil, nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	// Updates: the plain name wins over numbered ones, a higher number
	// over a lower.
	type update struct {
		file string
		n    int64 // -1: the plain name
	}
	updates := map[string]update{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ":") || strings.HasPrefix(name, ".tmp.") {
			continue
		}
		base, n := name, int64(-1)
		if rest, ok := strings.CutPrefix(name, "."); ok {
			num, b, ok := strings.Cut(rest, ".")
			v, err := strconv.ParseInt(num, 10, 64)
			if !ok || err != nil {
				continue
			}
			base, n = b, v
		}
		if u, ok := updates[base]; ok && (u.n < 0 || n >= 0 && n <= u.n) {
			continue
		}
		updates[base] = update{file: name, n: n}
	}
	for base, u := range updates {
		b, err := os.ReadFile(filepath.Join(dir, u.file))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v; ignored", u.file, err))
			continue
		}
		var kws []string
		for l := range strings.SplitSeq(string(b), "\n") {
			if l == "" {
				break
			}
			kws = append(kws, l)
		}
		out[base] = kws
	}
	return out, problems, nil
}
