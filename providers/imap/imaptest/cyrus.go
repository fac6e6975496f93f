package imaptest

// Cyrus IMAP as a second real server: hierarchy separator "." and the
// personal namespace "INBOX." (unixhierarchysep: no, altnamespace: no), the
// layout most Cyrus deployments have.
//
// Each instance has its own imapd.conf and cyrus.conf (nothing from /etc is
// read), configdirectory, partition, sasldb and logs under one temporary
// directory, and listens for plaintext IMAP on a free 127.0.0.1 port. Its
// master process runs in the foreground as a child of the test; the system
// Cyrus service, if any, is never touched.
//
// Debian's cyrus-imapd and dovecot-imapd conflict (both provide
// imap-server), so the two cannot be installed together. StartCyrus uses
// master and ctl_cyrusdb from cyrus-common and takes imapd from wherever it
// is: $MAILFERRY_CYRUS_IMAPD, next to master when cyrus-imapd is installed,
// or the copy .ci/run unpacks into cyrusUnpacked.
//
// Cyrus logs only through syslog(3), to /dev/log. Where it can (root, and
// the unshare and mount tools), StartCyrus runs master in a private mount
// namespace whose /dev/log is a socket the test reads, so that Cyrus's log
// is in the instance's cyrus.log and printed when a test fails.
//
// The inspection helpers (Mailboxes, Messages, ...) log in as the user with
// go-imap, independently of mailferry's IMAP code, and take and return
// Cyrus's own mailbox names ("INBOX.Projects.2026").

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/mailferry/mailferry/providers/imap/literal"
)

const (
	// cyrusUnpacked is where .ci/run unpacks the cyrus-imapd package when
	// dovecot-imapd keeps it from being installed.
	cyrusUnpacked = "/opt/mailferry-test/cyrus-imapd"
	// cyrusIMAPDEnv names an imapd binary to use instead.
	cyrusIMAPDEnv = "MAILFERRY_CYRUS_IMAPD"

	cyrusPrefix = "INBOX."
	// cyrusIMAPTimeout bounds one inspection helper's whole IMAP session, so
	// that a wedged server fails the test instead of hanging it.
	cyrusIMAPTimeout = 2 * time.Minute
)

// CyrusOptions configures one Cyrus instance.
type CyrusOptions struct {
	// Users maps login to password (kept in the instance's sasldb). Required,
	// at least one. Names must be lower case (Cyrus lowercases logins) and
	// free of '.', '@', ':', '/', '*', spaces and control characters;
	// passwords free of ':' and control characters. Each user's INBOX is
	// created at start.
	Users map[string]string

	// AdminUser and AdminPassword, if set, add a Cyrus admin (imapd.conf
	// admins:). It sees every user's mailboxes under "user." and can log in
	// as any user with SASL PLAIN, authzid = user (mailferry --from-admin).
	AdminUser, AdminPassword string

	// SpecialUse maps mailbox name below "INBOX." to special-use attribute
	// ("Sent Items" -> `\Sent` is the mailbox "INBOX.Sent Items"). Each is
	// created with CREATE ... (USE (attr)) and subscribed for every user at
	// start. nil means Drafts, Sent, Trash, Junk and Archive; an empty
	// non-nil map means none. Cyrus allows each attribute on one mailbox per
	// user only, and neither \All nor \Flagged.
	SpecialUse map[string]string
}

// Cyrus is one running Cyrus instance.
type Cyrus struct {
	Host       string // always "127.0.0.1"
	Port       int    // plaintext IMAP port (no TLS)
	Dir        string // instance root: config, spool, sasldb, logs
	ConfigPath string // imapd.conf

	opts       CyrusOptions
	bins       cyrusBinaries
	servername string // unique per instance; Cyrus puts it in its greeting
	uid, gid   int    // of the cyrus user, owner of everything Cyrus writes
	syslog     *net.UnixConn
	syslogDone chan struct{}
	proc       *cyrusProcess
}

