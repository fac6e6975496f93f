package maildir_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/providers/maildir"
)

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		in, dir string
		opts    maildir.Options
		bad     bool
	}{
		{in: "/var/mail/alice", dir: "/var/mail/alice"},
		{in: "/m/a:LAYOUT=fs", dir: "/m/a", opts: maildir.Options{Layout: maildir.LayoutFS}},
		{in: "/m/a:LAYOUT=Maildir++:UTF-8", dir: "/m/a", opts: maildir.Options{Layout: maildir.LayoutMaildirPP, UTF8Names: true}},
		{in: "/m/odd:name", dir: "/m/odd:name"},
		{in: "/m/a:LAYOUT=mbox", bad: true},
		{in: ":LAYOUT=fs", bad: true},
	} {
		dir, opts, err := maildir.ParseLocation(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseLocation(%q) = %q, %+v; want an error", c.in, dir, opts)
			}
			continue
		}
		if err != nil || dir != c.dir || opts != c.opts {
			t.Errorf("ParseLocation(%q) = %q, %+v, %v; want %q, %+v", c.in, dir, opts, err, c.dir, c.opts)
		}
	}
}

// TestNamesOnDisk: names are stored as Dovecot stores them (modified
// UTF-7, or UTF-8 if told; listescape for what a level cannot hold) and
// read back as themselves.
func TestNamesOnDisk(t *testing.T) {
	names := []string{"Entwürfe/日本", "Q&A", "v1.2 release", `back\slash`, "~home", "INBOX/Lists", "a/b.c/d"}
	for _, c := range []struct {
		opts maildir.Options
		want []string // directories below the root, as created
	}{
		{maildir.Options{Layout: maildir.LayoutMaildirPP},
			[]string{".Entw&APw-rfe.&ZeVnLA-", ".Q&-A", `.v1\2e2 release`, `.back\5cslash`, `.\7ehome`, ".INBOX.Lists", `.a.b\2ec.d`}},
		{maildir.Options{Layout: maildir.LayoutFS},
			[]string{"Entw&APw-rfe/&ZeVnLA-", "Q&-A", "v1.2 release", `back\5cslash`, `\7ehome`, "INBOX/Lists", "a/b.c/d"}},
		{maildir.Options{Layout: maildir.LayoutMaildirPP, UTF8Names: true},
			[]string{".Entwürfe.日本", ".Q&A", `.v1\2e2 release`, `.back\5cslash`, `.\7ehome`, ".INBOX.Lists", `.a.b\2ec.d`}},
	} {
		t.Run(c.opts.Layout.String(), func(t *testing.T) {
			root := t.TempDir()
			st := openStore(t, root, c.opts)
			for i, n := range names {
				if err := st.CreateMailbox(t.Context(), n, ""); err != nil {
					t.Fatalf("CreateMailbox(%q): %v", n, err)
				}
				if _, err := os.Stat(filepath.Join(root, c.want[i], "cur")); err != nil {
					t.Errorf("%q: not stored as %s: %v", n, c.want[i], err)
				}
			}
			back := openStore(t, root, maildir.Options{UTF8Names: c.opts.UTF8Names})
			boxes, err := back.Mailboxes(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range boxes {
				got = append(got, b.Name)
			}
			want := append(slices.Clone(names), "INBOX")
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("read back %q, want %q", got, want)
			}
			if back.Layout() != c.opts.Layout {
				t.Errorf("detected layout %v, want %v", back.Layout(), c.opts.Layout)
			}
		})
	}
	if err := openStore(t, t.TempDir(), maildir.Options{Layout: maildir.LayoutFS}).CreateMailbox(t.Context(), "Work/new", ""); err == nil {
		t.Errorf("CreateMailbox(Work/new) in the fs layout succeeded; new is a maildir's own directory")
	}
}
