// Package imaptest starts throw-away Dovecot IMAP servers on 127.0.0.1 for
// integration tests and inspects them with doveadm, Dovecot's own admin tool,
// so that tests check mailferry's results independently of mailferry's own
// IMAP code.
//
// Each instance has its own config file (nothing from /etc/dovecot is read),
// its own base_dir, state_dir, log and maildirs under one temporary directory,
// and listens for plaintext IMAP on a free 127.0.0.1 port. The system Dovecot,
// if any, is never touched.
//
// Privileges: Dovecot refuses to store mail as root, so when the tests run as
// root (as in CI) mail is stored as the unprivileged system user "mail"
// (present on Debian, Ubuntu, Fedora and Alpine); if it does not exist the
// system user "mailferry-test" is created with useradd. Dovecot's own
// processes then run as the "dovecot" and "dovenull" users that the Debian
// package creates. When not running as root (best effort), every Dovecot
// process and the mail run as the current user and the login process is not
// chrooted.
package imaptest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	defaultMaxUserIPConnections = 50

	// masterSeparator joins user and master user in a LOGIN name:
	// "LOGIN alice*admin adminpassword".
	masterSeparator = "*"

	// testMailUser is created when running as root and the "mail" user is
	// missing.
	testMailUser = "mailferry-test"

	startTimeout  = 20 * time.Second
	stopTimeout   = 10 * time.Second
	startAttempts = 3 // a free port can be taken by someone else before Dovecot binds it
	logTailBytes  = 4096
)

// defaultSpecialUse is the special-use mailboxes every instance has unless
// DovecotOptions.SpecialUse says otherwise: Drafts, Sent, Trash, Junk and
// Archive, each "auto = subscribe" (created and subscribed on first use).
func defaultSpecialUse() map[string]string {
	return map[string]string{
		"Drafts":  `\Drafts`,
		"Sent":    `\Sent`,
		"Trash":   `\Trash`,
		"Junk":    `\Junk`,
		"Archive": `\Archive`,
	}
}