type cyrusBinaries struct {
	master, ctlCyrusdb, imapd, saslpasswd2 string
	unshare, mount                         string // "" if missing: no syslog capture
}

// cyrusProcess is the running master. master drops root for the cyrus
// user, which clears the parent-death signal setProcAttr asks for; instead
// a watchdog beside it reads a pipe whose other end only the test holds,
// and stops master when it closes: at cleanup, or when the test dies.
type cyrusProcess struct {
	cmd      *exec.Cmd
	watchdog *os.File      // the test's end of the watchdog's pipe
	done     chan struct{} // closed when master has exited
	err      error         // cmd.Wait's result, valid after done is closed
}

// StartCyrus starts a private Cyrus (master -C imapd.conf -M cyrus.conf -D)
// as a child process, waits until it greets on its port, creates every
// user's INBOX and special-use mailboxes, and registers tb.Cleanup to stop
// it and remove Dir.
//
// If Cyrus is not installed, or the test does not run as root, the test is
// skipped, or fails when the environment variable CI is "true" so that CI
// cannot silently skip it.
func StartCyrus(tb testing.TB, opts CyrusOptions) *Cyrus {
	tb.Helper()
	bins, err := findCyrus()
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("Cyrus must be started as root: master switches to the cyrus user")
	}
	var cyrusUser *user.User
	if err == nil {
		cyrusUser, err = user.Lookup("cyrus") // created by cyrus-common
	}
	if err != nil {
		cyrusNotInstalled(tb, err)
		return nil // only reached with a fake testing.TB
	}
	opts, err = normalizeCyrusOptions(opts)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	uid, err1 := strconv.Atoi(cyrusUser.Uid)
	gid, err2 := strconv.Atoi(cyrusUser.Gid)
	if err := errors.Join(err1, err2); err != nil {
		tb.Fatalf("imaptest: user cyrus: %v", err)
	}

	dir, err := makeInstanceDir("mfcy", 0o700)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	cy := &Cyrus{
		Host:       "127.0.0.1",
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "imapd.conf"),
		opts:       opts,
		bins:       bins,
		servername: "imaptest-" + filepath.Base(dir),
		uid:        uid,
		gid:        gid,
	}
	// Cleanups run last-in first-out: stop Cyrus before removing its files.
	tb.Cleanup(func() {
		cy.stopSyslog()
		if tb.Failed() {
			tb.Logf("imaptest: cyrus log of %s:\n%s", dir, cy.logTail())
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("imaptest: remove %s: %v", dir, err)
		}
	})
	launch(tb, "cyrus", cy.prepare, cy.startOnce, cy.logTail, func() error { return cy.proc.stop() })
	cy.setUpUsers(tb)
	return cy
}

// cyrusNotInstalled skips the test, or fails it in CI.
func cyrusNotInstalled(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("imaptest: cyrus is required when CI=true (.ci/run installs cyrus-common and sasl2-bin and unpacks cyrus-imapd into %s): %v", cyrusUnpacked, err)
		return
	}
	tb.Skipf("cyrus not available: %v", err)
}

// Addr returns "127.0.0.1:PORT".
func (cy *Cyrus) Addr() string {
	return net.JoinHostPort(cy.Host, strconv.Itoa(cy.Port))
}

