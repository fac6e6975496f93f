package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// contents is what a checkpoint holds, read through the Store API.
type contents struct {
	from, to  string
	runs      []string
	accounts  map[string]ledger.Account
	mailboxes map[string]ledger.MailboxRecord
	dests     map[string]ledger.DestMailbox
	records   map[string]ledger.Record // account/mailbox/uidvalidity:uid
}

func readContents(t testing.TB, s *Store) contents {
	t.Helper()
	c := contents{accounts: map[string]ledger.Account{}, mailboxes: map[string]ledger.MailboxRecord{}, dests: map[string]ledger.DestMailbox{}, records: map[string]ledger.Record{}}
	var err error
	if c.from, c.to, err = s.Endpoints(); err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		c.runs = append(c.runs, fmt.Sprintf("%d %s %s %s", r.ID, r.Command, r.Version, r.Outcome))
	}
	err = s.Accounts(func(id string, a ledger.Account) error {
		c.accounts[id] = a
		if err := s.DestMailboxes(id, func(name string, d ledger.DestMailbox) error { c.dests[id+"/"+name] = d; return nil }); err != nil {
			return err
		}
		return s.Mailboxes(id, func(name string, m ledger.MailboxRecord) error {
			c.mailboxes[id+"/"+name] = m
			return s.Records(id, name, func(r ledger.Record) error {
				c.records[fmt.Sprintf("%s/%s/%d:%d", id, name, r.SrcValidity, r.SrcUID)] = r
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openContents(t testing.TB, path string) contents {
	t.Helper()
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return readContents(t, s)
}

func (c contents) equal(d contents) bool {
	accountsEqual := maps.EqualFunc(c.accounts, d.accounts, func(a, b ledger.Account) bool {
		return a.Source == b.Source && a.Dest == b.Dest && a.State == b.State && a.Reason == b.Reason && a.Run == b.Run && a.Updated.Equal(b.Updated)
	})
	mailboxesEqual := maps.EqualFunc(c.mailboxes, d.mailboxes, func(a, b ledger.MailboxRecord) bool { return reflect.DeepEqual(a, b) })
	destsEqual := maps.EqualFunc(c.dests, d.dests, func(a, b ledger.DestMailbox) bool { return a.UIDValidity == b.UIDValidity && a.UIDNext == b.UIDNext })
	return c.from == d.from && c.to == d.to && slices.Equal(c.runs, d.runs) && accountsEqual && mailboxesEqual && destsEqual && maps.Equal(c.records, d.records)
}

// TestCheckSaysWhatItHolds: the summary Check gives, from its own reading
// of the pages, agrees with what the Store API reads through bbolt.
func TestCheckSaysWhatItHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	midRun(t, path)
	c := openContents(t, path)
	rep, err := Check(path, Options{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("Check = %+v, %v", rep, err)
	}
	states, wayBack := map[string]int{}, 0
	for id, a := range c.accounts {
		if ledger.IsReverseAccount(id) {
			wayBack++
		} else {
			states[a.State]++
		}
	}
	statuses := map[string]int{}
	for _, r := range c.records {
		statuses[r.Status.String()]++
	}
	if rep.Schema != SchemaVersion || rep.From != c.from || rep.To != c.to || rep.Runs != len(c.runs) ||
		!maps.Equal(rep.Accounts, states) || rep.WayBack != wayBack || rep.Mailboxes != len(c.mailboxes) ||
		rep.DestMailboxes != len(c.dests) || !maps.Equal(rep.Records, statuses) || rep.Size == 0 || rep.FreePages == 0 {
		t.Errorf("Check says %+v; the Store reads %d runs, accounts %v (+%d way back), %d mailboxes, %d destinations, records %v",
			rep, len(c.runs), states, wayBack, len(c.mailboxes), len(c.dests), statuses)
	}
}

// TestSchema1FileOpens: a checkpoint written by the release before
// checksums (testdata/schema1.ckpt) still opens. A reader reads it as it
// is and writes nothing; a run upgrades it to schema 2 with every record
// the same, after backing up the old file, and carries on.
func TestSchema1FileOpens(t *testing.T) {
	orig, err := os.ReadFile("testdata/schema1.ckpt")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.db")
	os.WriteFile(path, orig, 0o600)

	c := openContents(t, path)
	const alice = "alice\x00alice@example.com"
	wantRecords := map[string]ledger.Record{}
	for _, r := range schema1Records() {
		if !slices.Contains(schema1Deleted, r.RecordKey) {
			wantRecords[fmt.Sprintf("%s/INBOX/%d:%d", alice, r.SrcValidity, r.SrcUID)] = r
		}
	}
	for _, r := range schema1Sent {
		wantRecords[fmt.Sprintf("%s/Sent/%d:%d", alice, r.SrcValidity, r.SrcUID)] = r
	}
	if c.from != schema1From || c.to != schema1To || len(c.runs) != 2 || !maps.Equal(c.records, wantRecords) {
		t.Errorf("read %s -> %s, runs %v, %d records; want %s -> %s, 2 runs, %d records as written",
			c.from, c.to, c.runs, len(c.records), schema1From, schema1To, len(wantRecords))
	}
	for id, want := range schema1Accounts {
		got := c.accounts[id]
		if got.Source != want.Source || got.State != want.State || got.Reason != want.Reason {
			t.Errorf("account %q = %+v, want %+v", id, got, want)
		}
	}
	for name, want := range schema1Dest {
		if got := c.dests[alice+"/"+name]; got.UIDValidity != want.UIDValidity || got.UIDNext != want.UIDNext {
			t.Errorf("destination mailbox %s = %+v, want %+v", name, got, want)
		}
	}
	if len(c.dests) != len(schema1Dest) {
		t.Errorf("%d destination mailboxes, want %d", len(c.dests), len(schema1Dest))
	}
	for name, want := range schema1Mailboxes {
		if got := c.mailboxes[alice+"/"+name]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("mailbox %s = %+v, want %+v", name, got, want)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, orig) || len(besides(t, path)) > 0 {
		t.Fatalf("reading a schema-1 file changed it or left %v", besides(t, path))
	}
	if rep, err := Check(path, Options{}); err != nil || rep.Schema != 1 || len(rep.Problems) > 0 {
		t.Errorf("Check = %+v, %v, want schema 1 and no problem", rep, err)
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("a run on a schema-1 file: %v", err)
	}
	if got := readContents(t, s); !got.equal(c) {
		t.Errorf("after the upgrade the checkpoint reads differently")
	}
	id, err := s.StartRun("migrate", "test")
	if err != nil || id != 3 {
		t.Errorf("StartRun after the upgrade = %d, %v; want run 3", id, err)
	}
	s.Close()
	if rep, err := Check(path, Options{}); err != nil || rep.Schema != SchemaVersion || len(rep.Problems) > 0 {
		t.Errorf("after the upgrade, Check = %+v, %v", rep, err)
	}
	backups := Backups(path)
	if len(backups) != 1 {
		t.Fatalf("backups %v, want the schema-1 file's", backups)
	}
	if got := openContents(t, backups[0]); !got.equal(c) {
		t.Errorf("the backup does not hold what the schema-1 file held")
	}
	if rep, _ := Check(backups[0], Options{}); rep == nil || rep.Schema != 1 {
		t.Errorf("the backup is not the schema-1 file: %+v", rep)
	}
}

// TestBackupsRollAndRestore: each run (writable Open) first backs up the
// checkpoint as it is; the newest few are kept; putting one back restores
// the state before that run.
func TestBackupsRollAndRestore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	for i := range 5 {
		s, err := Open(path, Options{Backups: 3})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutAccount(fmt.Sprint(i), ledger.Account{State: ledger.AccountCopied}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		time.Sleep(time.Millisecond) // backups are named to the microsecond
	}
	backups := Backups(path)
	if len(backups) != 3 {
		t.Fatalf("backups %v, want 3", backups)
	}
	// Runs 2..4 backed up the file holding the accounts of the runs before.
	for i, b := range backups {
		fi, err := os.Stat(b)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", b, err, fi.Mode())
		}
		rep, err := Check(b, Options{})
		if err != nil || len(rep.Problems) > 0 {
			t.Errorf("%s: %+v, %v", b, rep, err)
		}
		if n := len(openContents(t, b).accounts); n != i+2 {
			t.Errorf("%s holds %d accounts, want %d", b, n, i+2)
		}
	}
	newest, _ := os.ReadFile(backups[2])
	os.WriteFile(path, newest, 0o600)
	c := openContents(t, path)
	if _, ok := c.accounts["4"]; ok || len(c.accounts) != 4 {
		t.Errorf("restored the newest backup and read %d accounts, want the 4 from before the last run", len(c.accounts))
	}

	other := filepath.Join(t.TempDir(), "run.db")
	for range 2 {
		s, err := Open(other, Options{Backups: -1})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if b := Backups(other); len(b) != 0 {
		t.Errorf("Backups: -1 made %v", b)
	}
}

// TestStaleTemporaryFilesAreRemoved: what a writer killed during a
// creation, an upgrade or a backup leaves beside the file is removed by
// the next writer (only a holder of the lock makes them), and only that:
// the operator's files whose names start the same stay, and pruning keeps
// the newest backups.
func TestStaleTemporaryFilesAreRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	dir := filepath.Dir(path)
	for _, n := range []string{"run.db.new-123.tmp", "run.db.backup-456.tmp"} {
		os.WriteFile(filepath.Join(dir, n), []byte("half"), 0o600)
	}
	// The operator's files that start the same are not ours to remove.
	mine := []string{"run.db.new-batch.db", "run.db.backup-before-cutover", "run.db.backup-x.tmp", "123.tmp", "other.db.new-1.tmp"}
	for _, n := range mine {
		os.WriteFile(filepath.Join(dir, n), []byte("mine"), 0o600)
	}
	for range 5 { // more runs than backups are kept
		s, err = Open(path, Options{Backups: 2})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		time.Sleep(time.Millisecond)
	}
	var backups []string
	for _, n := range besides(t, path) {
		switch {
		case slices.Contains(mine, n):
		case strings.HasPrefix(n, "run.db.backup-2"):
			backups = append(backups, n)
		default:
			t.Errorf("left beside the checkpoint: %s", n)
		}
	}
	if len(backups) != 2 {
		t.Errorf("backups %v, want 2", backups)
	}
	for _, n := range mine {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}

// TestRecoverKeepsWhatVerifies damages a mid-run checkpoint in two ways,
// three records' bytes and one whole page of records, and recovers it:
// the new file verifies, holds every record that was not damaged exactly
// as it was, and the report names what was lost; the damaged file is
// only read.
func TestRecoverKeepsWhatVerifies(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.db")
	midRun(t, path)
	want := openContents(t, path)
	b, _ := os.ReadFile(path)
	ps, used, _ := pageKinds(t, b)

	accounts := []string{"alice\x00alice", "bob\x00bob", ledger.ReverseAccountID("alice\x00alice")}
	// Three records of each account, in every copy the file has of them
	// (free pages keep old ones).
	var lostKeys []string
	for _, uid := range []int{101, 102, 500} {
		for _, acct := range accounts {
			id := []byte(fmt.Sprintf("<%d.INBOX.%s@example.org>", uid-1, acct[:3]))
			for off := 0; ; {
				i := bytes.Index(b[off:], id)
				if i < 0 {
					break
				}
				b[off+i+1] ^= 0x01
				off += i + 1
			}
			lostKeys = append(lostKeys, fmt.Sprintf("%s/INBOX/7:%d", acct, uid))
		}
	}
	// One leaf page of bob's Sent records gets an impossible type.
	page := -1
	for _, id := range used {
		p := b[id*ps : (id+1)*ps]
		if page >= 0 || binary.LittleEndian.Uint16(p[8:]) != leafPage || !bytes.Contains(p, []byte(".Sent.bob@example.org>")) {
			continue
		}
		for i := range int(binary.LittleEndian.Uint16(p[10:])) {
			e := pageHeaderSize + i*elemSize
			k := p[e+int(binary.LittleEndian.Uint32(p[e+4:])):][:8]
			lostKeys = append(lostKeys, fmt.Sprintf("bob\x00bob/Sent/%d:%d", binary.BigEndian.Uint32(k), binary.BigEndian.Uint32(k[4:])))
		}
		binary.LittleEndian.PutUint16(p[8:], 0x40)
		page = id
	}
	if page < 0 {
		t.Fatal("no leaf page of Sent records found")
	}
	os.WriteFile(path, b, 0o600)
	sum := sha256.Sum256(b)

	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open = %v, want ErrDamaged", err)
	}
	rep, err := Check(path, Options{})
	if err != nil || len(rep.Problems) == 0 {
		t.Fatalf("Check = %+v, %v, want problems", rep, err)
	}
	newPath := filepath.Join(dir, "recovered.db")
	rr, err := Recover(path, newPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); sha256.Sum256(after) != sum {
		t.Errorf("recover changed the damaged file")
	}
	got := openContents(t, newPath)
	for k, r := range want.records {
		lost := slices.Contains(lostKeys, k)
		g, ok := got.records[k]
		switch {
		case lost && ok:
			t.Errorf("record %q survived its damage: %+v", k, g)
		case !lost && !ok:
			t.Errorf("record %q was not damaged and is missing", k)
		case !lost && g != r:
			t.Errorf("record %q = %+v, want %+v", k, g, r)
		}
	}
	if len(got.records) != len(want.records)-len(lostKeys) || len(got.accounts) != len(want.accounts) || got.from != want.from || !slices.Equal(got.runs, want.runs) {
		t.Errorf("recovered %d records (of %d, %d lost), %d accounts, %q, runs %v", len(got.records), len(want.records), len(lostKeys), len(got.accounts), got.from, got.runs)
	}
	lost := fmt.Sprint(rr.Lost)
	for _, w := range []string{"record 7:101", "record 7:500", fmt.Sprintf("page %d", page), "lost: the entries of", "checksum mismatch"} {
		if !strings.Contains(lost, w) {
			t.Errorf("the report of what was lost does not mention %q: %s", w, lost)
		}
	}
	if rep, err := Check(newPath, Options{}); err != nil || len(rep.Problems) > 0 || rep.Recovered == "" {
		t.Errorf("the recovered file: %+v, %v", rep, err)
	}
	// A run uses it as any checkpoint.
	s, err := Open(newPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.StartRun("verify", "test"); err != nil || id != uint32(len(want.runs)+1) {
		t.Errorf("StartRun on the recovered file = %d, %v", id, err)
	}
	s.Close()

	if _, err := Recover(path, newPath, Options{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("recovering onto an existing file: %v, want it refused", err)
	}
	if _, err := Recover(path, path, Options{}); err == nil {
		t.Errorf("recovering a file onto itself was not refused")
	}
}

// TestRecoverIntactFile: recovering a file with no damage loses nothing.
func TestRecoverIntactFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.db")
	midRun(t, path)
	rr, err := Recover(path, filepath.Join(dir, "copy.db"), Options{})
	if err != nil || len(rr.Lost) > 0 {
		t.Fatalf("Recover = %+v, %v", rr, err)
	}
	if !openContents(t, path).equal(openContents(t, filepath.Join(dir, "copy.db"))) {
		t.Errorf("the copy reads differently")
	}
}
