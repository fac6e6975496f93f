package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Text output never carries a control byte: names and server replies come
// from outside (a mailbox name, an error text, a ledger key with its NUL
// separator), and a raw control byte in them would garble a terminal or a
// log file. cleanWriter shows each as \xNN; only the newline passes, and a
// tab becomes a space. The live display writes its escape sequences to the
// raw terminal, never through it.
type cleanWriter struct {
	w    io.Writer
	cols int // the terminal's width, 0 if unknown or not a terminal
}

func (c *cleanWriter) Write(p []byte) (int, error) {
	clean := true
	for _, b := range p {
		if b < 0x20 && b != '\n' || b == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return c.w.Write(p)
	}
	var buf bytes.Buffer
	for _, b := range p {
		switch {
		case b == '\t':
			buf.WriteByte(' ')
		case b < 0x20 && b != '\n' || b == 0x7f:
			fmt.Fprintf(&buf, `\x%02x`, b)
		default:
			buf.WriteByte(b)
		}
	}
	if _, err := c.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// raw returns the writer under a cleanWriter.
func raw(w io.Writer) io.Writer {
	if c, ok := w.(*cleanWriter); ok {
		return c.w
	}
	return w
}

// columns is the width tables written to w must fit, 0 for no limit.
func columns(w io.Writer) int {
	if c, ok := w.(*cleanWriter); ok {
		return c.cols
	}
	return 0
}

// terminalColumns is the width of the terminal w is, from $COLUMNS if set
// (so that a script or a test can ask for a width), else from the
// terminal; 0 when w is not a terminal: output to a file is never cut.
func terminalColumns(w io.Writer, getenv func(string) string) int {
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 0
	}
	return int(ws.Col)
}

// fitTable writes tab-separated cells as aligned columns, like
// text/tabwriter with two spaces between columns, but fitting the width of
// the writer it flushes to: the widest text columns (names, not numbers)
// are shortened, with "…", until each line fits, down to a few characters.
type fitTable struct {
	w    io.Writer
	buf  bytes.Buffer
	rows [][]string
}

func newTable(w io.Writer) *fitTable { return &fitTable{w: w} }

func (t *fitTable) Write(p []byte) (int, error) { return t.buf.Write(p) }

// minCell is the narrowest a shortened text column gets, minHeader a
// number column's header.
const (
	minCell   = 8
	minHeader = 4
)

func (t *fitTable) Flush() error {
	for line := range strings.SplitSeq(strings.TrimSuffix(t.buf.String(), "\n"), "\n") {
		// Each cell ends with a tab, as with tabwriter.
		cells := strings.Split(strings.TrimSuffix(line, "\t"), "\t")
		t.rows = append(t.rows, cells)
	}
	t.buf.Reset()
	n := 0
	for _, r := range t.rows {
		n = max(n, len(r))
	}
	widths := make([]int, n)
	data := make([]int, n) // the widest cell below the header
	numeric := make([]bool, n)
	for i := range numeric {
		numeric[i] = true
	}
	for ri, r := range t.rows {
		for i, c := range r {
			w := utf8.RuneCountInString(c)
			widths[i] = max(widths[i], w)
			if ri > 0 {
				data[i] = max(data[i], w)
				if !isNumberCell(c) {
					numeric[i] = false
				}
			}
		}
	}
	if limit := columns(t.w); limit > 0 {
		total := func() int {
			s := 0
			for _, w := range widths {
				s += w + 2
			}
			return s - 2
		}
		for total() > limit {
			widest := -1
			for i, w := range widths {
				if !numeric[i] && w > minCell && (widest < 0 || w > widths[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				// Then the headers of number columns, down to their
				// numbers ("MAILBOXES" over "3" becomes "MAI…").
				for i, w := range widths {
					if numeric[i] && w > max(data[i], minHeader) && (widest < 0 || w > widths[widest]) {
						widest = i
					}
				}
			}
			if widest < 0 {
				break // nothing left to shorten: the line wraps
			}
			widths[widest]--
		}
	}
	var out bytes.Buffer
	for _, r := range t.rows {
		var line strings.Builder
		for i, c := range r {
			c = shorten(c, widths[i])
			line.WriteString(c)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		out.WriteString(strings.TrimRight(line.String(), " "))
		out.WriteByte('\n')
	}
	t.rows = nil
	_, err := t.w.Write(out.Bytes())
	return err
}

// isNumberCell reports cells that must not be cut: counts, sizes and
// durations ("12", "1.5 MiB", "3.2s", "", "-").
func isNumberCell(c string) bool {
	c = strings.TrimSpace(c)
	return c == "" || c == "-" || c[0] >= '0' && c[0] <= '9' && len(c) <= 12
}

// shorten cuts s to width runes, ending it with "…".
func shorten(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:max(width-1, 1)]) + "…"
}

// accountLabel shows a ledger key (ledger.AccountID: both users with a
// NUL between them) as people read it: "alice -> bob".
func accountLabel(id string) string {
	way := ""
	if rest, ok := strings.CutPrefix(id, "reverse\x00"); ok {
		id, way = rest, "way back of "
	}
	return way + strings.ReplaceAll(id, "\x00", " -> ")
}

// cleanText shows the control characters of s as \xNN, for text that
// goes to a raw terminal (the live display) rather than a cleanWriter.
func cleanText(s string) string {
	var b bytes.Buffer
	(&cleanWriter{w: &b}).Write([]byte(strings.ReplaceAll(s, "\n", " ")))
	return b.String()
}
