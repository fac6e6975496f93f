package main

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// config says what to run.
type config struct {
	mailferry string // the mailferry binary
	imapsync  string // imapsync's script, "" to leave it out
	reps      int
	cases     string // the cases to run, letters as below; "" for all
	profile   string // a directory for mailferry's CPU and block profiles of (f) and (g), "" for none
}

// wants reports whether case c is to run.
func (c config) wants(cs string) bool { return c.cases == "" || strings.Contains(c.cases, cs) }

// The fleets of many ordinary users: (f) and (g).
var (
	fleetF = fleet{prefix: "lab", users: 100, msg: 60, par: 8}
	fleetG = fleet{prefix: "wave", users: 1100, msg: 20, par: 16}
)

// runPeers times mailferry against its peers in one run, on the same
// machine and data, each onto fresh destinations:
//
//	(a) one user with 5,000 messages (about 150 MB) in four mailboxes
//	(b) 20 users with 500 messages each, 4 at a time
//	(c) a re-run of (a) with nothing new
//	(d) doveadm import of (a): the destination server's own ingest rate
//	(e) one user with a single 25 MB message, for peak memory
//	(f) 100 users with 60 messages in 13 mailboxes each, 8 at once, and
//	    its re-run with nothing new
//	(g) 1,100 users with 20 messages in 13 mailboxes each, 16 at once, and
//	    its re-run; mailferry also at --concurrency 32, for peak memory
//	(s) the destination server's CPU per account by command sequence:
//	    mbsync's, mailferry's, the least any client can send (floor.go)
//
// Each case runs cfg.reps times; the table gives the median with min and
// max, and each tool's correctness, checked with doveadm.
func runPeers(tb testing.TB, cfg config) string {
	users := map[string]string{"bench1": "pw-bench1", "big": "pw-big"}
	for i := range 20 {
		users[fmt.Sprintf("u%02d", i)] = fmt.Sprintf("pw-u%02d", i)
	}
	fleets := map[string]fleet{}
	for c, f := range map[string]fleet{"f": fleetF, "g": fleetG} {
		if cfg.wants(c) {
			fleets[c] = f
			f.logins(users)
		}
	}
	tb.Logf("starting the source Dovecot and seeding it")
	src := imaptest.StartDovecot(tb, imaptest.DovecotOptions{Users: users, MaxUserIPConnections: 200})
	fleetBytes := map[string]int64{}
	for c, f := range fleets {
		fleetBytes[c] = f.seed(tb, src)
	}
	var total, smallTotal int64
	var bigRaw []byte
	single := cfg.wants("a") || cfg.wants("b") || cfg.wants("c") || cfg.wants("d") || cfg.wants("e")
	if single {
		for _, mb := range []struct {
			name string
			n    int
		}{{"INBOX", 3000}, {"Sent", 1000}, {"Archive/2023", 800}, {"Lists/go-dev", 200}} {
			msgs, size := peerMessages(mb.name, mb.n, uint64(len(mb.name)), 0.05)
			src.Seed(tb, "bench1", mb.name, msgs)
			total += size
		}
		for i := range 20 {
			msgs, size := peerMessages("INBOX", 500, uint64(100+i), 0.05)
			src.Seed(tb, fmt.Sprintf("u%02d", i), "INBOX", msgs)
			smallTotal += size
		}
		big := make([]byte, 25<<20)
		for i := range big {
			big[i] = byte('A' + i%26)
		}
		bigRaw = append([]byte("From: a@example.org\r\nSubject: 25 MB\r\nMessage-ID: <big@example.org>\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
			wrap76(base64.StdEncoding.EncodeToString(big[:18<<20]))...)
		src.Seed(tb, "big", "INBOX", []imaptest.SeedMessage{{Raw: bigRaw, InternalDate: time.Now()}})
	}
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			tb.Fatalf("profile directory: %v", err)
		}
	}
	h := &peerHarness{tb: tb, src: src, users: users, dir: tb.TempDir(), mailferry: cfg.mailferry, profile: cfg.profile}
	tools := []peerTool{mailferryTool{}, mbsyncTool{}}
	if cfg.imapsync != "" {
		tools = append(tools, imapsyncTool{path: cfg.imapsync})
	}
	var rows []peerRow
	for _, tool := range tools {
		for _, c := range []string{"f", "g"} {
			f, ok := fleets[c]
			if !ok {
				continue
			}
			tb.Logf("%s: (%s) %s", tool.name(), c, f)
			full := h.repeat(cfg.reps, func() peerRun { return h.batchOf(tool, c, f.names(), f.par, nil) })
			full.what, full.tool, full.messages, full.bytes = fmt.Sprintf("(%s) %s", c, f), tool.name(), f.users*f.msg, fleetBytes[c]
			rows = append(rows, full)
			again := h.repeat(cfg.reps, func() peerRun { return h.batchRun(tool, c, f.names(), f.par, nil, true) })
			again.what, again.tool, again.messages = fmt.Sprintf("(%s) re-run, nothing new", c), tool.name(), f.users*f.msg
			rows = append(rows, again)
			if _, ok := tool.(mailferryTool); ok && c == "g" {
				wide := h.repeat(1, func() peerRun { return h.batchOf(tool, "g32", f.names(), 32, nil) })
				wide.what, wide.tool, wide.messages, wide.bytes = "(g) at --concurrency 32", tool.name(), f.users*f.msg, fleetBytes[c]
				rows = append(rows, wide)
			}
		}
		if !single {
			continue
		}
		tb.Logf("%s: (a) one user, 5,000 messages", tool.name())
		a := h.repeat(cfg.reps, func() peerRun { return h.single(tool, "bench1") })
		a.what, a.tool, a.messages, a.bytes = "(a) 1 user, 5,000 msgs", tool.name(), 5000, total
		rows = append(rows, a)
		tb.Logf("%s: (c) re-run", tool.name())
		c := h.repeat(cfg.reps, func() peerRun { return h.rerun(tool, "bench1") })
		c.what, c.tool, c.messages, c.bytes = "(c) re-run, nothing new", tool.name(), 5000, 0
		rows = append(rows, c)
		tb.Logf("%s: (b) 20 users, 4 at a time", tool.name())
		bb := h.repeat(cfg.reps, func() peerRun { return h.batch(tool, 20, 4) })
		bb.what, bb.tool, bb.messages, bb.bytes = "(b) 20 users x 500, 4 at once", tool.name(), 10000, smallTotal
		rows = append(rows, bb)
		tb.Logf("%s: (e) one message of 25 MB", tool.name())
		e := h.repeat(1, func() peerRun { return h.single(tool, "big") })
		e.what, e.tool, e.messages, e.bytes = "(e) 1 message of 25 MB", tool.name(), 1, int64(len(bigRaw))
		rows = append(rows, e)
	}
	if single {
		tb.Logf("doveadm import")
		d := h.repeat(cfg.reps, h.doveadmImport)
		d.what, d.tool, d.messages, d.bytes = "(d) doveadm import", "doveadm import", 5000, total
		rows = append(rows, d)
	}
	out := ""
	if len(rows) > 0 {
		out = peerTable(rows, total, smallTotal, cfg.reps)
	}
	if cfg.wants("s") {
		tb.Logf("(s) what an account costs the destination, by the commands sent")
		out += "\n" + runFloor(tb, 40, cfg.reps)
	}
	return out
}

