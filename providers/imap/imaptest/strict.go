package imaptest

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Strict makes a FaultProxy present the real server behind it as a
// stricter one: an RFC 3501 server with only the extensions in Keep, as
// picky as the strictest servers met in the field (Courier, old Exchange).
//
//   - Every capability not in Keep is removed from the server's lists,
//     and a command or syntax of such an extension is answered BAD and
//     counted as a violation (ProxyStats.Violations): a client that uses
//     an extension not advertised is broken.
//   - [UIDNEXT] is removed from SELECT and EXAMINE (RFC 2060 servers send
//     none); [APPENDUID] and [COPYUID] without UIDPLUS, [HIGHESTMODSEQ]
//     without CONDSTORE, special-use attributes without SPECIAL-USE.
//   - APPEND to the mailbox the connection has EXAMINEd is refused ("NO
//     Current box is selected READ-ONLY."), DELETE of the selected mailbox
//     too ("NO Cannot delete currently-open folder.").
//   - An empty mailbox nothing was ever appended to shows a new
//     UIDVALIDITY at each EXAMINE and STATUS, as a server does that
//     numbers a mailbox only once it stores mail in it; APPENDUID gives
//     the real one.
type Strict struct {
	// Keep are the extensions left, upper case ("UIDPLUS", "LITERAL+").
	// AUTH=, STARTTLS and LOGINDISABLED are not extensions and stay.
	Keep []string
}

// Extensions are the IMAP extensions mailferry may use, each of which a
// strict profile can take away.
var Extensions = []string{"UIDPLUS", "MULTIAPPEND", "LITERAL+", "UNSELECT", "MOVE", "CONDSTORE", "QRESYNC",
	"SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "NAMESPACE", "ENABLE", "ID",
	"BINARY", "APPENDLIMIT", "UTF8=ACCEPT", "COMPRESS=DEFLATE", "SASL-IR", "IDLE", "STATUS=SIZE"}

// AllBut is the strict profile with every extension but one.
func AllBut(ext string) Strict {
	return Strict{Keep: slices.DeleteFunc(slices.Clone(Extensions), func(e string) bool { return e == ext })}
}

// Rev1 is the strict profile with no extension at all.
var Rev1 = Strict{}

// BeStrict turns the strict profile on for connections from now on.
func (p *FaultProxy) BeStrict(s Strict) {
	keep := map[string]bool{}
	for _, e := range s.Keep {
		keep[strings.ToUpper(e)] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.strict = &strictState{keep: keep, written: map[string]bool{}, count: map[string]int{}}
}

// strictState is what a strict profile remembers across connections.
type strictState struct {
	mu      sync.Mutex // guards written, count and fake: every connection uses them
	keep    map[string]bool
	written map[string]bool // mailboxes that have had mail appended
	count   map[string]int  // last known message count
	fake    uint32          // UIDVALIDITY changes handed out
}

func (st *strictState) has(ext string) bool {
	// QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
	return st.keep[ext] || (ext == "CONDSTORE" && st.keep["QRESYNC"])
}

// keepsCap reports whether a capability word stays in the server's lists.
func (st *strictState) keepsCap(word string) bool {
	switch {
	case word == "IMAP4REV1", strings.HasPrefix(word, "AUTH="), word == "STARTTLS", word == "LOGINDISABLED":
		return true
	case strings.HasPrefix(word, "APPENDLIMIT"):
		return st.keep["APPENDLIMIT"]
	}
	return st.keep[word]
}

// boxKey names a mailbox as the server does (INBOX in any case is INBOX).
func boxKey(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// mailboxArg reads the mailbox argument (quoted or atom) after the
// command name of a command's first line; "" if it is a literal.
func mailboxArg(line []byte, words int) string {
	s := strings.TrimRight(string(line), "\r\n")
	for range words {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return boxKey(b.String())
			default:
				b.WriteByte(s[i])
			}
		}
		return ""
	}
	if strings.HasPrefix(s, "{") {
		return ""
	}
	if i := strings.IndexAny(s, " ("); i >= 0 {
		s = s[:i]
	}
	return boxKey(s)
}

