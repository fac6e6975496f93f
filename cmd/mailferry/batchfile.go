package main

// Batch files: one account pair per row, in mailferry's own CSV format or in
// the file Exchange Online's IMAP migration takes (DESIGN.md, "CLI contract").

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// BatchRow is one account pair of a batch file.
type BatchRow struct {
	Line           int // 1-based line of the row's first line (a quoted cell may span lines)
	SourceUser     string
	DestUser       string
	SourcePassword providers.Secret // "" when the cell is empty or absent: an admin login will be used
	DestPassword   providers.Secret
}

// BatchError is a row that could not be used. It never holds a password:
// Reason names at most an environment variable or a file path.
type BatchError struct {
	File   string // the batch file's name as given
	Line   int
	Column string // the header's name for the cell at fault; "" for the whole row
	Reason string
}

func (e BatchError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s line %d, column %q: %s", e.File, e.Line, e.Column, e.Reason)
}

type batchFormat int

const (
	formatMailferry batchFormat = iota + 1 // source_user,source_password,dest_user,dest_password
	formatExchange                         // EmailAddress,UserName,Password[,UserRoot]
)

func (f batchFormat) String() string {
	switch f {
	case formatMailferry:
		return "mailferry"
	case formatExchange:
		return "exchange"
	}
	return "unknown"
}

// batchColumn is what a header cell means.
type batchColumn int

const (
	colIgnored batchColumn = iota
	colSourceUser
	colSourcePassword
	colDestUser
	colDestPassword
)

// batchColumns maps the lower-cased header names of each format. Exchange's
// UserName/Password log in to the source and EmailAddress is the destination
// account. Its optional UserRoot (the root folder of a user's mailbox on
// some servers) is accepted so that a file prepared for Exchange works
// unchanged, and ignored: mailferry maps folders by its own rules.
// Exchange's UserName may be an impersonation form, DOMAIN/Admin/User or
// Dovecot's user*admin, with the admin's password: it is kept verbatim as
// the source user, for the server to interpret, since it is the login
// name. --from-admin is the supported way, and gives the ledger the plain
// user name.
var batchColumns = map[batchFormat]map[string]batchColumn{
	formatMailferry: {"source_user": colSourceUser, "source_password": colSourcePassword, "dest_user": colDestUser, "dest_password": colDestPassword},
	formatExchange:  {"emailaddress": colDestUser, "username": colSourceUser, "password": colSourcePassword, "userroot": colIgnored},
}

var batchColumnList = map[batchFormat]string{
	formatMailferry: "source_user, source_password, dest_user, dest_password (passwords optional)",
	formatExchange:  "EmailAddress, UserName, Password, UserRoot (Password and UserRoot optional)",
}

// maxBatchFile bounds what is read: 100,000 account pairs are a few
// megabytes, and a wrong path such as /dev/zero becomes an error, not an
// out-of-memory kill.
const maxBatchFile = 64 << 20

// parseBatch reads a batch file. It returns the good rows, the bad rows
// (each with its line number) and a fatal error, a usageError, only when
// the file as a whole is unusable: unreadable, empty, without a
// recognisable header or with an unknown column in it. env and readFile
// resolve env:NAME and file:PATH password cells; readPasswordFile is a
// readFile with a size bound.
//
// Rows are checked in file order, each on its own, so one typo costs one
// account pair, not the batch. A row with a problem yields exactly one
// BatchError, for its first problem.
func parseBatch(name string, r io.Reader, env func(string) string, readFile func(string) ([]byte, error)) (rows []BatchRow, bad []BatchError, err error) {
	_, rows, bad, err = parseBatchFormat(name, r, env, readFile)
	return rows, bad, err
}

func parseBatchFormat(name string, r io.Reader, env func(string) string, readFile func(string) ([]byte, error)) (batchFormat, []BatchRow, []BatchError, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBatchFile+1))
	if err != nil {
		return 0, nil, nil, usagef("batch file %s: %v", name, err)
	}
	if len(data) > maxBatchFile {
		return 0, nil, nil, usagef("batch file %s is larger than %d MiB: is it the right file?", name, maxBatchFile>>20)
	}
	p := &batchParser{name: name, env: env, readFile: readFile, recs: recordReader{data: bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), line: 1}}
	// Relative file: paths are relative to the batch file's directory, not
	// to the current one: a batch file and its password files travel
	// together, and the run then means the same from cron, systemd or
	// another shell as from the directory where the file was written.
	if name != "" && name != "-" {
		p.dir = filepath.Dir(name)
	}
	rec, ok := p.recs.next()
	if !ok {
		return 0, nil, nil, usagef("batch file %s is empty: it needs a header row and one row per account pair", name)
	}
	h, err := p.header(rec, data)
	if err != nil {
		return 0, nil, nil, err
	}
	var rows []BatchRow
	var bad []BatchError
	first := map[string]int{} // ledger key -> line of its first row
	for {
		rec, ok := p.recs.next()
		if !ok {
			break
		}
		row, be := p.row(h, rec, first)
		if be != nil {
			bad = append(bad, *be)
			continue
		}
		rows = append(rows, row)
	}
	if len(rows)+len(bad) == 0 {
		return 0, nil, nil, usagef("batch file %s has a header but no account pairs", name)
	}
	return h.format, rows, bad, nil
}

