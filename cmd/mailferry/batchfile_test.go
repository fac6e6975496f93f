package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
	"unicode/utf8"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// updateGolden rewrites testdata/batchfile/*.golden: go test -run BatchGolden -update
var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Test passwords. No test prints a password: failures show pwTag instead,
// and every error the parser returns is searched for these.
var testSecrets = []string{
	"src-secret-1", "dst-secret-1", "env-secret-A", "file-secret-B", "file-secret-C",
	"pw with spaces ", "q,u\"ote", "env:LOOKS_LIKE_REF", "hunter2", "bad-row-secret",
	"dup-secret", "multi\nline-secret", "nohdr-secret", "exch-secret",
}

var testEnv = map[string]string{
	"SRC_PW":    "env-secret-A",
	"EMPTY_VAR": "",
	"NL_VAR":    "multi\nline-secret",
}

var testFiles = map[string]string{
	"pw/b.txt":         "file-secret-B\n",
	"batches/pw/b.txt": "file-secret-B\r\n",
	"/abs/c.txt":       "file-secret-C",
	"pw/blank.txt":     "\n",
	"pw/crlf2.txt":     "file-secret-C\n\n",
	"pw/two.txt":       "file-secret-C\nsecond",
}

func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// fakeFiles serves m and records what was asked for.
func fakeFiles(m map[string]string, asked *[]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if asked != nil {
			*asked = append(*asked, p)
		}
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
}

// pwTag stands for a password in test output without revealing it.
func pwTag(s providers.Secret) string {
	if s == "" {
		return "-"
	}
	return fmt.Sprintf("sha256:%.8x", sha256.Sum256([]byte(s)))
}

func renderRow(r BatchRow) string {
	return fmt.Sprintf("line %d: %q -> %q source_password=%s dest_password=%s", r.Line, r.SourceUser, r.DestUser, pwTag(r.SourcePassword), pwTag(r.DestPassword))
}

func renderRows(rows []BatchRow) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(renderRow(r) + "\n")
	}
	return b.String()
}

// checkNoSecrets fails if any error text or BatchError holds a secret. The
// message names the secret by index only.
func checkNoSecrets(t *testing.T, secrets []string, err error, bad []BatchError) {
	t.Helper()
	var texts []string
	if err != nil {
		texts = append(texts, err.Error(), fmt.Sprintf("%#v", err))
	}
	for _, b := range bad {
		texts = append(texts, b.Error(), fmt.Sprintf("%#v", b))
	}
	for _, text := range texts {
		for i, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("error text holds test secret #%d", i)
			}
		}
	}
}

func parseString(name, in string, env map[string]string, files map[string]string) ([]BatchRow, []BatchError, error) {
	return parseBatch(name, strings.NewReader(in), fakeEnv(env), fakeFiles(files, nil))
}

