package maildir

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A message file is named BASE[:2,INFO] (cr.yp.to/proto/maildir.html and
// Courier's Maildir++): BASE is unique in the maildir, and Dovecot adds
// ",S=<size>" (bytes in the file) and ",W=<size>" (bytes with every bare
// LF counted as CRLF) to it. INFO holds one letter per flag, sorted:
// uppercase for the flags of the spec, lowercase a-z for keywords, whose
// names a folder keeps in dovecot-keywords. The BASE is what
// dovecot-uidlist and courierimapuiddb name a message by: renaming a
// file to change its flags keeps its UID.

// System flags and their letters, in the order of the letters. P
// ("passed": forwarded, resent or bounced) is the spec's; Dovecot ignores
// it and keeps $Forwarded as a keyword, so P is read as $Forwarded and
// never written.
var letterFlags = []struct {
	letter byte
	flag   string
}{
	{'D', `\Draft`},
	{'F', `\Flagged`},
	{'R', `\Answered`},
	{'S', `\Seen`},
	{'T', `\Deleted`},
}

const forwarded = "$Forwarded"

func flagLetter(flag string) (byte, bool) {
	for _, lf := range letterFlags {
		if strings.EqualFold(flag, lf.flag) {
			return lf.letter, true
		}
	}
	return 0, false
}

func letterFlag(c byte) (string, bool) {
	for _, lf := range letterFlags {
		if lf.letter == c {
			return lf.flag, true
		}
	}
	return "", false
}

// fileName is a message file's name taken apart.
type fileName struct {
	name  string // the whole name
	base  string // up to the first ':'
	info  string // the flag letters after ":2,", up to a ',' ("" if none)
	rest  string // what follows the letters (",..." of another flag set), kept as is
	size  int64  // ",S=" in base, -1 if absent
	vsize int64  // ",W=" in base, -1 if absent
	v2    bool   // the name has ":2," info
}

// parseName takes a file name apart. It never fails: a name without info
// is all base.
func parseName(name string) fileName {
	fn := fileName{name: name, base: name, size: -1, vsize: -1}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		fn.base = name[:i]
	}
	if i := strings.LastIndex(name, ":2,"); i >= 0 {
		fn.v2 = true
		fn.info = name[i+3:]
		if j := strings.IndexByte(fn.info, ','); j >= 0 {
			fn.info, fn.rest = fn.info[:j], fn.info[j:]
		}
	}
	fn.size = sizeField(fn.base, 'S')
	fn.vsize = sizeField(fn.base, 'W')
	return fn
}

// sizeField reads ",<c>=<digits>" in base, -1 if absent or malformed.
func sizeField(base string, c byte) int64 {
	key := "," + string(c) + "="
	i := strings.Index(base, key)
	if i < 0 {
		return -1
	}
	v := base[i+len(key):]
	if j := strings.IndexByte(v, ','); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// infoString builds the flag letters for flags: system letters, keyword
// letters, and the letters of old (unknown uppercase letters, and keyword
// letters whose name is lost) that keep must say to keep, all sorted by
// ASCII as Dovecot requires.
func infoString(system []byte, keywords []byte, keep []byte) string {
	all := slices.Concat(system, keywords, keep)
	slices.Sort(all)
	return string(slices.Compact(all))
}

// sortCompare orders file names the way Dovecot assigns UIDs to new files:
// by the seconds at the start of the name, then by the microseconds of an
// "M<usecs>" part, then by the base.
func sortCompare(a, b string) int {
	sa, ra := leadingNumber(a)
	sb, rb := leadingNumber(b)
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	ua, oka := usecs(ra)
	ub, okb := usecs(rb)
	if oka && okb && ua != ub {
		if ua < ub {
			return -1
		}
		return 1
	}
	return strings.Compare(baseOf(ra), baseOf(rb))
}

func leadingNumber(s string) (uint64, string) {
	var n uint64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	return n, s[i:]
}

// usecs finds "M<digits>" in the uniqueness part ".<...>." after the
// seconds.
func usecs(s string) (uint64, bool) {
	if !strings.HasPrefix(s, ".") {
		return 0, false
	}
	s = s[1:]
	for i := 0; i < len(s) && s[i] != '.' && s[i] != ':'; i++ {
		if s[i] == 'M' {
			n, _ := leadingNumber(s[i+1:])
			return n, true
		}
	}
	return 0, false
}

func baseOf(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[:i]
	}
	return s
}

// namer makes unique base names as Dovecot does,
// "<secs>.M<usecs>P<pid>Q<n>.<host>", rising within the process so that
// new files sort (and get UIDs) in the order they were delivered.
type namer struct {
	host string
	pid  int

	mu   sync.Mutex
	last time.Time
	n    uint64
}

func newNamer() *namer {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// The spec's escapes for the two characters a host name must not
	// bring into a file name.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &namer{host: host, pid: os.Getpid()}
}

func (n *namer) next() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := time.Now().Truncate(time.Microsecond)
	if !t.After(n.last) {
		t = n.last.Add(time.Microsecond)
	}
	n.last = t
	n.n++
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", t.Unix(), t.Nanosecond()/1000, n.pid, n.n, n.host)
}