// violation is an extension the command uses that the profile took away,
// "" for none.
func (st *strictState) violation(line []byte, name string) string {
	u := strings.ToUpper(strings.TrimRight(string(line), "\r\n"))
	if n, sync, ok := literalAt(line); ok && !sync {
		if !(st.has("LITERAL+") || (st.has("LITERAL-") && n <= 4096)) {
			return "LITERAL+"
		}
	}
	uses := func(ext string, cond bool) string {
		if cond && !st.has(ext) {
			return ext
		}
		return ""
	}
	for _, v := range []string{
		uses("UNSELECT", name == "UNSELECT"),
		uses("MOVE", name == "MOVE" || name == "UID MOVE"),
		uses("UIDPLUS", name == "UID EXPUNGE"),
		uses("ENABLE", name == "ENABLE"),
		uses("UTF8=ACCEPT", name == "ENABLE" && strings.Contains(u, "UTF8=")),
		uses("ID", name == "ID"),
		uses("NAMESPACE", name == "NAMESPACE"),
		uses("IDLE", name == "IDLE"),
		uses("COMPRESS=DEFLATE", name == "COMPRESS"),
		uses("CONDSTORE", (name == "SELECT" || name == "EXAMINE") && strings.Contains(u, "(CONDSTORE")),
		uses("CONDSTORE", strings.HasSuffix(name, "FETCH") && (strings.Contains(u, "CHANGEDSINCE") || strings.Contains(u, "MODSEQ"))),
		uses("CONDSTORE", name == "STATUS" && strings.Contains(u, "HIGHESTMODSEQ")),
		uses("CONDSTORE", strings.HasSuffix(name, "STORE") && strings.Contains(u, "UNCHANGEDSINCE")),
		uses("QRESYNC", strings.Contains(u, "(QRESYNC") || strings.Contains(u, "VANISHED")),
		uses("LIST-EXTENDED", name == "LIST" && (strings.Contains(u, "LIST (") || strings.Contains(u, " RETURN ("))),
		uses("LIST-STATUS", name == "LIST" && strings.Contains(u, "RETURN (") && strings.Contains(u[strings.Index(u, "RETURN ("):], "STATUS")),
		uses("SPECIAL-USE", name == "LIST" && strings.Contains(u, "SPECIAL-USE")),
		uses("CREATE-SPECIAL-USE", name == "CREATE" && strings.Contains(u, "(USE")),
		uses("ESEARCH", strings.HasSuffix(name, "SEARCH") && strings.Contains(u, " RETURN (")),
		uses("BINARY", strings.HasSuffix(name, "FETCH") && strings.Contains(u, "BINARY")),
		uses("BINARY", name == "APPEND" && strings.Contains(u, "~{")),
		uses("STATUS=SIZE", name == "STATUS" && regexp.MustCompile(`[( ]SIZE[) ]`).MatchString(u)),
		uses("APPENDLIMIT", name == "STATUS" && strings.Contains(u, "APPENDLIMIT")),
		uses("SASL-IR", name == "AUTHENTICATE" && len(strings.Fields(u)) > 3),
	} {
		if v != "" {
			return v
		}
	}
	return ""
}

// strictCommand checks a command's first line against the profile. It
// returns the reply that refuses the command, or "" to forward it.
func (c *proxyConn) strictCommand(st *strictState, line []byte, tag, name string) string {
	if ext := st.violation(line, name); ext != "" {
		c.p.violated(name, ext)
		return "BAD " + ext + " is not offered"
	}
	switch name {
	case "APPEND":
		box := mailboxArg(line, 2)
		c.mu.Lock()
		refused := box != "" && box == c.selected && c.readOnly
		c.mu.Unlock()
		if refused {
			return "NO Current box is selected READ-ONLY."
		}
		c.mu.Lock()
		c.boxes[tag] = box
		c.mu.Unlock()
	case "DELETE":
		box := mailboxArg(line, 2)
		c.mu.Lock()
		refused := box != "" && box == c.selected
		c.mu.Unlock()
		if refused {
			return "NO Cannot delete currently-open folder."
		}
	case "SELECT", "EXAMINE":
		c.mu.Lock()
		c.boxes[tag] = mailboxArg(line, 2)
		c.pendingBox = c.boxes[tag]
		c.mu.Unlock()
	}
	return ""
}

// violated counts a command that uses an extension not advertised.
func (p *FaultProxy) violated(command, ext string) {
	p.mu.Lock()
	p.stats.Violations = append(p.stats.Violations, fmt.Sprintf("%s (%s not advertised)", command, ext))
	p.mu.Unlock()
}