func TestParseBatchFormats(t *testing.T) {
	const hdr = "source_user,source_password,dest_user,dest_password\n"
	row := func(line int, src, dst string, spw, dpw providers.Secret) BatchRow {
		return BatchRow{Line: line, SourceUser: src, DestUser: dst, SourcePassword: spw, DestPassword: dpw}
	}
	tests := []struct {
		name, in string
		file     string // batch file name; default users.csv
		want     []BatchRow
	}{
		{name: "mailferry", in: hdr + "a@old,src-secret-1,a@new,dst-secret-1\n",
			want: []BatchRow{row(2, "a@old", "a@new", "src-secret-1", "dst-secret-1")}},
		{name: "columns in any order, header case and spaces", in: " Dest_User ,DEST_PASSWORD,  source_password,source_user\na@new,dst-secret-1,src-secret-1,a@old\n",
			want: []BatchRow{row(2, "a@old", "a@new", "src-secret-1", "dst-secret-1")}},
		{name: "password columns absent", in: "dest_user,source_user\na@new,a@old\n",
			want: []BatchRow{row(2, "a@old", "a@new", "", "")}},
		{name: "only the source password column", in: "source_user,source_password,dest_user\na@old,hunter2,a@new\nb@old,,b@new\n",
			want: []BatchRow{row(2, "a@old", "a@new", "hunter2", ""), row(3, "b@old", "b@new", "", "")}},
		{name: "empty password cells mean an admin login", in: hdr + "a@old,,a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "", "")}},
		{name: "exchange", in: "EmailAddress,UserName,Password\nterry@contoso.example,terry@fabrikam.example,exch-secret\n",
			want: []BatchRow{row(2, "terry@fabrikam.example", "terry@contoso.example", "exch-secret", "")}},
		{name: "exchange UserRoot accepted and ignored, lower case header", in: "emailaddress,username,password,userroot\nt@new,t@old,exch-secret,/users/t\n",
			want: []BatchRow{row(2, "t@old", "t@new", "exch-secret", "")}},
		{name: "exchange impersonation user names kept verbatim", in: "UserName,EmailAddress,Password\nCONTOSO/mailadmin/terry,terry@new,exch-secret\nterry*mailadmin,terry2@new,exch-secret\n",
			want: []BatchRow{row(2, "CONTOSO/mailadmin/terry", "terry@new", "exch-secret", ""), row(3, "terry*mailadmin", "terry2@new", "exch-secret", "")}},
		{name: "exchange passwords are literal", in: "EmailAddress,UserName,Password\nt@new,t@old,env:LOOKS_LIKE_REF\n",
			want: []BatchRow{row(2, "t@old", "t@new", "env:LOOKS_LIKE_REF", "")}},
		{name: "exchange without Password column", in: "EmailAddress,UserName\nt@new,t@old\n",
			want: []BatchRow{row(2, "t@old", "t@new", "", "")}},
		{name: "UTF-8 BOM and CRLF", in: "\ufeff" + strings.ReplaceAll(hdr, "\n", "\r\n") + "a@old,src-secret-1,a@new,dst-secret-1\r\nb@old,,b@new,\r\n",
			want: []BatchRow{row(2, "a@old", "a@new", "src-secret-1", "dst-secret-1"), row(3, "b@old", "b@new", "", "")}},
		{name: "no newline at the end", in: hdr + "a@old,src-secret-1,a@new,dst-secret-1",
			want: []BatchRow{row(2, "a@old", "a@new", "src-secret-1", "dst-secret-1")}},
		{name: "CRLF and no newline at the end", in: "source_user,dest_user\r\na@old,a@new\r",
			want: []BatchRow{row(2, "a@old", "a@new", "", "")}},
		{name: "blank, space-only, comment and commented-out lines",
			in:   "# wave 1\n\n  # indented, with a comma, and a \"quote\n" + hdr + "\n \t \r\n#a@old,hunter2,a@new,\n\t# \"unbalanced\nb@old,,b@new,\n\n",
			want: []BatchRow{row(9, "b@old", "b@new", "", "")}},
		{name: "spreadsheet empty rows", in: hdr + ",,,\n , ,\t,\n\"\",,,\na@old,,a@new,\n",
			want: []BatchRow{row(5, "a@old", "a@new", "", "")}},
		{name: "quoted cells with commas and doubled quotes", in: hdr + "\"a@old\",\"q,u\"\"ote\",a@new,\"dst-secret-1\"\n",
			want: []BatchRow{row(2, "a@old", "a@new", "q,u\"ote", "dst-secret-1")}},
		{name: "quoted cell keeps its spaces, unquoted ones are trimmed", in: hdr + "  a@old  ,  hunter2 \t, a@new ,\"pw with spaces \"\n",
			want: []BatchRow{row(2, "a@old", "a@new", "hunter2", "pw with spaces ")}},
		{name: "quoted user names are trimmed", in: hdr + "\" a@old \",,\"a@new \",\n",
			want: []BatchRow{row(2, "a@old", "a@new", "", "")}},
		{name: "multi-line quoted cell keeps later line numbers", in: "EmailAddress,UserName,Password,UserRoot\na@new,a@old,,\"/x\n/y\n\"\nb@new,b@old,,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "", ""), row(5, "b@old", "b@new", "", "")}},
		{name: "trailing empty column in header and rows", in: "source_user,dest_user,\na@old,a@new,\nb@old,b@new\nc@old,c@new,,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "", ""), row(3, "b@old", "b@new", "", ""), row(4, "c@old", "c@new", "", "")}},
		{name: "trailing empty column in rows only", in: hdr + "a@old,,a@new,,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "", "")}},
		{name: "same source user to two destinations", in: hdr + "shared@old,,anna@new,\nshared@old,,ben@new,\n",
			want: []BatchRow{row(2, "shared@old", "anna@new", "", ""), row(3, "shared@old", "ben@new", "", "")}},
		{name: "two sources into one destination", in: hdr + "a@old,,all@new,\nb@old,,all@new,\n",
			want: []BatchRow{row(2, "a@old", "all@new", "", ""), row(3, "b@old", "all@new", "", "")}},
		{name: "env reference", in: hdr + "a@old,env:SRC_PW,a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "env-secret-A", "")}},
		{name: "file reference, one LF removed", in: hdr + "a@old,file:pw/b.txt,a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "file-secret-B", "")}},
		{name: "file reference relative to the batch file, one CRLF removed", file: "batches/users.csv", in: hdr + "a@old,file:pw/b.txt,a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "file-secret-B", "")}},
		{name: "file reference from stdin is relative to the current directory", file: "-", in: hdr + "a@old,file:pw/b.txt,a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "file-secret-B", "")}},
		{name: "absolute file reference, no newline to remove", file: "batches/users.csv", in: hdr + "a@old,file:/abs/c.txt,a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "file-secret-C", "")}},
		{name: "quoted reference is still a reference", in: hdr + "a@old,\"env:SRC_PW\",a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "env-secret-A", "")}},
		{name: "literal escape", in: hdr + "a@old,literal:env:LOOKS_LIKE_REF,a@new,literal:literal:x\nb@old,literal:file:pw/b.txt,b@new,literal:hunter2\n",
			want: []BatchRow{row(2, "a@old", "a@new", "env:LOOKS_LIKE_REF", "literal:x"), row(3, "b@old", "b@new", "file:pw/b.txt", "hunter2")}},
		{name: "prefixes are lower case only", in: hdr + "a@old,Env:SRC_PW,a@new,FILE:pw/b.txt\n",
			want: []BatchRow{row(2, "a@old", "a@new", "Env:SRC_PW", "FILE:pw/b.txt")}},
		{name: "a tab inside a password is kept", in: hdr + "a@old,\"hun\tter2\",a@new,\n",
			want: []BatchRow{row(2, "a@old", "a@new", "hun\tter2", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.file
			if name == "" {
				name = "users.csv"
			}
			rows, bad, err := parseString(name, tt.in, testEnv, testFiles)
			checkNoSecrets(t, testSecrets, err, bad)
			if err != nil {
				t.Fatalf("parseBatch: %v", err)
			}
			for _, b := range bad {
				t.Errorf("unexpected bad row: %v", b)
			}
			if !slices.Equal(rows, tt.want) {
				t.Errorf("rows:\n%swant:\n%s", renderRows(rows), renderRows(tt.want))
			}
		})
	}
}

func TestParseBatchFilePaths(t *testing.T) {
	const in = "source_user,source_password,dest_user,dest_password\na@old,file:pw/b.txt,a@new,file:/abs/c.txt\n"
	for _, tt := range []struct{ name, want string }{
		{"users.csv", "pw/b.txt"},
		{"./users.csv", "pw/b.txt"},
		{"-", "pw/b.txt"},
		{"", "pw/b.txt"},
		{"batches/users.csv", "batches/pw/b.txt"},
		{"/srv/mig/users.csv", "/srv/mig/pw/b.txt"},
	} {
		var asked []string
		files := map[string]string{filepath.FromSlash(tt.want): "file-secret-B", filepath.FromSlash("/abs/c.txt"): "file-secret-C"}
		rows, bad, err := parseBatch(tt.name, strings.NewReader(in), fakeEnv(nil), fakeFiles(files, &asked))
		checkNoSecrets(t, testSecrets, err, bad)
		if err != nil || len(rows) != 1 {
			t.Fatalf("%s: %d rows, %v %v", tt.name, len(rows), bad, err)
		}
		if want := []string{filepath.FromSlash(tt.want), filepath.FromSlash("/abs/c.txt")}; !slices.Equal(asked, want) {
			t.Errorf("batch file %q: read %q, want %q", tt.name, asked, want)
		}
	}
}

func TestParseBatchRowErrors(t *testing.T) {
	const hdr = "source_user,source_password,dest_user,dest_password\n"
	type want struct {
		line   int
		column string
		reason string // a substring
	}
	tests := []struct {
		name, in  string
		bad       []want
		goodLines []int
	}{
		{name: "too few cells", in: hdr + "a@old,bad-row-secret,a@new\nb@old,,b@new,\n",
			bad: []want{{2, "", "3 cells where the header has 4"}}, goodLines: []int{3}},
		{name: "too many cells: unquoted comma in a password", in: hdr + "a@old,bad,row-secret,a@new,dst-secret-1\n",
			bad: []want{{2, "", "5 cells where the header has 4 (a cell holding a comma must be enclosed in double quotes)"}}},
		{name: "too many cells in exchange format", in: "EmailAddress,UserName,Password\nt@new,t@old,exch-secret,/root\n",
			bad: []want{{2, "", "4 cells where the header has 3"}}},
		{name: "empty source user", in: hdr + ",bad-row-secret,a@new,\n",
			bad: []want{{2, "source_user", "empty"}}},
		{name: "empty dest user, quoted spaces", in: hdr + "a@old,bad-row-secret,\"  \",\n",
			bad: []want{{2, "dest_user", "empty"}}},
		{name: "empty exchange user names the header's column", in: "EmailAddress,UserName,Password\n,t@old,exch-secret\n",
			bad: []want{{2, "EmailAddress", "empty"}}},
		{name: "control character in a user", in: hdr + "a\x01@old,bad-row-secret,a@new,\n\"b\tb@old\",,b@new,\nc@old,,c\x7f@new,\nd@old,,d\u0085x@new,\n",
			bad: []want{{2, "source_user", "control character"}, {3, "source_user", "control character"}, {4, "dest_user", "control character"}, {5, "dest_user", "control character"}}},
		{name: "line break in a user", in: hdr + "\"a@\nold\",bad-row-secret,a@new,\nb@old,,b@new,\n",
			bad: []want{{2, "source_user", "control character"}}, goodLines: []int{4}},
		{name: "user not UTF-8", in: hdr + "m\xfcller@old,bad-row-secret,m@new,\n",
			bad: []want{{2, "source_user", "not valid UTF-8"}}},
		{name: "env variable missing", in: hdr + "a@old,env:NOPE,a@new,\n",
			bad: []want{{2, "source_password", "environment variable NOPE is not set or empty"}}},
		{name: "env variable empty", in: hdr + "a@old,,a@new,env:EMPTY_VAR\n",
			bad: []want{{2, "dest_password", "environment variable EMPTY_VAR is not set or empty"}}},
		{name: "env without a name", in: hdr + "a@old,env:,a@new,\n",
			bad: []want{{2, "source_password", "env: names no environment variable"}}},
		{name: "env value with a line break", in: hdr + "a@old,env:NL_VAR,a@new,\n",
			bad: []want{{2, "source_password", "environment variable NL_VAR holds a line break"}}},
		{name: "file unreadable", in: hdr + "a@old,,a@new,file:/x\n",
			bad: []want{{2, "dest_password", "file:/x unreadable: open /x: file does not exist"}}},
		{name: "file empty", in: hdr + "a@old,file:pw/blank.txt,a@new,\n",
			bad: []want{{2, "source_password", "file:pw/blank.txt is empty"}}},
		{name: "file with two line endings", in: hdr + "a@old,file:pw/crlf2.txt,a@new,\n",
			bad: []want{{2, "source_password", "file:pw/crlf2.txt holds more than one line"}}},
		{name: "file with two lines", in: hdr + "a@old,file:pw/two.txt,a@new,\n",
			bad: []want{{2, "source_password", "file:pw/two.txt holds more than one line"}}},
		{name: "file without a path", in: hdr + "a@old,file:,a@new,\n",
			bad: []want{{2, "source_password", "file: names no file"}}},
		{name: "literal escape with nothing after it", in: hdr + "a@old,literal:,a@new,\n",
			bad: []want{{2, "source_password", "literal: is followed by no password"}}},
		{name: "multi-line quoted password", in: hdr + "a@old,\"multi\nline-secret\",a@new,\nb@old,,b@new,\n",
			bad: []want{{2, "source_password", "line break or NUL byte"}}, goodLines: []int{4}},
		{name: "NUL in a password", in: hdr + "a@old,bad\x00row-secret,a@new,\n",
			bad: []want{{2, "source_password", "line break or NUL byte"}}},
		{name: "exchange password with a line break", in: "EmailAddress,UserName,Password\nt@new,t@old,\"exch\nsecret\"\n",
			bad: []want{{2, "Password", "line break or NUL byte"}}},
		{name: "duplicate pair, case-insensitive, names the first line",
			in:  hdr + "# c\nA@Old,src-secret-1,a@new,\n\nb@old,,b@new,\na@old,dup-secret,A@NEW,dst-secret-1\n",
			bad: []want{{6, "", "the same account pair as line 3"}}, goodLines: []int{3, 5}},
		{name: "duplicate of a row whose password failed",
			in:  hdr + "a@old,env:NOPE,a@new,\na@old,dup-secret,a@new,\n",
			bad: []want{{2, "source_password", "NOPE"}, {3, "", "the same account pair as line 2"}}},
		{name: "duplicate in exchange format",
			in:  "EmailAddress,UserName,Password\nt@new,t@old,exch-secret\nT@new,T@old,dup-secret\n",
			bad: []want{{3, "", "the same account pair as line 2"}}, goodLines: []int{2}},
		{name: "bare quote", in: hdr + "a@old,hun\"ter2,a@new,\nb@old,,b@new,\n",
			bad: []want{{2, "", "a \" in a cell not enclosed in quotes (line 2, byte 10)"}}, goodLines: []int{3}},
		{name: "text after the closing quote", in: hdr + "a@old,\"hunter2\" ,a@new,\nb@old,,b@new,\n",
			bad: []want{{2, "", "text after the closing quote of a quoted cell (line 2, byte 15)"}}, goodLines: []int{3}},
		{name: "text after the closing quote of a multi-line cell", in: hdr + "a@old,\"x\ny\"z,a@new,\nb@old,,b@new,\n",
			bad: []want{{2, "", "(line 3, byte 2): double a \" inside quotes, and put nothing between the closing \" and the comma; lines 2 to 3 were read as this one row"}}, goodLines: []int{4}},
		{name: "file ends after a doubled quote", in: hdr + "a@old,\"x\"\"",
			bad: []want{{2, "", "never closed: lines 2 to 2, the end of the file"}}},
		{name: "quote never closed swallows the rest, and says so", in: hdr + "a@old,,a@new,\n\"b@old,bad-row-secret,b@new,\nc@old,,c@new,\n\nd@old,,d@new,\n",
			bad: []want{{3, "", "a quoted cell opened on this line is never closed: lines 3 to 6, the end of the file, were read as this one row"}}, goodLines: []int{2}},
		{name: "line numbers after multi-line cells, comments and blank lines",
			in: "# head\n\n" + hdr + "a@old,\"hunter2\",a@new,\n  # note\n\n\"b@old\",,\"b\n@new\",\n\r\nc@old,env:NOPE,c@new,\n" +
				"#\n\"multi-line\nsource\nuser\",,d@new,\n,,,\ne@old,,e@new,\n",
			bad:       []want{{7, "dest_user", "control character"}, {10, "source_password", "NOPE"}, {12, "source_user", "control character"}},
			goodLines: []int{4, 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, bad, err := parseString("users.csv", tt.in, testEnv, testFiles)
			checkNoSecrets(t, testSecrets, err, bad)
			if err != nil {
				t.Fatalf("parseBatch: %v", err)
			}
			var lines []int
			for _, r := range rows {
				lines = append(lines, r.Line)
			}
			if !slices.Equal(lines, tt.goodLines) {
				t.Errorf("good rows on lines %v, want %v", lines, tt.goodLines)
			}
			if len(bad) != len(tt.bad) {
				t.Fatalf("%d bad rows, want %d: %v", len(bad), len(tt.bad), bad)
			}
			for i, w := range tt.bad {
				b := bad[i]
				if b.File != "users.csv" || b.Line != w.line || b.Column != w.column || !strings.Contains(b.Reason, w.reason) {
					t.Errorf("bad row %d: %v\nwant line %d, column %q, reason containing %q", i, b, w.line, w.column, w.reason)
				}
			}
		})
	}
}

func TestBatchErrorText(t *testing.T) {
	for _, tt := range []struct {
		e    BatchError
		want string
	}{
		{BatchError{File: "users.csv", Line: 12, Column: "dest_password", Reason: "file:/x unreadable: gone"}, `users.csv line 12, column "dest_password": file:/x unreadable: gone`},
		{BatchError{File: "users.csv", Line: 3, Reason: "the same account pair as line 2"}, `users.csv line 3: the same account pair as line 2`},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %s\nwant %s", got, tt.want)
		}
	}
}

func TestParseBatchFatal(t *testing.T) {
	tests := []struct {
		name string
		r    io.Reader
		want string // a substring
	}{
		{"empty", strings.NewReader(""), "users.csv is empty"},
		{"BOM only", strings.NewReader("\ufeff"), "is empty"},
		{"comments and blank lines only", strings.NewReader("# nothing\n\n  \n,,,\n"), "is empty"},
		{"header only", strings.NewReader("source_user,dest_user\n# later\n"), "header but no account pairs"},
		{"unreadable", iotest.ErrReader(errors.New("disk on fire")), "batch file users.csv: disk on fire"},
		{"unreadable after some data", io.MultiReader(strings.NewReader("source_user,dest_user\n"), iotest.ErrReader(errors.New("EIO"))), "EIO"},
		{"no header: a data row first", strings.NewReader("a@old,nohdr-secret,a@new,\n"), "users.csv line 1: no recognisable header; the first row must name the columns"},
		{"no header after comments", strings.NewReader("# users\n\nuser,pass\n"), "line 3: no recognisable header"},
		{"semicolons", strings.NewReader("source_user;source_password;dest_user;dest_password\n"), "separated by semicolons"},
		{"tabs", strings.NewReader("source_user\tdest_user\na\tnohdr-secret\n"), "separated by tabs"},
		{"xlsx", strings.NewReader("PK\x03\x04\x14\x00\x06\x00"), ".xlsx workbook"},
		{"UTF-16", strings.NewReader("\xff\xfes\x00o\x00"), "UTF-16"},
		{"unknown column", strings.NewReader("# x\nsource_user,dest_user,Notes\na,b,c\n"), `users.csv line 2: unknown column "Notes" in the header`},
		{"column of the other format", strings.NewReader("source_user,dest_user,Password\na,b,c\n"), `unknown column "Password"`},
		{"unknown exchange column", strings.NewReader("EmailAddress,UserName,Password,Mailbox\n"), `unknown column "Mailbox"`},
		{"duplicate column", strings.NewReader("source_user,dest_user,SOURCE_USER\n"), `column "SOURCE_USER" appears twice in the header (cells 1 and 3)`},
		{"empty cell inside the header", strings.NewReader("source_user,,dest_user\n"), "header cell 2 is empty"},
		{"no dest_user", strings.NewReader("source_user,source_password\na,nohdr-secret\n"), "the header has no dest_user column"},
		{"no UserName", strings.NewReader("EmailAddress,Password\na,exch-secret\n"), "the header has no UserName column"},
		{"header with a bare quote", strings.NewReader("source_user,dest\"user\n"), "cannot read the header"},
		{"too large", io.MultiReader(strings.NewReader("source_user,dest_user\n"), io.LimitReader(zeros{}, maxBatchFile)), "larger than 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, bad, err := parseBatch("users.csv", tt.r, fakeEnv(testEnv), fakeFiles(testFiles, nil))
			checkNoSecrets(t, testSecrets, err, bad)
			if err == nil {
				t.Fatalf("no error; %d rows, %d bad", len(rows), len(bad))
			}
			if rows != nil || bad != nil {
				t.Errorf("rows and bad rows returned with a fatal error")
			}
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Errorf("%v is not a usageError (exit code 2)", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestParseBatchSecretsNeverInErrors puts a distinct password into every
// kind of bad row and searches everything returned for it.
func TestParseBatchSecretsNeverInErrors(t *testing.T) {
	secrets := []string{"S3cr-lit-1", "S3cr-lit-2", "S3cr-env-3", "S3cr-file-4", "S3cr-lit-5", "S3cr-lit-6", "S3cr-lit-7", "S3cr-lit-8", "S3cr-lit-9", "S3cr-file-10", "S3cr-env-11"}
	env := map[string]string{"GOOD": "S3cr-env-3", "NL": "S3cr-env-11\nx"}
	files := map[string]string{"f4": "S3cr-file-4\n", "f10": "S3cr-file-10\nmore\n"}
	in := "source_user,source_password,dest_user,dest_password\n" +
		"a@old,S3cr-lit-1,a@new,env:GOOD\n" + // good
		"a@old,S3cr-lit-2,a@new,file:f4\n" + // duplicate
		",S3cr-lit-5,b@new,\n" + // empty user
		"c\x01@old,S3cr-lit-6,c@new,\n" + // control character
		"d@old,S3cr-lit-7,d@new,env:MISSING\n" + // unresolvable after a literal
		"e@old,S3cr-lit-8,e@new\n" + // too few cells
		"f@old,S3cr\"lit-9,f@new,\n" + // bare quote
		"g@old,file:f10,g@new,\n" + // two-line file
		"h@old,env:NL,h@new,\n" + // env with a line break
		"i@old,\"S3cr-lit-1\nS3cr-lit-2\",i@new,\n" + // multi-line literal
		"j@old,\"S3cr-lit-5,\"x,j@new,\n" // text after a closing quote
	rows, bad, err := parseBatch("users.csv", strings.NewReader(in), fakeEnv(env), fakeFiles(files, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || len(bad) != 10 {
		t.Fatalf("%d rows, %d bad; want 1 and 10: %v", len(rows), len(bad), bad)
	}
	checkNoSecrets(t, secrets, err, bad)
	// Rows print their passwords as REDACTED, however formatted.
	for _, s := range []string{fmt.Sprint(rows), fmt.Sprintf("%+v", rows), fmt.Sprintf("%#v", rows)} {
		for i, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("formatted row holds secret #%d", i)
			}
		}
	}
	// And the fatal errors, for a file whose first row is data.
	_, _, err = parseBatch("users.csv", strings.NewReader("a@old,S3cr-lit-1,a@new,S3cr-lit-2\n"), fakeEnv(env), fakeFiles(files, nil))
	checkNoSecrets(t, secrets, err, nil)
}

// TestBatchGolden parses every testdata/batchfile/*.csv with real files
// (file: paths are relative to the batch file) and compares the outcome
// with the .golden beside it. Passwords appear as pwTag hashes.
func TestBatchGolden(t *testing.T) {
	env := map[string]string{"ALICE_SRC": "alice-env-pw", "ERIN_DST": "erin-env-pw"}
	secrets := []string{"alice-env-pw", "erin-env-pw", "alice-file-pw", "erin-file-pw", "ivan-pw", "b,o\"b-pw", "dave-pw", "spaced pw",
		"terry-pw", "admin-pw", "alice-pw", "bob-pw", "bob-dst-pw", "carol-pw", "dave-pw", "eve-pw", "jo\"pw", "kim\npw", "lee-pw",
		"mia-pw", "nora-pw", "oscar-pw", "alice-nohdr-pw"}
	paths, err := filepath.Glob(filepath.Join("testdata", "batchfile", "*.csv"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			format, rows, bad, err := parseBatchFormat(filepath.ToSlash(path), f, fakeEnv(env), readPasswordFile)
			checkNoSecrets(t, secrets, err, bad)
			var b strings.Builder
			if err != nil {
				fmt.Fprintf(&b, "fatal: %v\n", err)
			} else {
				fmt.Fprintf(&b, "format: %s\n", format)
			}
			for _, r := range rows {
				fmt.Fprintf(&b, "row %s\n", renderRow(r))
			}
			for _, e := range bad {
				fmt.Fprintf(&b, "bad %s\n", e.Error())
			}
			got := b.String()
			golden := strings.TrimSuffix(path, ".csv") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run BatchGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs (go test -run BatchGolden -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestBatchReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(small, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), maxPasswordFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readPasswordFile(small); err != nil || string(b) != "hunter2\n" {
		t.Errorf("small file: %d bytes, %v", len(b), err)
	}
	if _, err := readPasswordFile(big); err == nil || !strings.Contains(err.Error(), "longer than 64 KiB") {
		t.Errorf("big file: %v", err)
	}
	if _, err := readPasswordFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// Fuzz secrets: env and readFile hand these out, so that the fuzzer can
// check that no error quotes them.
const (
	fuzzEnvSecret  = "FzEnvS3cret"
	fuzzFileSecret = "FzFileS3cret"
)

// FuzzParseBatch checks, on any input: no panic; fatal errors come alone;
// rows are usable; each data record yields exactly one row or bad row, on
// the line where it starts; no error quotes a resolved password.
func FuzzParseBatch(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "batchfile", "*.csv"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("EmailAddress,UserName,Password\r\na,b,\"c\r\nd\"\r\n"))
	f.Add([]byte("source_user,source_password,dest_user\n\"a\nb\",env:X,c\n a ,file:ok, b \n  # x\n"))
	env := func(name string) string {
		if strings.HasPrefix(name, "S") {
			return fuzzEnvSecret
		}
		return ""
	}
	readFile := func(p string) ([]byte, error) {
		switch filepath.Base(p) {
		case "ok":
			return []byte(fuzzFileSecret + "\n"), nil
		case "empty":
			return nil, nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, bad, err := parseBatch("fuzz.csv", bytes.NewReader(data), env, readFile)
		if !bytes.Contains(data, []byte(fuzzEnvSecret)) && !bytes.Contains(data, []byte(fuzzFileSecret)) {
			checkNoSecrets(t, []string{fuzzEnvSecret, fuzzFileSecret}, err, bad)
		}
		if err != nil {
			if rows != nil || bad != nil {
				t.Fatalf("fatal error %v with %d rows and %d bad", err, len(rows), len(bad))
			}
			return
		}
		seenPair := map[string]bool{}
		for _, r := range rows {
			if r.Line < 2 {
				t.Errorf("row on line %d", r.Line)
			}
			for _, u := range []string{r.SourceUser, r.DestUser} {
				if u == "" || u != strings.TrimSpace(u) || !utf8.ValidString(u) || strings.ContainsFunc(u, unicode.IsControl) {
					t.Errorf("line %d: unusable user %q", r.Line, u)
				}
			}
			for _, pw := range []providers.Secret{r.SourcePassword, r.DestPassword} {
				if strings.ContainsAny(string(pw), "\x00\r\n") {
					t.Errorf("line %d: password with a line break or NUL", r.Line)
				}
			}
			id := ledger.AccountID(r.SourceUser, r.DestUser)
			if seenPair[id] {
				t.Errorf("line %d: duplicate pair returned as good", r.Line)
			}
			seenPair[id] = true
		}
		var lines []int // of every row, good or bad, in file order
		for _, b := range bad {
			if b.Line < 1 || b.Reason == "" || b.File != "fuzz.csv" {
				t.Errorf("bad row %#v", b)
			}
			lines = append(lines, b.Line)
		}
		for _, r := range rows {
			lines = append(lines, r.Line)
		}
		slices.Sort(lines)
		header, candidates := fuzzDataLines(data)
		if header == 0 || len(lines) == 0 {
			t.Fatalf("no error, yet header on line %d and %d rows", header, len(lines))
		}
		if !bytes.ContainsRune(data, '"') {
			// Without quotes a record is a line: the rows are exactly the
			// non-blank, non-comment lines after the header.
			if !slices.Equal(lines, candidates) {
				t.Fatalf("rows on lines %v, want %v", lines, candidates)
			}
			return
		}
		// With quotes a record may span lines, but it still starts on a
		// distinct candidate line.
		for i, l := range lines {
			if i > 0 && l == lines[i-1] {
				t.Fatalf("two rows on line %d", l)
			}
			if _, ok := slices.BinarySearch(candidates, l); !ok {
				t.Fatalf("row on line %d, which is blank, a comment or the header; candidates %v", l, candidates)
			}
		}
	})
}

// fuzzDataLines is an oracle independent of encoding/csv: the first line
// that is neither blank (spaces and commas only) nor a comment is the
// header, and the later such lines are where data rows may start.
func fuzzDataLines(data []byte) (header int, rest []int) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimFunc(line, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) == "" ||
			strings.HasPrefix(strings.TrimLeftFunc(line, unicode.IsSpace), "#") {
			continue
		}
		if header == 0 {
			header = i + 1
		} else {
			rest = append(rest, i+1)
		}
	}
	return header, rest
}