type batchParser struct {
	name     string
	dir      string // base of relative file: paths; "" is the current directory
	env      func(string) string
	readFile func(string) ([]byte, error)
	recs     recordReader
}

type batchHeader struct {
	format batchFormat
	names  []string      // as written, trimmed, for messages
	roles  []batchColumn // per cell
	index  map[batchColumn]int
}

func (p *batchParser) header(rec batchRecord, raw []byte) (*batchHeader, error) {
	if rec.err != "" {
		return nil, usagef("batch file %s line %d: cannot read the header: %s", p.name, rec.line, rec.err)
	}
	names := make([]string, len(rec.cells))
	keys := make([]string, len(rec.cells))
	n := 0 // named cells; empty ones after them are a trailing comma
	for i, c := range rec.cells {
		names[i] = strings.TrimSpace(c)
		keys[i] = strings.ToLower(names[i])
		if names[i] != "" {
			n = i + 1
		}
	}
	var format batchFormat
	for _, f := range []batchFormat{formatMailferry, formatExchange} {
		for _, k := range keys {
			if _, ok := batchColumns[f][k]; ok {
				format = f
				break
			}
		}
		if format != 0 {
			break
		}
	}
	if format == 0 {
		return nil, p.noHeader(rec, raw)
	}
	h := &batchHeader{format: format, names: names[:n], roles: make([]batchColumn, n), index: map[batchColumn]int{}}
	seen := map[string]int{}
	for i, k := range keys[:n] {
		if k == "" {
			return nil, usagef("batch file %s line %d: header cell %d is empty; the columns are %s", p.name, rec.line, i+1, batchColumnList[format])
		}
		role, ok := batchColumns[format][k]
		if !ok {
			return nil, usagef("batch file %s line %d: unknown column %q in the header; the columns are %s", p.name, rec.line, names[i], batchColumnList[format])
		}
		if j, dup := seen[k]; dup {
			return nil, usagef("batch file %s line %d: column %q appears twice in the header (cells %d and %d)", p.name, rec.line, names[i], j+1, i+1)
		}
		seen[k] = i
		h.roles[i] = role
		if role != colIgnored {
			h.index[role] = i
		}
	}
	want := map[batchFormat][2]string{formatMailferry: {"source_user", "dest_user"}, formatExchange: {"UserName", "EmailAddress"}}[format]
	for i, role := range []batchColumn{colSourceUser, colDestUser} {
		if _, ok := h.index[role]; !ok {
			return nil, usagef("batch file %s line %d: the header has no %s column; the columns are %s", p.name, rec.line, want[i], batchColumnList[format])
		}
	}
	return h, nil
}

// noHeader explains a first row that names no known column. It never
// quotes the row: without a header it is likely data, passwords included.
func (p *batchParser) noHeader(rec batchRecord, raw []byte) error {
	hint := ""
	switch first := strings.Join(rec.cells, ","); {
	case bytes.HasPrefix(raw, []byte("PK\x03\x04")):
		hint = " (this looks like an .xlsx workbook: save it as \"CSV UTF-8\")"
	case bytes.HasPrefix(raw, []byte("\xff\xfe")) || bytes.HasPrefix(raw, []byte("\xfe\xff")):
		hint = " (this looks like UTF-16 text: save it as \"CSV UTF-8\")"
	case strings.Contains(first, ";"):
		hint = " (the cells seem separated by semicolons: save the file with commas)"
	case strings.Contains(first, "\t"):
		hint = " (the cells seem separated by tabs: save the file with commas)"
	}
	return usagef("batch file %s line %d: no recognisable header%s; the first row must name the columns: %s, or Exchange's %s",
		p.name, rec.line, hint, batchColumnList[formatMailferry], batchColumnList[formatExchange])
}