// peerMessages makes n messages for a mailbox: log-uniform 2–32 KiB, a
// share with a 100 KiB–2 MiB attachment, about 1% identical copies and 1%
// without Message-ID, flags and keywords.
func peerMessages(mailbox string, n int, seed uint64, attachments float64) ([]imaptest.SeedMessage, int64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	var out []imaptest.SeedMessage
	var total int64
	date := time.Date(2023, 1, 1, 8, 0, 0, 0, time.UTC)
	for i := range n {
		if i > 0 && rng.Float64() < 0.01 {
			out = append(out, out[rng.IntN(len(out))]) // an identical copy
			total += int64(len(out[len(out)-1].Raw))
			continue
		}
		size := int(2048 * math.Pow(16, rng.Float64()))
		var b bytes.Buffer
		fmt.Fprintf(&b, "From: Sender %d <s%d@example.org>\r\nTo: user@example.com\r\nSubject: %s %d\r\nDate: %s\r\n",
			i%53, i%53, mailbox, i, date.Add(time.Duration(i)*time.Hour).Format(time.RFC1123Z))
		if rng.Float64() >= 0.01 {
			fmt.Fprintf(&b, "Message-ID: <%s.%d.%d@bench.example.org>\r\n", strings.ReplaceAll(mailbox, "/", "."), seed, i)
		}
		if rng.Float64() < attachments {
			att := make([]byte, int(100*1024*math.Pow(20, rng.Float64())))
			for j := range att {
				att[j] = byte(rng.Uint32())
			}
			b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
			b.Write(wrap76(base64.StdEncoding.EncodeToString(att)))
			b.WriteString("--b--\r\n")
		} else {
			b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
			imaptest.WriteText(&b, rng, size, 72)
		}
		var flags []string
		if rng.Float64() < 0.7 {
			flags = append(flags, `\Seen`)
		}
		if rng.Float64() < 0.1 {
			flags = append(flags, `\Answered`)
		}
		if rng.Float64() < 0.05 {
			flags = append(flags, `\Flagged`)
		}
		if rng.Float64() < 0.1 {
			flags = append(flags, []string{"$Forwarded", "$Label1", "Project-X"}[rng.IntN(3)])
		}
		out = append(out, imaptest.SeedMessage{Raw: b.Bytes(), Flags: flags, InternalDate: date.Add(time.Duration(i) * time.Minute)})
		total += int64(b.Len())
	}
	return out, total
}

