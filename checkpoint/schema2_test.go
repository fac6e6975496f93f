package checkpoint

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// writeSchema2 writes the contents of schema2_data_test.go to path. It
// made testdata/schema2.ckpt (MAILFERRY_WRITE_SCHEMA2=1 go test -run
// TestWriteSchema2File ./checkpoint, at commit c81a01a); it is kept so
// the file's making can be read, not to rewrite it: the file must stay
// as that release wrote it.
func writeSchema2(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{Backups: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.BindEndpoints(schema2From, schema2To))
	for _, r := range schema2Runs {
		id, err := s.StartRun(r[0], r[1])
		must(err)
		if r[2] != "" {
			must(s.FinishRun(id, r[2]))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(schema2Accounts)) {
		must(s.PutAccount(id, schema2Accounts[id]))
	}
	for _, name := range slices.Sorted(maps.Keys(schema2Mailboxes)) {
		must(s.PutMailbox(schema2ID, name, schema2Mailboxes[name]))
	}
	must(s.PutDestMailboxes(schema2ID, schema2Dest))
	recs := schema2Records()
	for len(recs) > 0 {
		n := min(len(recs), 100)
		must(s.PutRecords(schema2ID, "INBOX", recs[:n]))
		recs = recs[n:]
	}
	must(s.DeleteRecords(schema2ID, "INBOX", schema2Deleted))
	must(s.PutRecords(schema2ID, "Sent", schema2Sent))
}

// TestWriteSchema2File (re)makes testdata/schema2.ckpt when asked to.
func TestWriteSchema2File(t *testing.T) {
	if os.Getenv("MAILFERRY_WRITE_SCHEMA2") == "" {
		t.Skip("writes testdata/schema2.ckpt only with MAILFERRY_WRITE_SCHEMA2=1")
	}
	path := filepath.Join(t.TempDir(), "schema2.ckpt")
	writeSchema2(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/schema2.ckpt", data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSchema2FileReads: a checkpoint written by the release before the
// ledger types moved out of checkpoint (testdata/schema2.ckpt) opens, and
// reads exactly what was written, field by field; a run on it goes on
// with it as it is (same schema, no upgrade).
func TestSchema2FileReads(t *testing.T) {
	orig, err := os.ReadFile("testdata/schema2.ckpt")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cur.db")
	os.WriteFile(path, orig, 0o600)
	if rep, err := Check(path, Options{}); err != nil || rep.Schema != SchemaVersion || len(rep.Problems) > 0 {
		t.Fatalf("Check = %+v, %v, want schema %d and no problem", rep, err, SchemaVersion)
	}
	c := openContents(t, path)
	if after, _ := os.ReadFile(path); !bytes.Equal(after, orig) {
		t.Fatal("a read-only open changed the file")
	}
	if c.from != schema2From || c.to != schema2To {
		t.Errorf("endpoints %s -> %s, want %s -> %s", c.from, c.to, schema2From, schema2To)
	}
	var wantRuns []string
	for i, r := range schema2Runs {
		wantRuns = append(wantRuns, fmt.Sprintf("%d %s %s %s", i+1, r[0], r[1], r[2]))
	}
	if !slices.Equal(c.runs, wantRuns) {
		t.Errorf("runs %q, want %q", c.runs, wantRuns)
	}
	if len(c.accounts) != len(schema2Accounts) {
		t.Errorf("%d accounts, want %d", len(c.accounts), len(schema2Accounts))
	}
	for id, want := range schema2Accounts {
		got, ok := c.accounts[id]
		if !ok || got.Updated.IsZero() {
			t.Errorf("account %q missing or without its time: %+v", id, got)
		}
		got.Updated = want.Updated
		if !reflect.DeepEqual(got, want) {
			t.Errorf("account %q = %+v, want %+v", id, got, want)
		}
	}
	if len(c.mailboxes) != len(schema2Mailboxes) {
		t.Errorf("%d mailboxes, want %d", len(c.mailboxes), len(schema2Mailboxes))
	}
	for name, want := range schema2Mailboxes {
		if got := c.mailboxes[schema2ID+"/"+name]; !reflect.DeepEqual(got, want) {
			t.Errorf("mailbox %s = %+v, want %+v", name, got, want)
		}
	}
	if len(c.dests) != len(schema2Dest) {
		t.Errorf("%d destination mailboxes, want %d", len(c.dests), len(schema2Dest))
	}
	for name, want := range schema2Dest {
		if got := c.dests[schema2ID+"/"+name]; !reflect.DeepEqual(got, want) {
			t.Errorf("destination mailbox %s = %+v, want %+v", name, got, want)
		}
	}
	want := map[string]ledger.Record{}
	for _, r := range schema2Records() {
		if !slices.Contains(schema2Deleted, r.RecordKey) {
			want[fmt.Sprintf("%s/INBOX/%d:%d", schema2ID, r.SrcValidity, r.SrcUID)] = r
		}
	}
	for _, r := range schema2Sent {
		want[fmt.Sprintf("%s/Sent/%d:%d", schema2ID, r.SrcValidity, r.SrcUID)] = r
	}
	if len(c.records) != len(want) {
		t.Errorf("%d records, want %d", len(c.records), len(want))
	}
	for k, w := range want {
		if got, ok := c.records[k]; !ok || got != w {
			t.Errorf("record %s = %+v, want %+v", k, got, w)
		}
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("a run on the file: %v", err)
	}
	if got := readContents(t, s); !got.equal(c) {
		t.Errorf("a writable open reads differently")
	}
	if id, err := s.StartRun("migrate", "test"); err != nil || id != uint32(len(schema2Runs)+1) {
		t.Errorf("StartRun = %d, %v; want run %d", id, err, len(schema2Runs)+1)
	}
	s.Close()
}
