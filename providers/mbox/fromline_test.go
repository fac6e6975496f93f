package mbox

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// fromForms are the From_ lines real writers produce, with the date each
// stands for. Every one must start a message wherever the classic rules
// put one, and give its date.
var fromForms = []struct {
	writer string
	line   string
	want   time.Time // zero: no date on the line
}{
	{"ctime with seconds", "From user@example.com Mon Jan  1 00:00:00 2001", utc("2001-01-01T00:00:00Z")},
	{"ctime without seconds", "From user@example.com Wed Feb  9 23:15 2000", utc("2000-02-09T23:15:00Z")},
	{"zone name before the year, no seconds (Mail::Box's mbox.src)", "From magick-owner@unca-don.wizards.dupont.com Wed Feb  9 23:15 MET 2000", utc("2000-02-09T22:15:00Z")},
	{"EDT before the year, no seconds", "From david@coppit.org Sat Sep  1 20:58 EDT 2001", utc("2001-09-02T00:58:00Z")},
	{"EST before the year", "From a@example.com Mon Jan  1 00:00:00 EST 2001", utc("2001-01-01T05:00:00Z")},
	{"GMT before the year", "From a@example.com Mon Jan  1 00:00:00 GMT 2001", utc("2001-01-01T00:00:00Z")},
	{"numeric zone before the year", "From a@example.com Mon Jan  1 00:00:00 +0100 2001", utc("2000-12-31T23:00:00Z")},
	{"numeric zone after the year", "From user@domain  Sun Mar 25 02:00:00 2007 +0200", utc("2007-03-25T00:00:00Z")},
	{"negative zone after the year", "From xxx8x@ares.cs.Virginia.EDU Thu Sep 13 12:30:05 2001 -0400", utc("2001-09-13T16:30:05Z")},
	{"zone name after the year", "From a@example.com Mon Jan  1 00:00:00 2001 PST", utc("2001-01-01T08:00:00Z")},
	{"zone name with DST", "From cristy@mystic.es.dupont.com Wed Jun 14 17:23 MET DST 2000", utc("2000-06-14T15:23:00Z")},
	{"GMT+hhmm", "From a@example.com Mon Jan  1 00:00:00 GMT+0130 2001", utc("2000-12-31T22:30:00Z")},
	{"hh:mm zone", "From a@example.com Mon Jan  1 00:00:00 2001 -05:00", utc("2001-01-01T05:00:00Z")},
	{"unknown zone name", "From a@example.com Mon Jan  1 00:00:00 XYZT 2001", utc("2001-01-01T00:00:00Z")},
	{"upper case names", "From a@example.com MON JAN  1 00:00:00 2001", utc("2001-01-01T00:00:00Z")},
	{"lower case names", "From a@example.com mon jan 1 00:00:00 2001", utc("2001-01-01T00:00:00Z")},
	{"full names", "From a@example.com Monday January 1 00:00:00 2001", utc("2001-01-01T00:00:00Z")},
	{"Sept", "From a@example.com Mon Sept 3 00:00:00 2001", utc("2001-09-03T00:00:00Z")},
	{"day padded with zero (gmane, Thunderbird)", "From news@gmane.org Tue Mar 04 03:33:20 2003", utc("2003-03-04T03:33:20Z")},
	{"day padded with space", "From news@gmane.org Tue Mar  4 03:33:20 2003", utc("2003-03-04T03:33:20Z")},
	{"two-digit day", "From a@example.com Fri Dec 31 23:59:59 1999", utc("1999-12-31T23:59:59Z")},
	{"leap second", "From a@example.com Sat Dec 31 23:59:60 2016", utc("2016-12-31T23:59:59Z")},
	{"UUCP remote from", "From user Mon Jan  1 00:00 EST 2001 remote from uucphost", utc("2001-01-01T05:00:00Z")},
	{"UUCP remote from, seconds", "From user Mon Jan  1 00:00:00 2001 remote from a!b", utc("2001-01-01T00:00:00Z")},
	{"Eudora", "From ???@??? Fri Mar 10 09:04:22 1995", utc("1995-03-10T09:04:22Z")},
	{"sender with spaces", "From John Doe <jd@example.com> Mon Jan  1 00:00:00 2001", utc("2001-01-01T00:00:00Z")},
	{"Mailman archive sender", "From upi at papat.org  Wed Feb  1 19:06:04 2006", utc("2006-02-01T19:06:04Z")},
	{"quoted sender", `From "john q. public"@example.com Mon Jan  1 00:00:00 2001`, utc("2001-01-01T00:00:00Z")},
	{"sender named like a month", "From Jan Mon Jan  1 00:00:00 2001", utc("2001-01-01T00:00:00Z")},
	{"no sender", "From Mon Jan  1 00:00:00 2001", utc("2001-01-01T00:00:00Z")},
	{"Thunderbird", "From - Mon Jun  3 12:50:27 1996", utc("1996-06-03T12:50:27Z")},
	{"Thunderbird, zero-padded", "From - Sat Jan 03 01:05:34 1998", utc("1998-01-03T01:05:34Z")},
	{"Apple Mail", "From sender@example.com Tue Mar  4 15:00:00 2014", utc("2014-03-04T15:00:00Z")},
	{"mutt", "From sender@example.com Thu Jan  2 02:04:05 2020", utc("2020-01-02T02:04:05Z")},
	{"Pine/Alpine folder data", "From MAILER-DAEMON Sat Jul  8 10:27:08 2000", utc("2000-07-08T10:27:08Z")},
	{"procmail/formail, two spaces", "From dblank@comp.uark.edu  Wed Jul  1 13:17:17 1998", utc("1998-07-01T13:17:17Z")},
	{"qmail", "From bounce-list=user@example.org Fri Feb 22 17:06:23 2008", utc("2008-02-22T17:06:23Z")},
	{"Google Takeout", "From 1844347792267117879@xxx Wed Oct 12 09:17:45 +0000 2022", utc("2022-10-12T09:17:45Z")},
	{"Python mailbox", "From MAILER-DAEMON Thu Jan  2 02:04:05 2020", utc("2020-01-02T02:04:05Z")},
	{"MAILER-DAEMON bounce", "From MAILER-DAEMON@mx.example.com  Fri Feb 22 17:06:23 2008", utc("2008-02-22T17:06:23Z")},
	{"RFC 5322 date", "From a@b Tue, 5 Nov 2019 10:00:00 -0500", utc("2019-11-05T15:00:00Z")},
	{"RFC 5322 date, zone comment", "From a@b Tue, 5 Nov 2019 10:00:00 -0500 (EST)", utc("2019-11-05T15:00:00Z")},
	{"RFC 5322 date, no weekday", "From a@b 5 Nov 2019 10:00:00 +0000", utc("2019-11-05T10:00:00Z")},
	{"CRLF line end", "From a@example.com Mon Jan  1 00:00:00 2001\r", utc("2001-01-01T00:00:00Z")},
	// No date that can be read: a boundary only after a blank line (or at
	// the start) and followed by a header.
	{"Thunderbird without a date", "From - ", time.Time{}},
	{"Gmail export without a date", "From 1844347792267117879@xxx", time.Time{}},
	{"KMail export", "From ???@??? 00:00:00 1997 +0000", time.Time{}},
	{"MAILER-DAEMON alone", "From MAILER-DAEMON", time.Time{}},
	{"day 30 of February", "From a@example.com Wed Feb 30 00:00:00 2000", time.Time{}},
}

