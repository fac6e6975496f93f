package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/mailferry/mailferry/migrate/ledger"
)

// Report is what a verification of a checkpoint found.
type Report struct {
	Path      string `json:"path"`
	Schema    int    `json:"schema"`
	Size      int64  `json:"size"`
	PageSize  int    `json:"page_size"`
	Pages     uint64 `json:"pages"`
	FreePages int    `json:"free_pages"`
	Created   string `json:"created,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	// Recovered is set on a file made by Recover: from what, when, what was lost.
	Recovered string `json:"recovered,omitempty"`
	Runs      int    `json:"runs"`
	LastRun   *Run   `json:"last_run,omitempty"`
	// Accounts counts account pairs by state; WayBack counts reverse's own.
	Accounts      map[string]int `json:"accounts"`
	WayBack       int            `json:"way_back"`
	Mailboxes     int            `json:"mailboxes"`
	DestMailboxes int            `json:"destination_mailboxes"`
	// Records counts message records by status.
	Records map[string]int `json:"records"`
	// Entries counts every value and bucket; for schema 2, the digest's count.
	Entries  uint64    `json:"entries"`
	Backups  []string  `json:"backups,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
	// MoreProblems counts problems found beyond those listed.
	MoreProblems int `json:"more_problems,omitempty"`
}

// maxProblems bounds the problems a report lists.
const maxProblems = 1000

// sink receives what verifies, in file order (Recover writes it out).
// names are the bucket's names from the root.
type sink interface {
	bucket(names [][]byte, seq uint64) error
	value(names [][]byte, key, payload []byte) error
}

// inspector checks a file against the checkpoint layout: every page
// reached once and the freelist consistent (as bbolt's own check would),
// every value's seal, every key and value decodable for its place, the
// digest. It counts what the file holds for the report.
type inspector struct {
	w      *walker
	rep    *Report
	sealed bool
	sum    digest // of what verified
	stored *digest
	sink   sink
	maxRun uint32
	runSeq uint64
	failed uint64 // entries that failed their own checks (reported one by one)
}

// errStop ends a strict walk at its first problem.
var errStop = errors.New("stop")

// verifyFile checks the file f. In strict mode it returns the first
// problem as a *DamageError; otherwise problems go into the report and
// whatever verifies goes to sk (if not nil). A file that is no bbolt file
// or no checkpoint is ErrNotCheckpoint; an unknown schema is ErrSchema.
func verifyFile(f *os.File, strict bool, sk sink) (*Report, error) {
	rep := &Report{Path: f.Name(), Accounts: map[string]int{}, Records: map[string]int{}}
	pf, err := openPages(f)
	if errors.Is(err, errNotBolt) {
		return rep, fmt.Errorf("%w: %v", ErrNotCheckpoint, err)
	}
	var first *DamageError
	note := func(p Problem) error {
		if first == nil {
			first = &DamageError{Problem: p}
		}
		if strict {
			return errStop
		}
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, p)
		} else {
			rep.MoreProblems++
		}
		return nil
	}
	var d *DamageError
	if errors.As(err, &d) { // the meta pages: nothing further can be read
		note(d.Problem)
		if strict {
			return rep, first
		}
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	rep.Size, rep.PageSize, rep.Pages = pf.size, pf.pageSize, pf.meta.pgid
	if pf.stub() {
		return rep, errStub
	}
	if pf.metaProblem != nil {
		if note(*pf.metaProblem) != nil {
			return rep, first
		}
	}
	if t := pf.truncated(); t != nil {
		if note(t.Problem) != nil {
			return rep, first
		}
	}
	in := &inspector{w: &walker{pf: pf, strict: strict, problem: note}, rep: rep, sink: sk}
	err = in.run()
	if err == nil {
		err = in.w.freelist()
	}
	if err == nil {
		in.checkDigest()
	}
	rep.FreePages = pf.freePages()
	switch {
	case errors.Is(err, ErrNotCheckpoint), errors.Is(err, ErrSchema):
		return rep, err
	case err != nil && !errors.Is(err, errStop):
		return rep, err
	case strict && first != nil:
		return rep, first
	}
	return rep, nil
}

// errStub: the file is bbolt's initial pages (or part of them) and holds
// no commit.
var errStub = errors.New("the file holds no commit (a creation cut short)")

func (in *inspector) bad(where, format string, args ...any) error {
	return in.w.problem(Problem{Where: where, What: fmt.Sprintf(format, args...)})
}

