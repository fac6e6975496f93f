package migrate

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

func mustPattern(t *testing.T, p string) *regexp.Regexp {
	t.Helper()
	re, err := CompileFolderPattern(p)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// TestSelectionFoldersAndFilters: folder rules leave mailboxes out and
// rename others, filters leave out old and big messages, the counts say so
// and still add up, a re-run copies nothing, and verify given the same
// selection passes while verify of everything does not.
func TestSelectionFoldersAndFilters(t *testing.T) {
	src, dst := mem.New(), mem.New()
	day := func(d int) time.Time { return time.Date(2024, 1, d, 23, 30, 0, 0, time.FixedZone("", -5*3600)) }
	src.Put("INBOX", msg(1, ""), nil, day(9))                         // before --since
	src.Put("INBOX", msg(2, ""), nil, day(10))                        // on the --since day, late evening in its zone
	src.Put("INBOX", msg(3, strings.Repeat("x", 5000)), nil, day(11)) // too big
	src.Put("INBOX", msg(4, ""), nil, day(19))                        // the day before --before
	src.Put("INBOX", msg(5, ""), nil, day(20))                        // on the --before day: out
	src.Put("Junk", msg(6, ""), nil, day(12))
	src.Put("Work", msg(7, ""), nil, day(12))
	src.Put("Work/2024", msg(8, ""), nil, day(12))
	src.Put("Worker", msg(9, ""), nil, day(12))
	src.SetRole("Sent Items", providers.RoleSent)
	src.Put("Sent Items", msg(10, ""), []string{`\Seen`}, day(12))
	dst.SetRole("Sent", providers.RoleSent)

	sel := Selection{
		Exclude: []*regexp.Regexp{mustPattern(t, "Junk|Trash")},
		Map:     []FolderMap{{From: "Work", To: "Archive/Work"}, {From: "Sent Items", To: "Old Sent"}},
		Filter:  providers.Filter{Since: time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC), Before: time.Date(2024, 1, 20, 0, 0, 0, 0, time.UTC), MaxSize: 2000},
	}
	l := openLedger(t)
	sum := run(t, src, dst, l, Options{Select: sel})
	if !sum.OK() {
		t.Fatalf("not OK: %+v", sum)
	}
	if len(sum.Skipped) != 1 || sum.Skipped[0].Mailbox != "Junk" || !strings.Contains(sum.Skipped[0].Reason, "exclude") {
		t.Errorf("skipped %+v, want Junk excluded", sum.Skipped)
	}
	for name, want := range map[string]int{"INBOX": 2, "Archive/Work": 1, "Archive/Work/2024": 1, "Worker": 1, "Old Sent": 1, "Sent": 0, "Junk": 0} {
		if got := len(dst.Messages(name)); got != want {
			t.Errorf("destination %s holds %d messages, want %d", name, got, want)
		}
	}
	tot := sum.Totals()
	if tot.Seen != 6 || tot.Copied != 6 || tot.Filtered != 3 {
		t.Errorf("totals %+v, want seen 6, copied 6, filtered 3", tot)
	}
	var ids []string
	for _, m := range dst.Messages("INBOX") {
		k := providers.KeyOf(m.Raw)
		ids = append(ids, k.MessageID)
	}
	slices.Sort(ids)
	if want := []string{"<m2@example.org>", "<m4@example.org>"}; !slices.Equal(ids, want) {
		t.Errorf("INBOX got %v, want %v", ids, want)
	}

	appends := dst.Appends()
	if again := run(t, src, dst, l, Options{Select: sel}); again.Totals().New != 0 || dst.Appends() != appends {
		t.Errorf("re-run copied %d, appended %d more", again.Totals().New, dst.Appends()-appends)
	}

	a := BatchAccount{ID: "alice\x00alice", SourceUser: "alice", DestUser: "alice"}
	if v, err := Verify(context.Background(), a, src, dst, l, VerifyOptions{Select: sel}); err != nil || !v.Pass {
		t.Errorf("verify with the migration's selection: pass %v, err %v, %+v", v.Pass, err, v.Mailboxes)
	}
	if v, _ := Verify(context.Background(), a, src, dst, l, VerifyOptions{}); v.Pass {
		t.Errorf("verify of everything passed, but filtered messages and Junk were not copied")
	}
}

func TestSelectionRules(t *testing.T) {
	sel := Selection{
		Include: []*regexp.Regexp{mustPattern(t, "INBOX|Projects/.*")},
		Exclude: []*regexp.Regexp{mustPattern(t, "Projects/Old")},
		Map:     []FolderMap{{From: "Projects", To: "Work"}},
	}
	for name, skipped := range map[string]bool{"INBOX": false, "Projects/A": false, "Projects/Old": true, "Projects": true, "Sent": true, "INBOX2": true} {
		if got := sel.skips(name) != ""; got != skipped {
			t.Errorf("skips(%q) = %v, want %v", name, got, skipped)
		}
	}
	for name, want := range map[string]string{"Projects": "Work", "Projects/A/B": "Work/A/B", "ProjectsX": "", "INBOX": ""} {
		if got, _ := sel.mapped(name); got != want {
			t.Errorf("mapped(%q) = %q, want %q", name, got, want)
		}
	}
	for _, bad := range []string{"noequals", "=x", "x=", " / = a"} {
		if _, err := ParseFolderMap(bad); err == nil {
			t.Errorf("ParseFolderMap(%q) accepted", bad)
		}
	}
	if m, err := ParseFolderMap(" Sent Items = Sent/ "); err != nil || m != (FolderMap{"Sent Items", "Sent"}) {
		t.Errorf("ParseFolderMap = %+v, %v", m, err)
	}
	if _, err := CompileFolderPattern("("); err == nil {
		t.Errorf("a bad pattern compiled")
	}
}