func TestParseFromLine(t *testing.T) {
	for _, c := range fromForms {
		got, ok := parseFromLine([]byte(c.line + "\n"))
		if ok != !c.want.IsZero() || ok && !got.Equal(c.want) {
			t.Errorf("%s: parseFromLine(%q) = %v, %v; want %v", c.writer, c.line, got, ok, c.want)
		}
	}
	// Text that starts with "From " has no date.
	for _, line := range []string{"From -", "From Russia with love", "From here on, nothing", "From 10 Jan 2001 on, we",
		"From Mon Jan 1 2001 on", "From a Mon Jan 1 00:00:00 2001 onwards", "From a Mon Jan 32 00:00:00 2001",
		"From a Mon Jan 1 25:00:00 2001", "From a Mon Jan 1 00:00:00", "From a Mon 1 00:00:00 2001"} {
		if got, ok := parseFromLine([]byte(line + "\n")); ok {
			t.Errorf("parseFromLine(%q) = %v, want no date", line, got)
		}
	}
}

// TestFromFormsSplit puts each form between two ordinary messages, after a
// blank line and before a header: three messages, the middle one dated as
// the form says (or, without a date, by its Date field), and no doubt.
func TestFromFormsSplit(t *testing.T) {
	const first = "From a@example.org Mon Jan  1 00:00:00 2001\nSubject: one\n\nbody one\n\n"
	const last = "\nFrom c@example.org Wed Jan  3 00:00:00 2001\nSubject: three\n\nbody three\n\n"
	for _, c := range fromForms {
		t.Run(c.writer, func(t *testing.T) {
			eol := "\n"
			if strings.HasSuffix(c.line, "\r") {
				eol = "\r\n"
			}
			middle := strings.ReplaceAll("Received: from mx.example.org by mail.example.org; Fri, 5 Jan 2001 10:00:00 +0000\n"+
				"Date: Thu, 4 Jan 2001 10:00:00 +0100\nSubject: two\n\nbody two\n", "\n", eol)
			file := first + c.line + "\n" + middle + last
			res, err := scan(strings.NewReader(file), "forms.mbox", nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.spans) != 3 {
				t.Fatalf("%d messages, want 3: %q is a From_ line; problems %v", len(res.spans), c.line, res.problems)
			}
			sp := res.spans[1]
			if got := file[sp.data:sp.end]; got != middle {
				t.Errorf("middle message %q, want %q", got, middle)
			}
			want := c.want
			if want.IsZero() {
				want = utc("2001-01-04T09:00:00Z") // its Date field
			}
			if !sp.hasDate || sp.date != want.Unix() {
				t.Errorf("date %v (%v), want %v", time.Unix(sp.date, 0).UTC(), sp.hasDate, want)
			}
			for _, p := range res.problems {
				if p.Doubt {
					t.Errorf("doubt: %s", p)
				}
				if !c.want.IsZero() {
					t.Errorf("problem: %s", p)
				}
			}
			if c.want.IsZero() && !hasWhat(res.problems, "without a date that could be read, the first on this line, taken as the start of a message") {
				t.Errorf("no warning about the From_ line without a date: %v", res.problems)
			}
		})
	}
}