func findCyrus() (cyrusBinaries, error) {
	var b cyrusBinaries
	var errs []error
	find := func(dst *string, name string, candidates ...string) {
		for _, p := range candidates {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				*dst = p
				return
			}
		}
		errs = append(errs, fmt.Errorf("%s not found in %s", name, strings.Join(candidates, ", ")))
	}
	// master is a common name: only Cyrus's own directories count.
	find(&b.master, "cyrus master", "/usr/lib/cyrus/bin/master", "/usr/libexec/cyrus-imapd/master", "/usr/sbin/cyrmaster")
	if b.master != "" {
		bin := filepath.Dir(b.master)
		find(&b.ctlCyrusdb, "ctl_cyrusdb", filepath.Join(bin, "ctl_cyrusdb"), "/usr/lib/cyrus/bin/ctl_cyrusdb")
		imapd := []string{filepath.Join(bin, "imapd"), filepath.Join(cyrusUnpacked, "usr/lib/cyrus/bin/imapd")}
		if p := os.Getenv(cyrusIMAPDEnv); p != "" {
			imapd = []string{p}
		}
		find(&b.imapd, "cyrus imapd", imapd...)
	}
	var err error
	if b.saslpasswd2, err = findBinary("saslpasswd2", "/usr/sbin", "/usr/local/sbin"); err != nil {
		errs = append(errs, fmt.Errorf("%w (install sasl2-bin)", err))
	}
	b.unshare, _ = findBinary("unshare", "/usr/bin", "/bin")
	b.mount, _ = findBinary("mount", "/usr/bin", "/bin")
	return b, errors.Join(errs...)
}

func normalizeCyrusOptions(o CyrusOptions) (CyrusOptions, error) {
	if len(o.Users) == 0 {
		return o, errors.New("CyrusOptions.Users must name at least one user")
	}
	check := func(name, pass string) error {
		if err := checkLogin(name, pass); err != nil {
			return err
		}
		if strings.ContainsAny(name, ".@") || name != strings.ToLower(name) {
			return fmt.Errorf("user name %q: Cyrus needs lower case without '.' or '@'", name)
		}
		return nil
	}
	if err := checkAccounts(o.Users, "AdminUser", o.AdminUser, o.AdminPassword, check); err != nil {
		return o, err
	}
	var err error
	o.SpecialUse, err = specialUseOrDefault(o.SpecialUse)
	return o, err
}

// prepare creates the directories Cyrus expects (what Debian's
// cyrus-makedirs makes) and the sasldb, all owned by the cyrus user.
func (cy *Cyrus) prepare() error {
	var dirs []string
	for _, d := range []string{"db", "proc", "socket", "log", "msg", "user", "quota", "lock", "sieve"} {
		dirs = append(dirs, filepath.Join("conf", d))
	}
	dirs = append(dirs, "spool", "dev")
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(cy.Dir, d), 0o750); err != nil {
			return err
		}
	}
	if err := os.Chmod(cy.Dir, 0o755); err != nil {
		return err
	}
	sasldb := filepath.Join(cy.Dir, "sasldb2")
	logins := cy.opts.Users
	if cy.opts.AdminUser != "" {
		logins = map[string]string{cy.opts.AdminUser: cy.opts.AdminPassword}
		for k, v := range cy.opts.Users {
			logins[k] = v
		}
	}
	for _, name := range sortedKeys(logins) {
		// -p reads the password from stdin; the realm must be the
		// servername, which is what imapd looks users up in.
		cmd := exec.Command(cy.bins.saslpasswd2, "-f", sasldb, "-p", "-c", "-u", cy.servername, name)
		cmd.Stdin = strings.NewReader(logins[name])
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("saslpasswd2 %s: %w: %s", name, err, out)
		}
	}
	// Everything below Dir, Dir itself excepted, belongs to cyrus.
	return filepath.WalkDir(cy.Dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil || p == cy.Dir {
			return err
		}
		return os.Lchown(p, cy.uid, cy.gid)
	})
}

// imapdConf renders imapd.conf.
func (cy *Cyrus) imapdConf() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	dir := cy.Dir
	p("# Generated by imaptest for one test. Includes nothing from /etc/imapd.conf.")
	p("configdirectory: %s", filepath.Join(dir, "conf"))
	p("defaultpartition: default")
	p("partition-default: %s", filepath.Join(dir, "spool"))
	p("sievedir: %s", filepath.Join(dir, "conf", "sieve"))
	p("servername: %s", cy.servername)
	p("syslog_prefix: %s", cy.servername)
	if cy.opts.AdminUser != "" {
		p("admins: %s", cy.opts.AdminUser)
	}
	// "." separator and the "INBOX." personal namespace.
	p("unixhierarchysep: no")
	p("altnamespace: no")
	p("allowplaintext: yes")
	p("sasl_pwcheck_method: auxprop")
	p("sasl_auxprop_plugin: sasldb")
	p("sasl_sasldb_path: %s", filepath.Join(dir, "sasldb2"))
	p("sasl_mech_list: PLAIN LOGIN")
	p("failedloginpause: 0") // tests of failing logins need not wait 3 s each
	// A user's INBOX is created, without quota, at first login.
	p("autocreate_quota: 0")
	// The default (yes) turns every 8-bit byte in a header into 'X'.
	p("munge8bit: no")
	return b.String()
}