func wrap76(s string) []byte {
	var b bytes.Buffer
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.Bytes()
}

// peerRun is one timed run of one tool.
type peerRun struct {
	wall    time.Duration
	rss     int64         // bytes, 0 if unknown
	cpu     time.Duration // the tool's user+system time, all its processes
	servers time.Duration // both Dovecots' CPU time during the run
	correct correctness
}

// procStat is what one process cost.
type procStat struct {
	wall, cpu time.Duration
	rss       int64
}

// serverCPU starts counting the CPU time the source and dst spend; the
// function it returns stops and gives the total.
func (h *peerHarness) serverCPU(dst *imaptest.Dovecot) func() time.Duration {
	before := h.src.CPU() + dst.CPU()
	return func() time.Duration { return h.src.CPU() + dst.CPU() - before }
}

// correctness compares a destination with the source, as doveadm sees both.
type correctness struct {
	missing, duplicates, flags, dates, altered int
	checked                                    bool
}

func (c correctness) String() string {
	if !c.checked {
		return "n/a"
	}
	if c == (correctness{checked: true}) {
		return "exact"
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{c.missing, "missing"}, {c.duplicates, "duplicates"}, {c.altered, "bytes altered"}, {c.flags, "flags/keywords lost"}, {c.dates, "dates differ"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

type peerRow struct {
	what, tool     string
	messages       int
	bytes          int64
	median, lo, hi time.Duration
	cpu, servers   time.Duration // of the median run
	rss            int64
	correct        correctness
	runs           int
}

type peerHarness struct {
	tb        testing.TB
	src       *imaptest.Dovecot
	users     map[string]string
	dir       string
	mailferry string
	profile   string // see config.profile
	n         int

	mu   sync.Mutex
	last map[string]lastRun // tool/user -> its last single run, for re-runs
}

type lastRun struct {
	dst   *imaptest.Dovecot
	state string
}

type peerTool interface {
	name() string
	// command returns the command line migrating user from src to dst;
	// state is a directory the tool may keep its state in (re-runs reuse it).
	command(h *peerHarness, dst *imaptest.Dovecot, user, state string) []string
}

func (h *peerHarness) fresh() *imaptest.Dovecot {
	return imaptest.StartDovecot(h.tb, imaptest.DovecotOptions{Users: h.users, MaxUserIPConnections: 200})
}

func (h *peerHarness) stateDir(tool, user string) string {
	h.n++
	d := filepath.Join(h.dir, fmt.Sprintf("%s-%s-%d", tool, user, h.n))
	os.MkdirAll(d, 0o700)
	return d
}

// run runs a command line, under /usr/bin/time for its peak RSS when the
// tool cannot report it itself.
func (h *peerHarness) run(argv []string, env []string) procStat {
	// One file per run: the peers run as several processes at once.
	tf, err := os.CreateTemp(h.dir, "time-*.out")
	if err != nil {
		h.tb.Fatal(err)
	}
	tf.Close()
	timeFile := tf.Name()
	defer os.Remove(timeFile)
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		argv = append([]string{"/usr/bin/time", "-f", "%M %U %S", "-o", timeFile}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	st := procStat{wall: time.Since(start)}
	if err != nil {
		h.tb.Logf("%s exited with %v; last output:\n%s", filepath.Base(argv[len(argv)-1]), err, tail(out.String(), 1500))
	}
	if b, err := os.ReadFile(timeFile); err == nil {
		// The last line: time prints "Command exited with…" before it.
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if f := strings.Fields(lines[len(lines)-1]); len(f) == 3 {
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			user, _ := strconv.ParseFloat(f[1], 64)
			sys, _ := strconv.ParseFloat(f[2], 64)
			st.rss, st.cpu = kb<<10, time.Duration((user+sys)*float64(time.Second))
		}
	}
	return st
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (h *peerHarness) single(tool peerTool, user string) peerRun {
	dst := h.fresh()
	state := h.stateDir(tool.name(), user)
	servers := h.serverCPU(dst)
	st := h.run(tool.command(h, dst, user, state), nil)
	srv := servers()
	h.mu.Lock()
	if h.last == nil {
		h.last = map[string]lastRun{}
	}
	h.last[tool.name()+"/"+user] = lastRun{dst, state}
	h.mu.Unlock()
	return peerRun{wall: st.wall, rss: st.rss, cpu: st.cpu, servers: srv, correct: h.compare(dst, user)}
}

func (h *peerHarness) rerun(tool peerTool, user string) peerRun {
	h.mu.Lock()
	last := h.last[tool.name()+"/"+user]
	h.mu.Unlock()
	servers := h.serverCPU(last.dst)
	st := h.run(tool.command(h, last.dst, user, last.state), nil)
	srv := servers()
	return peerRun{wall: st.wall, rss: st.rss, cpu: st.cpu, servers: srv, correct: h.compare(last.dst, user)}
}

// batch migrates n users, par at a time: mailferry as one batch run, the
// peers as par processes at once, as their manuals advise.
func (h *peerHarness) batch(tool peerTool, n, par int) peerRun {
	var users []string
	for i := range n {
		users = append(users, fmt.Sprintf("u%02d", i))
	}
	return h.batchOf(tool, "batch", users, par, nil)
}

// batchOf migrates users par at a time onto a fresh destination, or, with
// again, once more onto the destination of the last batchOf of the same
// tool and key, with the same state: the re-run with nothing new.
func (h *peerHarness) batchOf(tool peerTool, key string, users []string, par int, extra []string) peerRun {
	return h.batchRun(tool, key, users, par, extra, false)
}

func (h *peerHarness) batchRun(tool peerTool, key string, users []string, par int, extra []string, again bool) peerRun {
	h.mu.Lock()
	if h.last == nil {
		h.last = map[string]lastRun{}
	}
	last, seen := h.last[tool.name()+"/"+key]
	h.mu.Unlock()
	dst, state := last.dst, last.state
	if !again || !seen {
		dst, state = h.fresh(), h.stateDir(tool.name(), key)
		h.mu.Lock()
		h.last[tool.name()+"/"+key] = lastRun{dst, state}
		h.mu.Unlock()
	}
	var wall, cpu time.Duration
	var rss int64
	servers := h.serverCPU(dst)
	if mf, ok := tool.(mailferryTool); ok {
		if h.profile != "" {
			// The last of the repetitions is kept.
			name := filepath.Join(h.profile, key)
			if again {
				name += "-rerun"
			}
			extra = append(slices.Clip(extra), "--cpuprofile", name+".cpu", "--blockprofile", name+".block")
		}
		st := h.run(append(mf.batchCommand(h, dst, users, state, par), extra...), nil)
		wall, rss, cpu = st.wall, st.rss, st.cpu
	} else {
		start := time.Now()
		next := make(chan string, len(users))
		for _, u := range users {
			next <- u
		}
		close(next)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range par {
			wg.Go(func() {
				for u := range next {
					st := h.run(tool.command(h, dst, u, h.userState(state, u)), nil)
					mu.Lock()
					rss, cpu = max(rss, st.rss), cpu+st.cpu
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		wall = time.Since(start)
	}
	srv := servers()
	var c correctness
	for _, u := range users {
		x := h.compare(dst, u)
		c.missing += x.missing
		c.duplicates += x.duplicates
		c.flags += x.flags
		c.dates += x.dates
		c.altered += x.altered
		c.checked = true
	}
	return peerRun{wall: wall, rss: rss, cpu: cpu, servers: srv, correct: c}
}

// userState is the state directory of one user of a batch.
func (h *peerHarness) userState(batch, user string) string {
	d := filepath.Join(batch, user)
	os.MkdirAll(d, 0o700)
	return d
}

// doveadmImport is the destination server copying the source's maildir
// itself: no IMAP, no network; the ceiling for any IMAP tool.
func (h *peerHarness) doveadmImport() peerRun {
	dst := h.fresh()
	srcMail := filepath.Join(h.src.Dir, "mail", "bench1")
	servers := h.serverCPU(dst)
	st := h.run([]string{"doveadm", "-c", dst.ConfigPath, "-o", "maildir_copy_with_hardlinks=no", "import", "-u", "bench1",
		"maildir:" + srcMail + ":LAYOUT=fs", "", "all"}, nil)
	srv := servers()
	return peerRun{wall: st.wall, rss: st.rss, cpu: st.cpu, servers: srv, correct: h.compare(dst, "bench1")}
}

// compare checks every source mailbox of user against the destination.
func (h *peerHarness) compare(dst *imaptest.Dovecot, user string) correctness {
	c := correctness{checked: true}
	// One doveadm run per side and user: (g) has 14,300 mailboxes.
	dstAll := dst.AllMessages(h.tb, user)
	for mb, srcMsgs := range h.src.AllMessages(h.tb, user) {
		dstMsgs := dstAll[mb]
		bySHA := map[string][]imaptest.Message{}
		for _, d := range dstMsgs {
			bySHA[d.SHA256] = append(bySHA[d.SHA256], d)
		}
		var unmatched []imaptest.Message
		for _, s := range srcMsgs {
			cands := bySHA[s.SHA256]
			if len(cands) == 0 {
				unmatched = append(unmatched, s)
				continue
			}
			d := cands[0]
			bySHA[s.SHA256] = cands[1:]
			if !slices.Equal(lowerFlags(s.Flags), lowerFlags(d.Flags)) {
				c.flags++
			}
			if !s.InternalDate.Equal(d.InternalDate) {
				c.dates++
			}
		}
		// Destination messages left over are altered copies of unmatched
		// source messages, or duplicates.
		var rest []imaptest.Message
		for _, left := range bySHA {
			rest = append(rest, left...)
		}
		for _, s := range unmatched {
			// An altered copy: same Message-ID, or, without one, the same
			// internal date and nearly the same size (a header added).
			i := slices.IndexFunc(rest, func(d imaptest.Message) bool {
				if s.MessageID != "" {
					return d.MessageID == s.MessageID
				}
				return d.InternalDate.Equal(s.InternalDate) && d.Size >= s.Size && d.Size-s.Size < 200
			})
			if i < 0 {
				c.missing++
				continue
			}
			rest = slices.Delete(rest, i, i+1)
			c.altered++
		}
		c.duplicates += len(rest)
	}
	return c
}

func lowerFlags(f []string) []string {
	out := make([]string, len(f))
	for i, x := range f {
		out[i] = strings.ToLower(x)
	}
	sort.Strings(out)
	return out
}

func (h *peerHarness) repeat(n int, fn func() peerRun) peerRow {
	var runs []peerRun
	var row peerRow
	for range n {
		r := fn()
		runs = append(runs, r)
		row.rss = max(row.rss, r.rss)
		row.correct = r.correct // every run is checked; the last is shown
	}
	slices.SortFunc(runs, func(a, b peerRun) int { return cmp.Compare(a.wall, b.wall) })
	mid := runs[len(runs)/2]
	row.median, row.lo, row.hi, row.runs = mid.wall, runs[0].wall, runs[len(runs)-1].wall, n
	row.cpu, row.servers = mid.cpu, mid.servers
	return row
}

type mailferryTool struct{}

func (mailferryTool) name() string { return "mailferry" }

func (mailferryTool) command(h *peerHarness, dst *imaptest.Dovecot, user, state string) []string {
	return []string{"env", "MAILFERRY_FROM_PASSWORD=" + h.users[user], "MAILFERRY_TO_PASSWORD=" + h.users[user], h.mailferry, "migrate",
		"--from", "imap+plain://" + user + "@" + h.src.Addr(), "--to", "imap+plain://" + user + "@" + dst.Addr(),
		"--checkpoint", filepath.Join(state, "run.db"), "--output", "json", "--log-level", "error"}
}

func (mailferryTool) batchCommand(h *peerHarness, dst *imaptest.Dovecot, users []string, state string, par int) []string {
	var csv strings.Builder
	csv.WriteString("source_user,source_password,dest_user,dest_password\n")
	for _, u := range users {
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", u, h.users[u], u, h.users[u])
	}
	path := filepath.Join(state, "users.csv")
	os.WriteFile(path, []byte(csv.String()), 0o600)
	return []string{h.mailferry, "migrate", "--batch", path, "--from", "imap+plain://" + h.src.Addr(), "--to", "imap+plain://" + dst.Addr(),
		"--checkpoint", filepath.Join(state, "run.db"), "--concurrency", strconv.Itoa(par), "--output", "json", "--log-level", "error"}
}

type mbsyncTool struct{}

func (mbsyncTool) name() string { return "mbsync" }

func (mbsyncTool) command(h *peerHarness, dst *imaptest.Dovecot, user, state string) []string {
	account := func(name string, d *imaptest.Dovecot) string {
		return fmt.Sprintf("IMAPAccount %s\nHost %s\nPort %d\nUser %s\nPass %s\nSSLType None\nAuthMechs LOGIN\nPipelineDepth 50\n",
			name, d.Host, d.Port, user, h.users[user])
	}
	conf := account("src", h.src) + "\n" + account("dst", dst) + fmt.Sprintf(`
IMAPStore src
Account src

IMAPStore dst
Account dst

Channel c
Far :src:
Near :dst:
Patterns *
Create Near
Sync Pull
CopyArrivalDate yes
SyncState %s/
`, state)
	path := filepath.Join(state, "mbsyncrc")
	os.WriteFile(path, []byte(conf), 0o600)
	return []string{"mbsync", "-q", "-c", path, "c"}
}

type imapsyncTool struct{ path string }

func (imapsyncTool) name() string { return "imapsync" }

func (t imapsyncTool) command(h *peerHarness, dst *imaptest.Dovecot, user, state string) []string {
	return []string{"perl", t.path, "--host1", h.src.Host, "--port1", strconv.Itoa(h.src.Port), "--user1", user, "--password1", h.users[user],
		"--host2", dst.Host, "--port2", strconv.Itoa(dst.Port), "--user2", user, "--password2", h.users[user],
		"--nossl1", "--nossl2", "--notls1", "--notls2", "--noreleasecheck", "--nolog", "--tmpdir", state}
}

func peerTable(rows []peerRow, total, smallTotal int64, reps int) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Run %s on %s: %s, %d CPUs, Go %s; %s; %s.\n\n", time.Now().UTC().Format("2006-01-02"), host, cpuModel(), runtime.NumCPU(),
		runtime.Version(), firstLine("dovecot", "--version"), firstLine("mbsync", "--version"))
	if total > 0 {
		fmt.Fprintf(&b, "Data: (a) 5,000 messages, %.0f MB; (b) 10,000 messages, %.0f MB. ", float64(total)/1e6, float64(smallTotal)/1e6)
	}
	fmt.Fprintf(&b, "Times are the median of %d runs (min–max); CPU is that run's user+system time of the tool (all its processes) and of both Dovecots.\n\n", reps)
	b.WriteString("| case | tool | wall (min–max) | msg/s | MB/s | peak RSS | CPU: tool / servers | correctness |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		rate, mbs := "", ""
		if r.median > 0 && r.bytes > 0 {
			rate = fmt.Sprintf("%.0f", float64(r.messages)/r.median.Seconds())
			mbs = fmt.Sprintf("%.1f", float64(r.bytes)/1e6/r.median.Seconds())
		}
		rss := "n/a"
		if r.rss > 0 {
			rss = fmt.Sprintf("%.0f MiB", float64(r.rss)/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %s | %s (%s–%s) | %s | %s | %s | %s / %s | %s |\n", r.what, r.tool, r.median.Round(10*time.Millisecond),
			r.lo.Round(10*time.Millisecond), r.hi.Round(10*time.Millisecond), rate, mbs, rss,
			r.cpu.Round(10*time.Millisecond), r.servers.Round(10*time.Millisecond), r.correct)
	}
	return b.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func firstLine(cmd string, args ...string) string {
	out, err := exec.Command(cmd, args...).CombinedOutput()
	if err != nil {
		return cmd + " (version unknown)"
	}
	return cmd + " " + strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// replaceSection replaces the text between <!-- name:begin --> and
// <!-- name:end --> in a file.
func replaceSection(path, name, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s section", path, begin, end)
	}
	return os.WriteFile(path, []byte(s[:i+len(begin)]+"\n"+text+s[j:]), 0o644)
}