// run goes through the root bucket: meta first, which says the schema and
// whether the file is a checkpoint at all, then the others.
func (in *inspector) run() error {
	type top struct {
		hdr  []byte
		next int
	}
	tops := map[string]top{}
	err := in.w.rootTree(func(e element) error {
		name := string(e.key)
		if !e.bucket {
			return in.bad(place{}.entry(e.key), "a value where only buckets belong")
		}
		// A name a checkpoint does not have is another program's bucket, or
		// one of ours damaged: decided below, once meta says whose file it is.
		tops[name] = top{hdr: bytes.Clone(e.value), next: e.next}
		return nil
	})
	if err != nil {
		return err
	}
	m, hasMeta := tops["meta"]
	ours := false
	for _, name := range []string{"accounts", "runs", "ledger"} {
		_, ok := tops[name]
		ours = ours || ok
	}
	if !hasMeta {
		if !ours {
			return fmt.Errorf("%w: a bbolt file of some other program", ErrNotCheckpoint)
		}
		if err := in.bad("meta", "bucket missing"); err != nil {
			return err
		}
	} else if err := in.meta(m.hdr, m.next, ours); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(tops)) {
		t := tops[name]
		where := place{}.child([]byte(name))
		switch name {
		case "meta":
			continue
		case "accounts", "runs", "ledger":
		default:
			if err := in.bad(where.String(), "a bucket a checkpoint does not have"); err != nil {
				return err
			}
			continue
		}
		if err := in.enter([][]byte{[]byte(name)}, t.hdr); err != nil {
			return err
		}
		var fn func(element) error
		names := [][]byte{[]byte(name)}
		switch name {
		case "accounts":
			fn = in.values(names, where, in.account)
		case "runs":
			fn = in.values(names, where, in.run1)
		case "ledger":
			fn = in.buckets(names, where, in.ledgerAccount)
		}
		if err := in.w.bucketTree(t.hdr, t.next, where, fn); err != nil {
			return err
		}
		if name == "runs" {
			if in.runSeq < uint64(in.maxRun) { // a run id would be used twice
				if err := in.bad("runs", "bucket sequence %d, below the last run, %d", in.runSeq, in.maxRun); err != nil {
					return err
				}
			}
		}
	}
	for _, name := range []string{"accounts", "runs", "ledger"} {
		if _, ok := tops[name]; !ok {
			if err := in.bad(name, "bucket missing"); err != nil {
				return err
			}
		}
	}
	return nil
}

// enter takes note of a bucket: it counts in the digest, its sequence
// must be unused (but in runs), and the sink recreates it.
func (in *inspector) enter(names [][]byte, hdr []byte) error {
	var p bpath
	for _, n := range names {
		p = p.child(n)
	}
	seq := uint64(0)
	if len(hdr) >= bucketHeaderSize {
		seq = binary.LittleEndian.Uint64(hdr[8:])
	}
	in.rep.Entries++
	if in.sealed {
		in.sum.add(p.crc)
	}
	if len(names) == 1 && string(names[0]) == "runs" {
		in.runSeq = seq
	} else if seq != 0 {
		where := place{}
		for _, n := range names {
			where = where.child(n)
		}
		if err := in.bad(where.String(), "bucket sequence %d where none is used", seq); err != nil {
			return err
		}
	}
	if in.sink != nil {
		return in.sink.bucket(names, seq)
	}
	return nil
}