// row turns a record into an account pair or says why it cannot be one.
// first maps the ledger key of every pair seen so far to its line.
func (p *batchParser) row(h *batchHeader, rec batchRecord, first map[string]int) (BatchRow, *BatchError) {
	bad := func(col int, format string, args ...any) (BatchRow, *BatchError) {
		e := &BatchError{File: p.name, Line: rec.line, Reason: fmt.Sprintf(format, args...)}
		if col >= 0 {
			e.Column = h.names[col]
		}
		return BatchRow{}, e
	}
	if rec.err != "" {
		return bad(-1, "%s", rec.err)
	}
	n := len(h.roles)
	cells := len(rec.cells)
	for cells > n && strings.TrimSpace(rec.cells[cells-1]) == "" { // trailing empty columns
		cells--
	}
	switch {
	case cells < n:
		return bad(-1, "%d cells where the header has %d", cells, n)
	case cells > n:
		return bad(-1, "%d cells where the header has %d (a cell holding a comma must be enclosed in double quotes)", cells, n)
	}
	row := BatchRow{Line: rec.line}
	for _, u := range []struct {
		role batchColumn
		dst  *string
	}{{colSourceUser, &row.SourceUser}, {colDestUser, &row.DestUser}} {
		i := h.index[u.role]
		// Users are trimmed even when quoted: a space at either end of a
		// login name is a slip, never intended.
		v := strings.TrimSpace(rec.cells[i])
		switch {
		case v == "":
			return bad(i, "empty: every row needs a source and a destination user")
		case !utf8.ValidString(v):
			return bad(i, "not valid UTF-8: save the file as \"CSV UTF-8\"")
		case strings.ContainsFunc(v, unicode.IsControl):
			return bad(i, "the user name contains a control character (a line break from a missing closing quote?)")
		}
		*u.dst = v
	}
	// A duplicate is the same ledger key: two rows would share one record
	// and race. The same source user going to two destinations is allowed:
	// the source is only read, each pair has its own ledger record, and it
	// is how a shared mailbox is copied to several people (or a trial copy
	// kept beside the real one). The same goes for two sources merged into
	// one destination.
	// The key is taken before the passwords are resolved, so a second copy
	// of a row whose password failed is reported, not run in its place.
	key := ledger.AccountID(row.SourceUser, row.DestUser)
	if l, dup := first[key]; dup {
		return bad(-1, "the same account pair as line %d", l)
	}
	first[key] = rec.line
	for _, pw := range []struct {
		role batchColumn
		dst  *providers.Secret
	}{{colSourcePassword, &row.SourcePassword}, {colDestPassword, &row.DestPassword}} {
		i, ok := h.index[pw.role]
		if !ok {
			continue
		}
		// Exchange files hold literal passwords: they were written for a
		// service where env: and file: mean nothing.
		v, reason := p.password(rec.cells[i], h.format == formatMailferry)
		if reason != "" {
			return bad(i, "%s", reason)
		}
		*pw.dst = v
	}
	return row, nil
}

// password resolves a password cell: empty (an admin logs in), env:NAME,
// file:PATH, literal:ANYTHING (the escape for a password that itself starts
// with env:, file: or literal:), or else the literal password. The
// prefixes are lower case and exact; quoting the cell changes nothing.
// A failure comes back as a reason that never holds the password.
func (p *batchParser) password(cell string, refs bool) (providers.Secret, string) {
	if cell == "" {
		return "", ""
	}
	pw, broken := cell, "the password contains a line break or NUL byte, which a login cannot carry (a missing closing quote?)"
	switch {
	case !refs:
	case strings.HasPrefix(cell, "literal:"):
		pw = strings.TrimPrefix(cell, "literal:")
		if pw == "" {
			return "", "literal: is followed by no password; leave the cell empty for an admin login"
		}
	case strings.HasPrefix(cell, "env:"):
		name := strings.TrimPrefix(cell, "env:")
		if name == "" {
			return "", "env: names no environment variable"
		}
		if pw = p.env(name); pw == "" {
			return "", fmt.Sprintf("environment variable %s is not set or empty (write literal:env:… for a password that starts with env:)", name)
		}
		broken = fmt.Sprintf("environment variable %s holds a line break or NUL byte, which a login cannot carry", name)
	case strings.HasPrefix(cell, "file:"):
		path := strings.TrimPrefix(cell, "file:")
		if path == "" {
			return "", "file: names no file"
		}
		full := path
		if !filepath.IsAbs(path) {
			full = filepath.Join(p.dir, path)
		}
		b, err := p.readFile(full)
		if err != nil {
			return "", fmt.Sprintf("file:%s unreadable: %v", path, err)
		}
		// One line ending goes, as editors add it; anything more is part
		// of the file and refused below rather than guessed at.
		s := string(b)
		if t, ok := strings.CutSuffix(s, "\n"); ok {
			s = strings.TrimSuffix(t, "\r")
		}
		if s == "" {
			return "", fmt.Sprintf("file:%s is empty", path)
		}
		pw = s
		broken = fmt.Sprintf("file:%s holds more than one line or a NUL byte, which a login cannot carry", path)
	}
	if strings.ContainsAny(pw, "\x00\r\n") {
		return "", broken
	}
	return providers.Secret(pw), ""
}

// maxPasswordFile bounds a file:PATH read: a password is short, and
// file:/dev/zero must not hang the run.
const maxPasswordFile = 64 << 10

