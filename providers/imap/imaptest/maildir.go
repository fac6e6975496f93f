package imaptest

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"testing"
)

// MaildirLocation points an instance at a maildir tree the test made, for
// tests of tools that read or write maildirs directly: Dovecot then serves
// that tree, and doveadm inspects it. FS, not DovecotOptions.Separator,
// then says the layout: a "/" separator over Maildir++ is what Dovecot
// does by default.
type MaildirLocation struct {
	// Root is the tree of the instance's users; "%u" in it stands for the
	// user, as in Dovecot's mail_location. Empty means the instance's own.
	Root string
	// FS is Dovecot's LAYOUT=fs; without it the tree is Maildir++.
	FS bool
	// UTF8 stores folder names in UTF-8 (mail_location's UTF-8).
	UTF8 bool
	// Listescape loads the listescape plugin, which reads '.' (in
	// Maildir++), a leading '~' and '\' in folder names as written "\NN".
	Listescape bool
}

// writeMailLocation writes mail_location (and the plugins the location
// needs).
func (d *Dovecot) writeMailLocation(p func(string, ...any)) {
	m := d.opts.Maildir
	if m == nil {
		m = &MaildirLocation{FS: d.opts.Separator == "/"}
	}
	root := m.Root
	if root == "" {
		root = filepath.Join(d.Dir, "mail", "%u")
	}
	loc := "maildir:" + root
	if m.FS {
		loc += ":LAYOUT=fs"
	}
	if m.UTF8 {
		loc += ":UTF-8"
	}
	p("mail_location = %s", loc)
	if m.Listescape {
		p("mail_plugins = $mail_plugins listescape")
	}
}

// Adopt gives every file and directory under dir to the account Dovecot
// stores mail as, so that a tree a test wrote as root can be served.
func (d *Dovecot) Adopt(tb testing.TB, dir string) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return d.chown(path)
	})
	if err != nil {
		tb.Fatalf("imaptest: adopt %s: %v", dir, err)
	}
}

// UIDValidity returns the mailbox's UIDVALIDITY as Dovecot reports it.
func (d *Dovecot) UIDValidity(tb testing.TB, user, mailbox string) uint32 {
	tb.Helper()
	st, ok := d.mailboxStatus(tb, user, mailbox, "uidvalidity")
	if !ok {
		tb.Fatalf("imaptest: user %s has no mailbox %q", user, mailbox)
	}
	v, err := strconv.ParseUint(st["uidvalidity"], 10, 32)
	if err != nil {
		tb.Fatalf("imaptest: uidvalidity of %s/%s: %v", user, mailbox, err)
	}
	return uint32(v)
}

// MailDir returns the directory of a user's mail in the instance's own
// tree (not a MaildirLocation's).
func (d *Dovecot) MailDir(user string) string { return filepath.Join(d.Dir, "mail", user) }