// meta reads the meta bucket: whose file, which schema, the digest.
func (in *inspector) meta(hdr []byte, next int, ours bool) error {
	where := place{}.child(bucketMeta)
	vals := map[string][]byte{}
	var extra [][]byte
	err := in.w.bucketTree(hdr, next, where, func(e element) error {
		if e.bucket {
			extra = append(extra, bytes.Clone(e.key))
			return nil
		}
		vals[string(e.key)] = bytes.Clone(e.value)
		return nil
	})
	if err != nil {
		return err
	}
	app, hasApp := vals["app"]
	switch {
	case string(app) == appName:
	case !ours && !hasApp:
		return fmt.Errorf("%w: a bbolt file of some other program", ErrNotCheckpoint)
	case !ours && !bytes.HasPrefix(app, []byte(appName[:8])):
		return fmt.Errorf("%w: a bbolt file of some other program (%q)", ErrNotCheckpoint, app)
	default:
		if err := in.bad(where.entry(keyApp), "%q, want %q", app, appName); err != nil {
			return err
		}
	}
	schema, err := strconv.Atoi(string(vals["schema"]))
	switch {
	case err != nil:
		if err := in.bad(where.entry(keySchema), "unreadable schema version %q", vals["schema"]); err != nil {
			return err
		}
		schema = SchemaVersion // read on as the current layout
	case schema != 1 && schema != SchemaVersion:
		return fmt.Errorf("%w: file has version %d, this mailferry reads 1 to %d", ErrSchema, schema, SchemaVersion)
	}
	in.rep.Schema, in.sealed = schema, schema >= 2
	if err := in.enter([][]byte{bucketMeta}, hdr); err != nil {
		return err
	}
	p := bpath{}.child(bucketMeta)
	for _, name := range extra {
		if err := in.bad(where.entry(name), "a bucket where only values belong"); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		v, key := vals[k], []byte(k)
		switch k {
		case "app", "schema":
			in.rep.Entries++
			if in.sealed {
				in.sum.add(p.entrySum(key, v))
			}
			continue
		case "digest":
			if !in.sealed {
				if err := in.bad(where.entry(key), "a key schema 1 does not have"); err != nil {
					return err
				}
				continue
			}
			payload, _, err := p.unseal(key, v)
			var d digest
			if err == nil {
				d, err = parseDigest(payload)
			}
			if err != nil {
				if err := in.bad(where.entry(key), "%v", err); err != nil {
					return err
				}
				continue
			}
			in.stored = &d
			continue
		case "created", "from", "to", "recovered":
		default:
			if err := in.bad(where.entry(key), "a key a checkpoint does not have"); err != nil {
				return err
			}
			continue
		}
		payload, ok, err := in.open(p, where, key, v)
		if err != nil || !ok {
			return err
		}
		switch k {
		case "created":
			in.rep.Created = string(payload)
		case "from":
			in.rep.From = string(payload)
		case "to":
			in.rep.To = string(payload)
		case "recovered":
			in.rep.Recovered = string(payload)
		}
		if in.sink != nil {
			if err := in.sink.value([][]byte{bucketMeta}, key, payload); err != nil {
				return err
			}
		}
	}
	if in.sealed && in.stored == nil {
		if _, bad := vals["digest"]; !bad {
			return in.bad(where.entry(keyDigest), "missing")
		}
	}
	return nil
}

// open checks a value's seal (schema 2) and counts it.
func (in *inspector) open(p bpath, where place, key, v []byte) ([]byte, bool, error) {
	if !in.sealed {
		in.rep.Entries++
		return v, true, nil
	}
	payload, sum, err := p.unseal(key, v)
	if err != nil {
		in.failed++
		return nil, false, in.bad(where.entry(key), "%v", err)
	}
	in.rep.Entries++
	in.sum.add(sum)
	return payload, true, nil
}

// values returns a walk callback for a bucket of values, each checked by
// check and then given to the sink.
func (in *inspector) values(names [][]byte, where place, check func(where place, key, payload []byte) error) func(element) error {
	var p bpath
	for _, n := range names {
		p = p.child(n)
	}
	return func(e element) error {
		if e.bucket {
			return in.bad(where.entry(e.key), "a bucket where only values belong")
		}
		payload, ok, err := in.open(p, where, e.key, e.value)
		if err != nil || !ok {
			return err
		}
		if err := check(where, e.key, payload); err != nil {
			var d *DamageError
			if errors.As(err, &d) {
				in.undoCount(p, e.key, e.value)
				return in.w.problem(d.Problem)
			}
			return err
		}
		if in.sink != nil {
			return in.sink.value(names, e.key, payload)
		}
		return nil
	}
}

// undoCount takes a value that was sealed right but does not decode out
// of what verified (it is reported lost).
func (in *inspector) undoCount(p bpath, key, v []byte) {
	in.failed++
	in.rep.Entries--
	if in.sealed {
		_, sum, _ := p.unseal(key, v)
		in.sum.sub(sum)
	}
}

// buckets returns a walk callback for a bucket of buckets.
func (in *inspector) buckets(names [][]byte, where place, inner func(names [][]byte, where place, hdr []byte, next int) error) func(element) error {
	return func(e element) error {
		if !e.bucket {
			return in.bad(where.entry(e.key), "a value where only buckets belong")
		}
		sub := append(append([][]byte{}, names...), bytes.Clone(e.key))
		if err := in.enter(sub, e.value); err != nil {
			return err
		}
		return inner(sub, where.child(e.key), e.value, e.next)
	}
}

