package imaptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SeedMessage is one message to place directly in a user's maildir,
// bypassing IMAP.
type SeedMessage struct {
	Raw []byte // stored byte for byte: bare LF, CRLF, NUL and 8-bit are kept
	// Flags are system flags (`\Seen`, `\Answered`, `\Flagged`, `\Deleted`,
	// `\Draft`) and keywords ("$Forwarded", "Custom1"). At most 26 distinct
	// keywords per mailbox (a maildir limit).
	Flags []string
	// InternalDate becomes the file's mtime, which is Dovecot's INTERNALDATE
	// for maildir; zero means now. Dovecot keeps whole seconds and no zone.
	InternalDate time.Time
}

// maildirFlag returns the maildir info letter of an IMAP system flag.
func maildirFlag(flag string) (byte, bool) {
	switch strings.ToLower(flag) {
	case `\draft`:
		return 'D', true
	case `\flagged`:
		return 'F', true
	case `\answered`:
		return 'R', true
	case `\seen`:
		return 'S', true
	case `\deleted`:
		return 'T', true
	}
	return 0, false
}

// maxKeywords is the number of keyword letters (a-z) maildir file names have.
const maxKeywords = 26

// Seed stores msgs in the user's mailbox, creating the mailbox if needed, so
// that their UIDs ascend in slice order after any existing messages.
//
// It writes maildir files directly, the least work there is: doveadm save
// runs one process per message, and doveadm import needs the messages in a
// mail store already and then copies them (with an fsync each unless told
// otherwise). Each message goes to tmp/, gets its mtime, and is renamed into
// cur/ with its flags in the ":2," suffix; keywords are letters registered
// in the mailbox's dovecot-keywords file. File names start with one timestamp and a rising ".M<n>" part,
// which is the order Dovecot sorts new files in when it assigns UIDs. A
// doveadm mailbox status then makes Dovecot sync, assign the UIDs and index
// the messages, and Seed checks the message count. Nothing else may use the
// mailbox while Seed runs.
func (d *Dovecot) Seed(tb testing.TB, user, mailbox string, msgs []SeedMessage) {
	tb.Helper()
	d.CreateMailbox(tb, user, mailbox)
	before := d.messageCount(tb, user, mailbox)
	if len(msgs) == 0 {
		return
	}
	maildir := strings.TrimSpace(d.Doveadm(tb, "mailbox", "path", "-u", user, mailbox))
	d.fill(tb, user, mailbox, maildir, msgs)
	d.checkSeeded(tb, user, mailbox, before+len(msgs), -1)
}

// SeedAccount seeds several mailboxes of one user as Seed seeds each, with
// four doveadm runs for the account instead of six per mailbox: seeding
// 1,100 users of 13 mailboxes each one mailbox at a time took 15 minutes.
// A mailbox with no messages is only created.
func (d *Dovecot) SeedAccount(tb testing.TB, user string, boxes map[string][]SeedMessage) {
	tb.Helper()
	names := slices.Sorted(maps.Keys(boxes))
	if slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, seedSep) }) {
		for _, n := range names {
			d.Seed(tb, user, n, boxes[n])
		}
		return
	}
	before := d.messageCounts(tb, user)
	var create, fill []string
	for _, n := range names {
		_, ok := before[n]
		switch {
		case ok:
		case strings.EqualFold(n, "INBOX"):
			// INBOX cannot be created, only opened, which puts it on
			// disk; an account with no mailbox yet lists none.
			d.CreateMailbox(tb, user, n)
			before[n] = 0
		default:
			create = append(create, n)
		}
		if len(boxes[n]) > 0 {
			fill = append(fill, n)
		}
	}
	if len(create) > 0 {
		d.Doveadm(tb, append([]string{"mailbox", "create", "-u", user}, create...)...)
	}
	if len(fill) == 0 {
		return
	}
	// One doveadm batch gives every path: "path\tpath...\n/a\t/b...\n".
	args := []string{"-f", "tab", "batch", "-u", user}
	for _, n := range fill {
		args = append(args, seedSep, "mailbox", "path", n)
	}
	rows := strings.Split(strings.TrimRight(d.Doveadm(tb, args...), "\n"), "\n")
	var paths []string
	if len(rows) == 2 {
		paths = strings.Split(rows[1], "\t")
	}
	if len(paths) != len(fill) {
		tb.Fatalf("imaptest: seed %s: doveadm batch gave %q for %d mailbox paths", user, rows, len(fill))
	}
	for i, n := range fill {
		d.fill(tb, user, n, paths[i], boxes[n])
	}
	after := d.messageCounts(tb, user)
	for _, n := range fill {
		d.checkSeeded(tb, user, n, before[n]+len(boxes[n]), after[n])
	}
}

// seedSep separates SeedAccount's commands to doveadm batch.
const seedSep = ":"