// specialUseOrDefault checks a server's special-use mailboxes (name ->
// attribute); nil means the defaults.
func specialUseOrDefault(m map[string]string) (map[string]string, error) {
	if m == nil {
		return defaultSpecialUse(), nil
	}
	for name, attr := range m {
		if name == "" || strings.ContainsFunc(name, isControl) || !strings.HasPrefix(attr, `\`) {
			return nil, fmt.Errorf("special-use mailbox %q = %q: want a name and an attribute like \\Sent", name, attr)
		}
	}
	return m, nil
}

// DovecotOptions configures one Dovecot instance.
type DovecotOptions struct {
	// Users maps login to password (passwd-file, PLAIN scheme). Required,
	// at least one. Names and passwords must not contain ':' or control
	// characters; names must not contain '/', '*' or whitespace either.
	Users map[string]string

	// MasterUser and MasterPassword, if set, add a master user (passdb with
	// master = yes, pass = yes): "LOGIN user*master masterpassword" logs in as
	// user, and so does SASL PLAIN with authzid=user, authcid=master.
	MasterUser, MasterPassword string

	// Separator is the hierarchy separator: "" or "/" gives "/" (maildir with
	// LAYOUT=fs), "." gives "." (Maildir++ layout).
	Separator string

	// Prefix is the personal namespace prefix: "" (default) or "INBOX."
	// (Courier style; Separator must then be ".").
	Prefix string

	// MaxUserIPConnections is mail_max_userip_connections; 0 means 50.
	MaxUserIPConnections int

	// QuotaBytes, if positive, enables the quota plugin (count backend) with
	// quota_rule = *:storage=<QuotaBytes>B, counted in virtual (CRLF) sizes.
	// An APPEND that would exceed it fails with NO [OVERQUOTA]. Seed bypasses
	// the quota check but its messages count against the quota.
	QuotaBytes int64

	// SpecialUse maps mailbox name to special-use attribute (e.g.
	// "Sent Items" -> `\Sent`). Names are relative to Prefix and use the
	// configured separator, as Dovecot's namespace config takes them: with
	// Prefix "INBOX." the key "Sent" is the mailbox "INBOX.Sent". Every
	// mailbox here is "auto = subscribe". nil means the default Drafts,
	// Sent, Trash, Junk, Archive; an empty non-nil map means none.
	SpecialUse map[string]string

	// Maildir, if set, serves a maildir tree given by the test instead
	// of the instance's own (see maildir.go).
	Maildir *MaildirLocation

	// TLS, if set, adds STARTTLS and an imaps listener (see tls.go).
	TLS *TLS
}

// Dovecot is one running Dovecot instance.
type Dovecot struct {
	Host       string // always "127.0.0.1"
	Port       int    // plaintext IMAP port (STARTTLS with DovecotOptions.TLS)
	TLSPort    int    // implicit TLS (imaps) port with DovecotOptions.TLS, else 0
	Dir        string // instance root: config, state, mail, logs
	ConfigPath string

	opts        DovecotOptions
	dovecotPath string
	doveadmPath string
	acct        *owner        // the account mail is stored as
	seedSeq     atomic.Uint64 // makes seeded file names unique
	proc        *process
}

// owner is the account Dovecot stores mail as.
type owner struct {
	uid, gid    int
	user, group string
	root        bool // we run as root: files we create must be chowned to uid:gid
}

// process is the running dovecot master.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, valid after done is closed
}

// StartDovecot starts a private Dovecot in the foreground (dovecot -F -c CONF)
// as a child process with its output in a file in Dir, waits until it greets
// on its port, and registers tb.Cleanup to stop it and remove Dir.
//
// If dovecot is not installed the test is skipped, or fails when the
// environment variable CI is "true" so that CI cannot silently skip it.
func StartDovecot(tb testing.TB, opts DovecotOptions) *Dovecot {
	tb.Helper()

	dovecotPath, err1 := findBinary("dovecot", "/usr/sbin", "/usr/local/sbin")
	doveadmPath, err2 := findBinary("doveadm", "/usr/bin", "/usr/local/bin")
	if err := errors.Join(err1, err2); err != nil {
		notInstalled(tb, err)
		return nil // only reached with a fake testing.TB
	}

	opts, err := normalizeOptions(opts)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	own, err := mailOwner()
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}

	// Dovecot's unprivileged processes must reach the config and mail below.
	dir, err := makeInstanceDir("mfdc", 0o755)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	d := &Dovecot{
		Host:        "127.0.0.1",
		Dir:         dir,
		ConfigPath:  filepath.Join(dir, "dovecot.conf"),
		opts:        opts,
		dovecotPath: dovecotPath,
		doveadmPath: doveadmPath,
		acct:        own,
	}
	// Cleanups run last-in first-out: stop Dovecot before removing its files.
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("imaptest: dovecot log of %s:\n%s", dir, d.logTail())
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("imaptest: remove %s: %v", dir, err)
		}
	})
	launch(tb, "dovecot", d.prepare, d.startOnce, d.logTail, func() error { return d.proc.stop() })
	return d
}

// notInstalled skips the test, or fails it in CI so that CI cannot pass by
// silently skipping every integration test.
func notInstalled(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("imaptest: dovecot is required when CI=true (install dovecot-imapd): %v", err)
		return
	}
	tb.Skipf("dovecot not installed: install dovecot-imapd to run integration tests")
}

// Addr returns "127.0.0.1:PORT".
func (d *Dovecot) Addr() string {
	return net.JoinHostPort(d.Host, strconv.Itoa(d.Port))
}

func findBinary(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	// /usr/sbin is often missing from a non-root user's PATH.
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, strings.Join(dirs, ", "))
}

func normalizeOptions(o DovecotOptions) (DovecotOptions, error) {
	if len(o.Users) == 0 {
		return o, errors.New("DovecotOptions.Users must name at least one user")
	}
	if err := checkAccounts(o.Users, "MasterUser", o.MasterUser, o.MasterPassword, checkLogin); err != nil {
		return o, err
	}
	switch o.Separator {
	case "", "/":
		o.Separator = "/"
	case ".":
	default:
		return o, fmt.Errorf("separator %q: want \"/\" or \".\"", o.Separator)
	}
	switch o.Prefix {
	case "":
	case "INBOX.":
		if o.Separator != "." {
			return o, errors.New(`prefix "INBOX." needs separator "."`)
		}
	default:
		return o, fmt.Errorf("prefix %q: want \"\" or \"INBOX.\"", o.Prefix)
	}
	if o.MaxUserIPConnections == 0 {
		o.MaxUserIPConnections = defaultMaxUserIPConnections
	}
	if o.MaxUserIPConnections < 0 || o.QuotaBytes < 0 {
		return o, errors.New("MaxUserIPConnections and QuotaBytes must not be negative")
	}
	var err error
	o.SpecialUse, err = specialUseOrDefault(o.SpecialUse)
	return o, err
}

func checkLogin(name, pass string) error {
	if name == "" || strings.ContainsAny(name, ":/*") || strings.ContainsFunc(name, func(r rune) bool {
		return isControl(r) || r == ' '
	}) {
		return fmt.Errorf("user name %q: must be non-empty without ':', '/', '*', spaces or control characters", name)
	}
	if pass == "" || strings.Contains(pass, ":") || strings.ContainsFunc(pass, isControl) {
		return fmt.Errorf("password of %q: must be non-empty without ':' or control characters", name)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// mailOwner decides which account Dovecot stores mail as.
func mailOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("current user: %w", err)
		}
		return ownerOf(u, false)
	}
	for _, name := range []string{"mail", testMailUser} {
		if u, err := user.Lookup(name); err == nil {
			return ownerOf(u, true)
		}
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--shell", "/usr/sbin/nologin", testMailUser).CombinedOutput()
	// A parallel test process may have created it first: look again either way.
	u, lerr := user.Lookup(testMailUser)
	if lerr != nil {
		return nil, fmt.Errorf("create system user %s: %w: %s", testMailUser, errors.Join(err, lerr), out)
	}
	return ownerOf(u, true)
}

func ownerOf(u *user.User, root bool) (*owner, error) {
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Username, err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("group of user %s: %w", u.Username, err)
	}
	return &owner{uid: uid, gid: gid, user: u.Username, group: g.Name, root: root}, nil
}

// makeInstanceDir creates the instance root. It lives directly under the
// temporary directory rather than in t.TempDir(), because Dovecot's unix
// sockets live below it and socket paths are limited to 108 bytes.
// makeInstanceDir makes a server's directory directly under /tmp (or a
// short TMPDIR): its unix sockets live below it, and socket paths are
// limited to 108 bytes.
func makeInstanceDir(prefix string, mode os.FileMode) (string, error) {
	parent := os.TempDir()
	if len(parent) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", fmt.Errorf("create instance dir: %w", err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return "", errors.Join(fmt.Errorf("chmod instance dir: %w", err), os.Remove(dir))
	}
	return dir, nil
}

// prepare writes the user databases and creates the mail root.
func (d *Dovecot) prepare() error {
	mail := filepath.Join(d.Dir, "mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		return fmt.Errorf("create mail dir: %w", err)
	}
	if err := d.chown(mail); err != nil {
		return err
	}
	if err := d.writeTLSFiles(); err != nil {
		return err
	}

	var users strings.Builder
	for _, name := range sortedKeys(d.opts.Users) {
		// user:password:uid:gid:gecos:home:shell:extra — uid and gid come from
		// mail_uid/mail_gid, no home is needed.
		fmt.Fprintf(&users, "%s:{PLAIN}%s::::::\n", name, d.opts.Users[name])
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "users"), []byte(users.String()), 0o644); err != nil {
		return fmt.Errorf("write users: %w", err)
	}
	if d.opts.MasterUser != "" {
		line := fmt.Sprintf("%s:{PLAIN}%s\n", d.opts.MasterUser, d.opts.MasterPassword)
		if err := os.WriteFile(filepath.Join(d.Dir, "master-users"), []byte(line), 0o644); err != nil {
			return fmt.Errorf("write master-users: %w", err)
		}
	}
	return nil
}

// checkAccounts validates a test server's users and its optional admin
// (role names the option, for messages) with check.
func checkAccounts(users map[string]string, role, admin, adminPass string, check func(name, pass string) error) error {
	for name, pass := range users {
		if err := check(name, pass); err != nil {
			return err
		}
	}
	if (admin == "") != (adminPass == "") {
		return fmt.Errorf("%s and its password must be set together", role)
	}
	if admin == "" {
		return nil
	}
	if err := check(admin, adminPass); err != nil {
		return err
	}
	if _, ok := users[admin]; ok {
		return fmt.Errorf("%s %q is also a normal user", role, admin)
	}
	return nil
}

// CPU is the processor time the instance has used so far: its master and
// every process under it, with the exited ones the master has reaped. It
// reads /proc (Linux) and returns 0 where that is not there. Benchmarks
// take it before and after a tool's run to tell the servers' work apart
// from the tool's.
func (d *Dovecot) CPU() time.Duration {
	if d.proc == nil || d.proc.cmd.Process == nil {
		return 0
	}
	return treeCPU(d.proc.cmd.Process.Pid)
}