func (in *inspector) account(where place, key, payload []byte) error {
	var a diskAccount
	if err := json.Unmarshal(payload, &a); err != nil {
		return damaged(where.entry(key), "%v", err)
	}
	if ledger.IsReverseAccount(string(key)) {
		in.rep.WayBack++
	} else {
		in.rep.Accounts[a.State]++
	}
	return nil
}

func (in *inspector) run1(where place, key, payload []byte) error {
	var r Run
	if err := json.Unmarshal(payload, &r); err != nil {
		return damaged(where.entry(key), "%v", err)
	}
	if len(key) != 4 || binary.BigEndian.Uint32(key) != r.ID {
		return damaged(where.entry(key), "run %d under key %x", r.ID, key)
	}
	in.rep.Runs++
	in.rep.LastRun = &r
	in.maxRun = max(in.maxRun, r.ID)
	return nil
}

func (in *inspector) ledgerAccount(names [][]byte, where place, hdr []byte, next int) error {
	return in.w.bucketTree(hdr, next, where, func(e element) error {
		if !e.bucket {
			return in.bad(where.entry(e.key), "a value where only buckets belong")
		}
		sub := append(append([][]byte{}, names...), bytes.Clone(e.key))
		swhere := where.child(e.key)
		var fn func(element) error
		switch string(e.key) {
		case "mailboxes":
			fn = in.values(sub, swhere, in.mailbox)
		case "destinations":
			fn = in.values(sub, swhere, in.destination)
		case "messages":
			fn = in.buckets(sub, swhere, in.messages)
		default:
			return in.bad(swhere.String(), "a bucket a checkpoint does not have")
		}
		if err := in.enter(sub, e.value); err != nil {
			return err
		}
		return in.w.bucketTree(e.value, e.next, swhere, fn)
	})
}

func (in *inspector) mailbox(where place, key, payload []byte) error {
	var m diskMailbox
	if err := json.Unmarshal(payload, &m); err != nil {
		return damaged(where.entry(key), "%v", err)
	}
	in.rep.Mailboxes++
	return nil
}

func (in *inspector) destination(where place, key, payload []byte) error {
	var d diskDest
	if err := json.Unmarshal(payload, &d); err != nil {
		return damaged(where.entry(key), "%v", err)
	}
	in.rep.DestMailboxes++
	return nil
}

func (in *inspector) messages(names [][]byte, where place, hdr []byte, next int) error {
	return in.w.bucketTree(hdr, next, where, in.values(names, where, in.record))
}

func (in *inspector) record(where place, key, payload []byte) error {
	var r ledger.Record
	if _, err := parseRecordKey(key); err != nil {
		return damaged(where.entry(key), "%v", err)
	}
	if err := unmarshalRecord(payload, &r); err != nil {
		return damaged(where.entry(key), "%v", err)
	}
	in.rep.Records[r.Status.String()]++
	return nil
}

// checkDigest compares what verified with what the file says it holds:
// entries gone without a trace (a page's count cut, a subtree lost) show
// only here.
func (in *inspector) checkDigest() {
	if !in.sealed || in.stored == nil {
		return
	}
	got, want := in.sum, *in.stored
	switch {
	case got == want:
		return
	case in.failed > 0 && got.n+in.failed == want.n:
		return // the entries that failed are listed one by one
	case got.n+in.failed == want.n:
		in.w.problem(Problem{Where: "meta, key \"digest\"", What: fmt.Sprintf("the file's %d entries verify one by one, but not as the set its digest records", got.n)})
		return
	}
	what := fmt.Sprintf("the digest counts %d entries; %d verified", want.n, got.n)
	if in.failed > 0 {
		what += fmt.Sprintf(", %d failed their checks (listed)", in.failed)
	}
	if want.n > got.n+in.failed {
		what += fmt.Sprintf(", %d are missing (on pages that could not be read, or dropped from a page)", want.n-got.n-in.failed)
	} else {
		what += fmt.Sprintf(", and %d more were found than it counts", got.n+in.failed-want.n)
	}
	in.w.problem(Problem{Where: "meta, key \"digest\"", What: what})
}