// fill writes msgs into the maildir of user's mailbox, registering their
// keywords first.
func (d *Dovecot) fill(tb testing.TB, user, mailbox, maildir string, msgs []SeedMessage) {
	tb.Helper()
	var keywords []string
	for i, m := range msgs {
		for _, f := range m.Flags {
			if strings.HasPrefix(f, `\`) {
				if _, ok := maildirFlag(f); !ok {
					tb.Fatalf("imaptest: seed message %d: flag %s cannot be stored", i, f)
				}
			} else if !validKeyword(f) {
				tb.Fatalf("imaptest: seed message %d: invalid keyword %q", i, f)
			} else if !slices.Contains(keywords, f) {
				keywords = append(keywords, f)
			}
		}
	}
	// imaptest's Dovecots keep control files (dovecot-keywords) beside the
	// messages: their mail_location sets no CONTROL.
	letters, err := d.registerKeywords(filepath.Join(maildir, "dovecot-keywords"), keywords)
	if err == nil {
		err = d.writeMaildir(maildir, msgs, letters)
	}
	if err != nil {
		tb.Fatalf("imaptest: seed %s/%s: %v", user, mailbox, err)
	}
}

// checkSeeded checks that Dovecot sees want messages in the mailbox; got
// is the count already read, or -1 to read it.
func (d *Dovecot) checkSeeded(tb testing.TB, user, mailbox string, want, got int) {
	tb.Helper()
	if got < 0 {
		got = d.messageCount(tb, user, mailbox)
	}
	if got != want {
		// A normal sync trusts directory mtimes; force a full rescan once.
		d.Doveadm(tb, "force-resync", "-u", user, mailbox)
		if got = d.messageCount(tb, user, mailbox); got != want {
			tb.Fatalf("imaptest: seed %s/%s: Dovecot sees %d messages, want %d", user, mailbox, got, want)
		}
	}
}

// validKeyword reports whether k is an IMAP atom Dovecot accepts as keyword.
func validKeyword(k string) bool {
	return k != "" && !strings.ContainsFunc(k, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]`, r)
	})
}

// messageCount syncs the mailbox and returns its number of messages.
func (d *Dovecot) messageCount(tb testing.TB, user, mailbox string) int {
	tb.Helper()
	st, ok := d.mailboxStatus(tb, user, mailbox, "messages")
	if !ok {
		tb.Fatalf("imaptest: mailbox %q of %s does not exist", mailbox, user)
	}
	n, err := strconv.Atoi(st["messages"])
	if err != nil {
		tb.Fatalf("imaptest: messages of %s/%s: %v", user, mailbox, err)
	}
	return n
}

// registerKeywords adds keywords to the maildir keywords file (lines
// "<index> <name>", index 0-25 standing for letters a-z in file names) and
// returns the letter of each keyword.
func (d *Dovecot) registerKeywords(file string, keywords []string) (map[string]byte, error) {
	byIndex := map[int]string{}
	letters := map[string]byte{}
	f, err := os.Open(file)
	switch {
	case err == nil:
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			idx, name, ok := strings.Cut(sc.Text(), " ")
			n, err := strconv.Atoi(idx)
			if !ok || err != nil || n < 0 || n >= maxKeywords || name == "" {
				continue // Dovecot ignores such lines too
			}
			byIndex[n] = name
			letters[name] = byte('a' + n)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, err
	}

	var oldMtime time.Time
	if fi, err := os.Stat(file); err == nil {
		oldMtime = fi.ModTime()
	}
	changed := false
	for _, k := range keywords {
		if _, ok := letters[k]; ok {
			continue
		}
		n := 0
		for ; n < maxKeywords && byIndex[n] != ""; n++ {
		}
		if n == maxKeywords {
			return nil, fmt.Errorf("more than %d keywords in one mailbox", maxKeywords)
		}
		byIndex[n] = k
		letters[k] = byte('a' + n)
		changed = true
	}
	if !changed {
		return letters, nil
	}

	var b strings.Builder
	for n := range maxKeywords {
		if name := byIndex[n]; name != "" {
			fmt.Fprintf(&b, "%d %s\n", n, name)
		}
	}
	tmp := file + ".imaptest"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write keywords: %w", err)
	}
	// Dovecot rereads the file only when its mtime (in seconds) changes.
	mtime := time.Now()
	if !mtime.After(oldMtime.Add(time.Second)) {
		mtime = oldMtime.Add(time.Second)
	}
	if err := errors.Join(d.chown(tmp), os.Chtimes(tmp, mtime, mtime)); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, fmt.Errorf("install keywords: %w", err)
	}
	return letters, nil
}

// writeMaildir stores msgs as new files in maildir/cur.
func (d *Dovecot) writeMaildir(maildir string, msgs []SeedMessage, letters map[string]byte) error {
	// "<secs>.M<n>Q<batch>.imaptest": Dovecot orders new files by seconds,
	// then by the number after M; Q keeps names of separate Seeds unique.
	secs := time.Now().Unix()
	batch := d.seedSeq.Add(1)
	now := time.Now()
	var info []byte
	for i, m := range msgs {
		info = info[:0]
		for _, f := range m.Flags {
			if c, ok := maildirFlag(f); ok {
				info = append(info, c)
			} else {
				info = append(info, letters[f])
			}
		}
		slices.Sort(info)
		info = slices.Compact(info)
		// S= and W= give the physical and virtual (CRLF) sizes, which saves
		// Dovecot reading the file to compute them.
		virtual := len(m.Raw) + bareLFs(m.Raw)
		name := fmt.Sprintf("%d.M%dQ%d.imaptest,S=%d,W=%d:2,%s", secs, i, batch, len(m.Raw), virtual, info)

		tmp := filepath.Join(maildir, "tmp", name)
		if err := os.WriteFile(tmp, m.Raw, 0o600); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		date := m.InternalDate
		if date.IsZero() {
			date = now
		}
		if err := errors.Join(d.chown(tmp), os.Chtimes(tmp, date, date)); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if err := os.Rename(tmp, filepath.Join(maildir, "cur", name)); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

// bareLFs counts the LFs not preceded by CR: what IMAP adds a CR to.
func bareLFs(b []byte) int {
	n := 0
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			n++
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return n
}

// WriteText appends lines of width random lowercase letters, each ended by
// CRLF, until b holds at least size bytes: filler text for test messages
// that no server will want to rewrite.
func WriteText(b *bytes.Buffer, rng *rand.Rand, size, width int) {
	line := make([]byte, width)
	for b.Len() < size {
		for j := range line {
			line[j] = byte('a' + rng.IntN(26))
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
}