func hasWhat(ps []Problem, words string) bool {
	for _, p := range ps {
		if strings.Contains(p.What, words) {
			return true
		}
	}
	return false
}

// TestBoundaryRules: which lines starting "From " start a message, which
// are text, and which leave the count in doubt, with warnings that say
// what the line has and lacks.
func TestBoundaryRules(t *testing.T) {
	const dated = "From b@example.org Tue Jan  2 00:00:00 2001\n"
	const first = "From a@example.org Mon Jan  1 00:00:00 2001\nSubject: one\n\n"
	for _, c := range []struct {
		name    string
		file    string
		n       int    // messages
		doubt   string // words of the doubt, "" for none
		warning string // words of a warning, "" for none
	}{
		{name: "dated, blank before, header after", file: first + "b\n\n" + dated + "Subject: 2\n\nb\n", n: 2},
		{name: "dated, blank before, no header (a message without one)", file: first + "b\n\n" + dated + "\nb\n", n: 2},
		{name: "dated, no blank before, header after (Netscape)", file: first + "b\n" + dated + "Subject: 2\n\nb\n", n: 2,
			warning: "without a blank line before it; taken as the start of a new message"},
		{name: "dated, no blank before, no header", file: first + "b\n" + dated + "quoted text\n", n: 1,
			doubt: "with a date, but no blank line before it and no header after it"},
		{name: "undated, blank before, header after", file: first + "b\n\nFrom -\nReturn-Path: <x@y>\nSubject: 2\n\nb\n", n: 2,
			warning: "the file's time for 1"},
		{name: "undated, blank before, no header", file: first + "b\n\nFrom Russia with love\n\nb\n", n: 1,
			doubt: "after a blank line, with no date that could be read and no header after it"},
		{name: "undated, blank before, a field no message has", file: first + "b\n\nFrom Russia with love\nYear: 1963\n\nb\n", n: 1,
			doubt: "after a blank line, with no date that could be read and no header after it"},
		{name: "undated, no blank before, header after", file: first + "b\nFrom -\nSubject: 2\n\nb\n", n: 1,
			doubt: "followed by a header, but with no blank line before it and no date"},
		{name: "text in a paragraph", file: first + "b\nFrom here on, text\n", n: 1},
		{name: "quoted", file: first + "b\n\n>From b@example.org Tue Jan  2 00:00:00 2001\nSubject: 2\n", n: 1},
		{name: "header after, with continuation lines and an old envelope line", n: 2,
			file:    first + "b\n\nFrom someone\n>From other Mon Jan  1 00:00:00 2001\nReceived: from a\n\tby b; Tue, 2 Jan 2001 00:00:00 +0000\n\nb\n",
			warning: "from the first Received: field for 1"},
		{name: "undated at the start, no header", file: "From -\n\nbody\n\n" + dated + "Subject: 2\n\nb\n", n: 2, warning: "the file's time for 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := scan(strings.NewReader(c.file), "rules.mbox", nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.spans) != c.n {
				t.Errorf("%d messages, want %d", len(res.spans), c.n)
			}
			var doubts, warnings []string
			for _, p := range res.problems {
				if p.Doubt {
					doubts = append(doubts, p.String())
				} else if !strings.Contains(p.What, "no blank line after the last message") {
					warnings = append(warnings, p.String())
				}
			}
			check := func(kind string, got []string, words string) {
				t.Helper()
				switch {
				case words == "" && len(got) > 0:
					t.Errorf("unexpected %s %q", kind, got)
				case words != "" && (len(got) != 1 || !strings.Contains(got[0], words)):
					t.Errorf("%s %q, want one saying %q", kind, got, words)
				case words != "" && !strings.Contains(got[0], "rules.mbox:"):
					t.Errorf("%s %q does not name the file and line", kind, got[0])
				}
			}
			check("doubt", doubts, c.doubt)
			check("warning", warnings, c.warning)
		})
	}
}