// cyrusConf renders cyrus.conf: database recovery at start (as Debian's
// does) and one imap service on port.
func (cy *Cyrus) cyrusConf(port int) string {
	return fmt.Sprintf(`# Generated by imaptest for one test.
START {
  recover cmd="%s -C %s -r"
}
SERVICES {
  imap cmd="%s -C %s" listen="127.0.0.1:%d" prefork=1
}
EVENTS {
}
`, cy.bins.ctlCyrusdb, cy.ConfigPath, cy.bins.imapd, cy.ConfigPath, port)
}

// cyrusWrapper runs master. $1 is the private /dev to build ("" for
// none), $2 the syslog socket, the rest the master command line. The
// watchdog holds the test's pipe on fd 3: at its end it stops master's
// process group (a group ID is never reused while the watchdog is in it).
const cyrusWrapper = `dev=$1 sock=$2; shift 2
# A private /dev whose log is the test's socket, plus the few devices Cyrus
# and SASL open. The mounts stay in this mount namespace.
privdev() {
  mount -t tmpfs -o mode=755 imaptest "$dev" && ln -s "$sock" "$dev/log" || return 1
  for n in null zero full random urandom tty; do
    [ -e "/dev/$n" ] || continue
    touch "$dev/$n" && mount --bind "/dev/$n" "$dev/$n" || return 1
  done
  ln -s /proc/self/fd "$dev/fd" && mkdir -m 1777 "$dev/shm" && mount --rbind "$dev" /dev
}
if [ -n "$dev" ] && ! privdev; then
  echo "imaptest: no private /dev/log, Cyrus's syslog is not captured" >&2
fi
exec 3<&0
( read -r _ <&3; kill -TERM $$ ) &
exec "$@" </dev/null 3<&-
`