// readPasswordFile is the readFile for parseBatch outside tests.
func readPasswordFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPasswordFile {
		return nil, fmt.Errorf("%s is longer than %d KiB: not a password file", path, maxPasswordFile>>10)
	}
	return b, nil
}

// batchRecord is one CSV record. err, if set, says why it could not be
// read; it never quotes the input.
type batchRecord struct {
	line  int
	cells []string
	err   string
}

// recordReader splits a batch file into records. encoding/csv does the
// quoting (RFC 4180, strict): a fresh csv.Reader starts at each record, so
// that blank lines and comment lines (# after optional spaces, which csv's
// Comment does not allow) are skipped only where a record begins, never
// inside a quoted cell, and a malformed record costs that record only.
//
// Strict quoting rather than LazyQuotes: lazy mode turns a stray quote into
// silently merged cells or rows; strict mode names the line, and a password
// holding a quote can still be written as "pa""ss".
type recordReader struct {
	data []byte
	off  int // start of the next unread line
	line int // its number
	src  bytes.Reader
	buf  *bufio.Reader // reused: csv.NewReader keeps a *bufio.Reader as is
}

func (rr *recordReader) next() (batchRecord, bool) {
	for rr.off < len(rr.data) {
		end := len(rr.data)
		if i := bytes.IndexByte(rr.data[rr.off:], '\n'); i >= 0 {
			end = rr.off + i + 1
		}
		if text := bytes.TrimLeftFunc(rr.data[rr.off:end], unicode.IsSpace); len(text) == 0 || text[0] == '#' {
			rr.off, rr.line = end, rr.line+1
			continue
		}
		rec := batchRecord{line: rr.line}
		rr.src.Reset(rr.data[rr.off:])
		if rr.buf == nil {
			rr.buf = bufio.NewReader(&rr.src)
		} else {
			rr.buf.Reset(&rr.src)
		}
		cr := csv.NewReader(rr.buf)
		cr.FieldsPerRecord = -1
		cr.TrimLeadingSpace = true
		cells, err := cr.Read()
		used := int(cr.InputOffset())
		if used <= 0 { // cannot happen on a non-blank line; guarantees progress
			used = end - rr.off
		}
		chunk := rr.data[rr.off : rr.off+used]
		rr.off += used
		rr.line += bytes.Count(chunk, []byte("\n"))
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			rec.err = describeCSVError(pe, rec.line, chunk)
			return rec, true
		case err != nil: // io.EOF: nothing but blank lines, already skipped
			continue
		}
		rec.cells = cells
		blank := true
		for i, c := range cells {
			// Trailing spaces go from unquoted cells only: inside quotes
			// they may be part of a password.
			if !quotedCell(cr, i, chunk) {
				cells[i] = strings.TrimRightFunc(c, unicode.IsSpace)
			}
			blank = blank && strings.TrimSpace(cells[i]) == ""
		}
		if blank { // ",,," is how spreadsheets export an empty row
			continue
		}
		return rec, true
	}
	return batchRecord{}, false
}

// quotedCell reports whether cell i of the record just read from chunk
// began with a quote. FieldPos points past the leading space that
// TrimLeadingSpace skipped, at the quote if there is one.
func quotedCell(cr *csv.Reader, i int, chunk []byte) bool {
	line, col := cr.FieldPos(i)
	return byteAt(chunk, line, col) == '"'
}

// byteAt returns the byte at a csv position (1-based line and byte column)
// in chunk, or 0 past its end.
func byteAt(chunk []byte, line, col int) byte {
	off := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(chunk[off:], '\n')
		if i < 0 {
			return 0
		}
		off += i + 1
	}
	if off += col - 1; off < len(chunk) {
		return chunk[off]
	}
	return 0
}

// describeCSVError explains a malformed record that starts on line start
// and was read from chunk, without quoting it.
func describeCSVError(pe *csv.ParseError, start int, chunk []byte) string {
	at := start + pe.Line - 1
	var msg string
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		msg = fmt.Sprintf(`a " in a cell not enclosed in quotes (line %d, byte %d): enclose the whole cell in double quotes and double the " inside it`, at, pe.Column)
	case byteAt(chunk, pe.Line, pe.Column) == '"':
		// csv points at the closing quote that something other than a
		// comma or a line end follows.
		msg = fmt.Sprintf(`text after the closing quote of a quoted cell (line %d, byte %d): double a " inside quotes, and put nothing between the closing " and the comma`, at, pe.Column)
	default:
		// Otherwise the input ended inside the quotes.
		return fmt.Sprintf("a quoted cell opened on this line is never closed: lines %d to %d, the end of the file, were read as this one row", start, at)
	}
	if at > start {
		msg += fmt.Sprintf("; lines %d to %d were read as this one row", start, at)
	}
	return msg
}