// TestContentLength: a Content-Length that ends a message where a From_
// line or the end of the file is, but elsewhere than the From_ lines do,
// leaves the count in doubt; one that agrees, or points nowhere, does not.
func TestContentLength(t *testing.T) {
	body := "line one\n\nFrom the desk of the editor\nline three\n"
	msg := func(from string, length int, body string) string {
		return from + fmt.Sprintf("Subject: s\nContent-Length: %d\n\n", length) + body + "\n"
	}
	from1 := "From a@example.org Mon Jan  1 00:00:00 2001\n"
	from2 := "From b@example.org Tue Jan  2 00:00:00 2001\n"
	for _, c := range []struct {
		name  string
		file  string
		n     int
		doubt bool
	}{
		{"agrees", msg(from1, len(body), body) + msg(from2, 3, "ab\n"), 2, false},
		{"agrees, counting the blank line", msg(from1, len(body)+1, body) + msg(from2, 4, "ab\n"), 2, false},
		{"points into the text", msg(from1, 5, body) + msg(from2, 3, "ab\n"), 2, false},
		{"points past the end", msg(from1, 1<<20, body) + msg(from2, 3, "ab\n"), 2, false},
		{"not a number", strings.Replace(msg(from1, 3, body), "Content-Length: 3", "Content-Length: many", 1), 1, false},
		// mboxcl2: the body holds an unquoted From_ line after a blank line,
		// which the From_ lines take, but Content-Length skips it.
		{"skips a From_ line", msg(from1, len(body)+1+len("\n"+from2+"x\n"), body+"\n"+from2+"x\n") + msg(from2, 3, "ab\n"), 3, true},
		{"ends at the end of the file", msg(from1, len(body)+1+len("\n"+from2+"x\n"), body+"\n"+from2+"x\n"), 2, true},
		{"ends at a From line in the text", msg(from1, len("line one\n"), body) + msg(from2, 3, "ab\n"), 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := scan(strings.NewReader(c.file), "cl.mbox", nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.spans) != c.n {
				t.Errorf("%d messages, want %d", len(res.spans), c.n)
			}
			var doubts []Problem
			for _, p := range res.problems {
				if p.Doubt && strings.Contains(p.What, "Content-Length") {
					doubts = append(doubts, p)
				}
			}
			if len(doubts) > 0 != c.doubt {
				t.Errorf("Content-Length doubts %v, want some: %v", doubts, c.doubt)
			}
			for _, p := range doubts {
				if p.Line != 1 || !strings.Contains(p.What, "the message count is in doubt") {
					t.Errorf("doubt %q: want line 1, saying the count is in doubt", p)
				}
			}
		})
	}
}

// TestBareLFCount: the scanner counts the lines of each message that end
// in a bare LF, which List turns into the size a CRLF server reports.
func TestBareLFCount(t *testing.T) {
	msgs := []string{"Subject: lf\n\na\nb\n", "Subject: crlf\r\n\r\na\r\n", "Subject: mixed\r\n\nx\r\ny\n", "Subject: no final newline\n\nz", ""}
	var file bytes.Buffer
	for _, m := range msgs {
		file.WriteString("From a@example.org Mon Jan  1 00:00:00 2001\n" + m)
		if !strings.HasSuffix(m, "\n") && m != "" {
			file.WriteString("\n")
		}
		file.WriteString("\n")
	}
	res, err := scan(&file, "lf.mbox", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.spans) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(res.spans), len(msgs))
	}
	for i, m := range msgs {
		served := m
		if !strings.HasSuffix(m, "\n") && m != "" {
			served += "\n" // the file holds it; only a sidecar says otherwise
		}
		want := int64(strings.Count(served, "\n") - strings.Count(served, "\r\n"))
		if sp := res.spans[i]; sp.bare != want || sp.size != int64(len(served)) {
			t.Errorf("message %d: %d bare LFs in %d bytes, want %d in %d", i+1, sp.bare, sp.size, want, len(served))
		}
	}
}