// startOnce writes the config for a fresh port, starts master and waits for
// its greeting. On failure master is stopped again.
func (cy *Cyrus) startOnce() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	if err := os.WriteFile(cy.ConfigPath, []byte(cy.imapdConf()), 0o644); err != nil {
		return fmt.Errorf("write imapd.conf: %w", err)
	}
	cyrusConf := filepath.Join(cy.Dir, "cyrus.conf")
	if err := os.WriteFile(cyrusConf, []byte(cy.cyrusConf(port)), 0o644); err != nil {
		return fmt.Errorf("write cyrus.conf: %w", err)
	}
	// Only this attempt's logs, so that a bind failure is recognised.
	if err := os.Remove(filepath.Join(cy.Dir, "cyrus.out")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Truncate(filepath.Join(cy.Dir, "cyrus.log"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	out, err := os.OpenFile(filepath.Join(cy.Dir, "cyrus.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open output file: %w", err)
	}
	defer out.Close() // the child has its own copy

	dev, sock := "", filepath.Join(cy.Dir, "syslog.sock")
	if cy.captureSyslog() {
		dev = filepath.Join(cy.Dir, "dev")
	}
	args := []string{"/bin/sh", "-c", cyrusWrapper, "sh", dev, sock,
		cy.bins.master, "-C", cy.ConfigPath, "-M", cyrusConf, "-D", "-p", filepath.Join(cy.Dir, "conf", "master.pid")}
	if dev != "" {
		args = append([]string{cy.bins.unshare, "--mount", "--propagation", "private"}, args...)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = cy.Dir
	cmd.Stdin = r
	cmd.Stdout = out
	cmd.Stderr = out
	setProcAttr(cmd)
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return fmt.Errorf("run %s: %w", args[0], err)
	}
	proc := &cyrusProcess{cmd: cmd, watchdog: w, done: make(chan struct{})}
	go func() {
		proc.err = cmd.Wait()
		close(proc.done)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := cy.waitGreeting(addr, proc); err != nil {
		return errors.Join(err, proc.stop())
	}
	cy.Port = port
	cy.proc = proc
	return nil
}

// waitGreeting waits until addr greets with this instance's servername.
// Another greeting, or master saying it cannot bind, means someone else
// took the port.
func (cy *Cyrus) waitGreeting(addr string, proc *cyrusProcess) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-proc.done:
			return fmt.Errorf("cyrus master exited before greeting: %v", proc.err)
		default:
		}
		lastErr = readGreeting(addr, " "+cy.servername+" ", deadline)
		if lastErr == nil {
			return nil
		}
		// readGreeting's words for someone else's greeting; master's for a
		// port it could not have.
		if strings.Contains(lastErr.Error(), "unexpected greeting") || strings.Contains(cy.logTail(), "unable to bind") {
			return fmt.Errorf("cyrus could not have %s: %w: %v", addr, errPortInUse, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no IMAP greeting on %s within %v: %w", addr, startTimeout, lastErr)
}

// stop closes the watchdog's pipe, which stops master and its children,
// and kills whatever is left after stopTimeout.
func (p *cyrusProcess) stop() error {
	p.watchdog.Close()
	select {
	case <-p.done:
		killGroup(p.cmd) // leftover children, if any
		return nil
	case <-time.After(stopTimeout):
	}
	killGroup(p.cmd)
	<-p.done
	return fmt.Errorf("cyrus master did not stop within %v; killed", stopTimeout)
}

// nsOK caches whether this process may make mount namespaces.
var (
	nsOnce sync.Once
	nsOK   bool
)

// captureSyslog reports whether master can get a private /dev/log, and
// if so listens on the socket it will point to.
func (cy *Cyrus) captureSyslog() bool {
	if cy.bins.unshare == "" || cy.bins.mount == "" {
		return false
	}
	nsOnce.Do(func() {
		nsOK = exec.Command(cy.bins.unshare, "--mount", "--propagation", "private", "true").Run() == nil
	})
	if !nsOK {
		return false
	}
	if cy.syslog != nil {
		return true
	}
	sock := filepath.Join(cy.Dir, "syslog.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return false
	}
	logFile, err := os.OpenFile(filepath.Join(cy.Dir, "cyrus.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil || os.Chmod(sock, 0o666) != nil { // Cyrus runs as cyrus
		conn.Close()
		if logFile != nil {
			logFile.Close()
		}
		return false
	}
	cy.syslog, cy.syslogDone = conn, make(chan struct{})
	go func() {
		defer close(cy.syslogDone)
		defer logFile.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			// "<pri>Mmm dd hh:mm:ss tag[pid]: text": drop the priority.
			line := buf[:n]
			if i := bytes.IndexByte(line, '>'); line[0] == '<' && i > 0 {
				line = line[i+1:]
			}
			logFile.Write(append(bytes.TrimRight(line, "\n"), '\n'))
		}
	}()
	return true
}

func (cy *Cyrus) stopSyslog() {
	if cy.syslog != nil {
		cy.syslog.Close()
		<-cy.syslogDone
		cy.syslog = nil
	}
}

// logTail returns the end of Cyrus's syslog and of master's stdout/stderr.
func (cy *Cyrus) logTail() string {
	var b strings.Builder
	for _, name := range []string{"cyrus.out", "cyrus.log"} {
		data, err := tail(filepath.Join(cy.Dir, name), logTailBytes)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, bytes.TrimRight(data, "\n"))
	}
	if b.Len() == 0 {
		return "(no output from cyrus)\n"
	}
	return b.String()
}

// setUpUsers logs in as every user once, which creates the INBOX
// (autocreate_quota), and creates and subscribes the special-use mailboxes.
func (cy *Cyrus) setUpUsers(tb testing.TB) {
	tb.Helper()
	for _, u := range sortedKeys(cy.opts.Users) {
		cy.session(tb, u, func(c *imapclient.Client) error {
			for _, name := range sortedKeys(cy.opts.SpecialUse) {
				mbox := cyrusPrefix + name
				use := &goimap.CreateOptions{SpecialUse: []goimap.MailboxAttr{goimap.MailboxAttr(cy.opts.SpecialUse[name])}}
				if err := c.Create(mbox, use).Wait(); err != nil {
					return fmt.Errorf("create %q with %s: %w", mbox, cy.opts.SpecialUse[name], err)
				}
				if err := c.Subscribe(mbox).Wait(); err != nil {
					return fmt.Errorf("subscribe %q: %w", mbox, err)
				}
			}
			return nil
		})
	}
}

// session runs fn on a fresh connection logged in as user, and fails the
// test if it fails.
func (cy *Cyrus) session(tb testing.TB, user string, fn func(c *imapclient.Client) error) {
	tb.Helper()
	if err := cy.trySession(user, fn); err != nil {
		tb.Fatalf("imaptest: cyrus %s as %s: %v", cy.Addr(), user, err)
	}
}

func (cy *Cyrus) trySession(user string, fn func(c *imapclient.Client) error) error {
	pass, ok := cy.opts.Users[user]
	if !ok {
		return fmt.Errorf("no user %q", user)
	}
	conn, err := net.DialTimeout("tcp", cy.Addr(), 10*time.Second)
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(time.Now().Add(cyrusIMAPTimeout)); err != nil {
		conn.Close()
		return err
	}
	c := imapclient.New(&literal8Conn{Conn: conn, r: literal.Literal8Reader(bufio.NewReader(conn))}, nil)
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := fn(c); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// literal8Conn reads Cyrus's responses with each literal8 announcement
// ("~{n}", which Cyrus sends for BODY[] of a message holding NUL bytes)
// as a literal's, which go-imap can parse; the literal itself passes
// untouched.
type literal8Conn struct {
	net.Conn
	r io.Reader
}

func (l *literal8Conn) Read(p []byte) (int, error) { return l.r.Read(p) }

// Mailboxes lists the user's mailboxes, sorted, as Cyrus names them (UTF-8,
// full names: "INBOX", "INBOX.Sent", "INBOX.Projects.2026"). Cyrus makes
// the missing parents of a new mailbox real, selectable mailboxes, so
// "INBOX.Projects" is listed too.
func (cy *Cyrus) Mailboxes(tb testing.TB, user string) []string {
	tb.Helper()
	return cy.list(tb, user, nil)
}

// Subscriptions lists the user's subscribed mailboxes, sorted.
func (cy *Cyrus) Subscriptions(tb testing.TB, user string) []string {
	tb.Helper()
	return cy.list(tb, user, &goimap.ListOptions{SelectSubscribed: true})
}

func (cy *Cyrus) list(tb testing.TB, user string, opts *goimap.ListOptions) []string {
	tb.Helper()
	var out []string
	cy.session(tb, user, func(c *imapclient.Client) error {
		l, err := c.List("", "*", opts).Collect()
		for _, m := range l {
			if !slices.Contains(m.Attrs, goimap.MailboxAttrNonExistent) {
				out = append(out, m.Mailbox)
			}
		}
		return err
	})
	slices.Sort(out)
	return out
}

// SpecialUse maps each of the user's mailboxes that has a special-use
// attribute to that attribute (`\Sent`).
func (cy *Cyrus) SpecialUse(tb testing.TB, user string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	cy.session(tb, user, func(c *imapclient.Client) error {
		l, err := c.List("", "*", &goimap.ListOptions{ReturnSpecialUse: true}).Collect()
		for _, m := range l {
			for _, a := range m.Attrs {
				for _, role := range []goimap.MailboxAttr{goimap.MailboxAttrAll, goimap.MailboxAttrArchive, goimap.MailboxAttrDrafts,
					goimap.MailboxAttrFlagged, goimap.MailboxAttrJunk, goimap.MailboxAttrSent, goimap.MailboxAttrTrash} {
					if strings.EqualFold(string(a), string(role)) {
						out[m.Mailbox] = string(role)
					}
				}
			}
		}
		return err
	})
	return out
}

// CreateMailbox creates the mailbox (full Cyrus name) and, as Cyrus does,
// its missing parents, without subscribing. It does nothing if the mailbox
// exists.
func (cy *Cyrus) CreateMailbox(tb testing.TB, user, name string) {
	tb.Helper()
	cy.session(tb, user, func(c *imapclient.Client) error { return cy.create(c, name) })
}

func (cy *Cyrus) create(c *imapclient.Client, name string) error {
	if strings.EqualFold(name, "INBOX") {
		return nil // created at the first login
	}
	// The name is a pattern to LIST ('*' and '%' are wildcards): look for
	// the exact one.
	l, err := c.List("", name, nil).Collect()
	if err != nil {
		return err
	}
	for _, m := range l {
		if m.Mailbox == name {
			return nil
		}
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		return fmt.Errorf("create %q: %w", name, err)
	}
	return nil
}

// Seed APPENDs msgs to the user's mailbox (full Cyrus name), creating it if
// needed, so that their UIDs ascend in slice order after any existing
// messages. The APPENDs are pipelined on one connection.
//
// Cyrus stores the bytes as given, but refuses (and the test fails) a
// message with a bare LF or a NUL, an empty one, and one whose header has a
// line that is not a field. InternalDate is kept to the second; zero means
// now.
func (cy *Cyrus) Seed(tb testing.TB, user, mailbox string, msgs []SeedMessage) {
	tb.Helper()
	cy.session(tb, user, func(c *imapclient.Client) error {
		if err := cy.create(c, mailbox); err != nil {
			return err
		}
		before, err := messageCount(c, mailbox)
		if err != nil {
			return err
		}
		cmds := make([]*imapclient.AppendCommand, 0, len(msgs))
		for _, m := range msgs {
			opts := &goimap.AppendOptions{Time: m.InternalDate}
			for _, f := range m.Flags {
				opts.Flags = append(opts.Flags, goimap.Flag(f))
			}
			cmd := c.Append(mailbox, int64(len(m.Raw)), opts)
			_, werr := cmd.Write(m.Raw)
			if err := errors.Join(werr, cmd.Close()); err != nil {
				return fmt.Errorf("append message %d: %w", len(cmds), err)
			}
			cmds = append(cmds, cmd)
		}
		for i, cmd := range cmds {
			if _, err := cmd.Wait(); err != nil {
				return fmt.Errorf("append message %d to %q: %w", i, mailbox, err)
			}
		}
		after, err := messageCount(c, mailbox)
		if err == nil && after != before+len(msgs) {
			err = fmt.Errorf("seed %q: Cyrus has %d messages, want %d", mailbox, after, before+len(msgs))
		}
		return err
	})
}

func messageCount(c *imapclient.Client, mailbox string) (int, error) {
	st, err := c.Status(mailbox, &goimap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, fmt.Errorf("status %q: %w", mailbox, err)
	}
	return int(*st.NumMessages), nil
}

// UIDNext returns the mailbox's UIDNEXT: a run that appended nothing leaves
// it where it was.
func (cy *Cyrus) UIDNext(tb testing.TB, user, mailbox string) uint32 {
	tb.Helper()
	var next uint32
	cy.session(tb, user, func(c *imapclient.Client) error {
		st, err := c.Status(mailbox, &goimap.StatusOptions{UIDNext: true}).Wait()
		if err == nil {
			next = uint32(st.UIDNext)
		}
		return err
	})
	return next
}

// Messages lists every message in the user's mailbox (full Cyrus name),
// ordered by UID, as Cyrus serves it: BODY[], FLAGS (without \Recent),
// INTERNALDATE and RFC822.SIZE, fetched over IMAP with go-imap. Its
// SHA256 is therefore comparable with a Dovecot's. An empty mailbox gives
// nil; one that does not exist fails the test.
func (cy *Cyrus) Messages(tb testing.TB, user, mailbox string) []Message {
	tb.Helper()
	var msgs []Message
	cy.session(tb, user, func(c *imapclient.Client) error {
		sel, err := c.Select(mailbox, &goimap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return fmt.Errorf("examine %q: %w", mailbox, err)
		}
		if sel.NumMessages == 0 {
			return nil
		}
		var all goimap.UIDSet
		all.AddRange(1, 0)
		body := &goimap.FetchItemBodySection{Peek: true}
		bufs, err := c.Fetch(all, &goimap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*goimap.FetchItemBodySection{body}}).Collect()
		if err != nil {
			return fmt.Errorf("fetch %q: %w", mailbox, err)
		}
		for _, b := range bufs {
			raw := b.FindBodySection(body)
			if raw == nil {
				return fmt.Errorf("fetch %q: no BODY[] for UID %d", mailbox, b.UID)
			}
			m := Message{Mailbox: mailbox, UID: uint32(b.UID), InternalDate: b.InternalDate.UTC().Truncate(time.Second),
				Size: b.RFC822Size, MessageID: headerValue(raw, "Message-ID")}
			for _, f := range b.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					m.Flags = append(m.Flags, string(f))
				}
			}
			slices.Sort(m.Flags)
			sum := sha256.Sum256(raw)
			m.SHA256 = hex.EncodeToString(sum[:])
			// Cyrus serves what it stores, NUL bytes included (as
			// literal8, see literal8Conn); it refuses a bare LF.
			m.ExactSHA256 = m.SHA256
			msgs = append(msgs, m)
		}
		return nil
	})
	slices.SortFunc(msgs, func(a, b Message) int { return cmp.Compare(a.UID, b.UID) })
	return msgs
}