// strictProfile is the profile in force, nil for none.
func (p *FaultProxy) strictProfile() *strictState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.strict
}

// continuation checks the line after a literal of a command: another
// message of an APPEND is MULTIAPPEND. It reports the extension violated.
func (st *strictState) continuation(line []byte, name string) string {
	if n, sync, ok := literalAt(line); ok && !sync && !(st.has("LITERAL+") || (st.has("LITERAL-") && n <= 4096)) {
		return "LITERAL+"
	}
	if name == "APPEND" && len(bytes.TrimRight(line, "\r\n")) > 0 && !st.has("MULTIAPPEND") {
		return "MULTIAPPEND"
	}
	if name == "APPEND" && bytes.Contains(line, []byte("~{")) && !st.has("BINARY") {
		return "BINARY"
	}
	return ""
}

var (
	codeRE     = regexp.MustCompile(`(?i)\[(UIDNEXT|APPENDUID|COPYUID|HIGHESTMODSEQ|NOMODSEQ)( [^\]]*)?\] ?`)
	validityRE = regexp.MustCompile(`(?i)UIDVALIDITY (\d+)`)
	existsRE   = regexp.MustCompile(`(?i)^\* (\d+) EXISTS`)
	messagesRE = regexp.MustCompile(`(?i)MESSAGES (\d+)`)
	specialRE  = regexp.MustCompile(`(?i) ?\\(All|Archive|Drafts|Flagged|Junk|Sent|Trash|Important)\b`)
)

// strictResponse rewrites one response line of the server (without a
// literal) by the profile; tag and status are set for a tagged reply.
func (c *proxyConn) strictResponse(st *strictState, line []byte, tag, status string) []byte {
	s := string(line)
	c.mu.Lock()
	defer c.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	name, box := c.tags[tag], c.boxes[tag]
	switch {
	case tag != "":
		delete(c.boxes, tag)
		switch {
		case (name == "SELECT" || name == "EXAMINE") && status == "OK":
			c.selected, c.readOnly, c.pendingBox = box, name == "EXAMINE", ""
			if name == "SELECT" {
				st.written[box] = true
			}
		case name == "SELECT" || name == "EXAMINE":
			c.selected, c.pendingBox = "", ""
		case (name == "UNSELECT" || name == "CLOSE") && status == "OK":
			c.selected = ""
		case name == "APPEND" && status == "OK" && box != "":
			st.written[box] = true
		}
	case strings.HasPrefix(s, "* "):
		sel := c.pendingBox
		if sel == "" {
			sel = c.selected
		}
		if m := existsRE.FindStringSubmatch(s); m != nil && sel != "" {
			st.count[sel], _ = strconv.Atoi(m[1])
		}
		if up := strings.ToUpper(s); strings.HasPrefix(up, "* STATUS ") {
			if b := mailboxArg(line, 2); b != "" {
				sel = b
				if m := messagesRE.FindStringSubmatch(s); m != nil {
					st.count[b], _ = strconv.Atoi(m[1])
				}
			}
		} else if strings.HasPrefix(up, "* LIST ") && !st.has("SPECIAL-USE") {
			if i := strings.IndexByte(s, ')'); i > 0 {
				s = specialRE.ReplaceAllString(s[:i], "") + s[i:]
				s = strings.Replace(s, "( ", "(", 1)
			}
		}
		if n, known := st.count[sel]; sel != "" && known && n == 0 && !st.written[sel] {
			s = validityRE.ReplaceAllStringFunc(s, func(v string) string {
				real, _ := strconv.ParseUint(validityRE.FindStringSubmatch(v)[1], 10, 32)
				st.fake++
				return "UIDVALIDITY " + strconv.FormatUint((real+uint64(st.fake)*7919)%(1<<32-1)+1, 10)
			})
		}
	}
	s = codeRE.ReplaceAllStringFunc(s, func(code string) string {
		kind := strings.ToUpper(codeRE.FindStringSubmatch(code)[1])
		switch {
		case kind == "UIDNEXT":
		case (kind == "APPENDUID" || kind == "COPYUID") && !st.has("UIDPLUS"):
		case (kind == "HIGHESTMODSEQ" || kind == "NOMODSEQ") && !st.has("CONDSTORE"):
		default:
			return code
		}
		return ""
	})
	// A response code that was the whole untagged line leaves "* OK".
	return []byte(s)
}