// Expunge removes the messages with these UIDs from the user's mailbox,
// behind the back of whoever put them there.
func (cy *Cyrus) Expunge(tb testing.TB, user, mailbox string, uids ...uint32) {
	tb.Helper()
	cy.selected(tb, user, mailbox, uids, func(c *imapclient.Client, set goimap.UIDSet) error {
		if err := c.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		return c.UIDExpunge(set).Close()
	})
}

// RemoveFlags removes flags from the messages with these UIDs.
func (cy *Cyrus) RemoveFlags(tb testing.TB, user, mailbox string, flags []string, uids ...uint32) {
	tb.Helper()
	fl := make([]goimap.Flag, 0, len(flags))
	for _, f := range flags {
		fl = append(fl, goimap.Flag(f))
	}
	cy.selected(tb, user, mailbox, uids, func(c *imapclient.Client, set goimap.UIDSet) error {
		return c.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsDel, Silent: true, Flags: fl}, nil).Close()
	})
}

func (cy *Cyrus) selected(tb testing.TB, user, mailbox string, uids []uint32, fn func(*imapclient.Client, goimap.UIDSet) error) {
	tb.Helper()
	var set goimap.UIDSet
	for _, u := range uids {
		set.AddNum(goimap.UID(u))
	}
	cy.session(tb, user, func(c *imapclient.Client) error {
		if _, err := c.Select(mailbox, nil).Wait(); err != nil {
			return fmt.Errorf("select %q: %w", mailbox, err)
		}
		if err := fn(c, set); err != nil {
			return fmt.Errorf("%q: %w", mailbox, err)
		}
		return nil
	})
}

// Log returns what Cyrus has logged so far (empty where it could not be
// captured; see the package comment), for tests that look for a message.
func (cy *Cyrus) Log() string {
	b, _ := os.ReadFile(filepath.Join(cy.Dir, "cyrus.log"))
	return string(b)
}
