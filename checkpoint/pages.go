package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt maps the file and trusts what it finds: a damaged page can make
// it panic, read outside the mapping (SIGBUS) or loop, and its own check
// reads through the same mapping. mailferry reads the pages itself, with
// plain reads and a bounds check on every offset, to verify a file before
// bbolt opens it and to salvage what it can from a damaged one. The
// format is bbolt's (go.etcd.io/bbolt/internal/common): a 16-byte page
// header (id, flags, count, overflow), then branch elements (pos, ksize,
// pgid) or leaf elements (flags, pos, ksize, vsize), positions relative
// to the element; a bucket's value is its root page id and sequence,
// followed by its page itself when the bucket is inline (root 0).

const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	elemSize       = 16
	metaSize       = 64
	noFreelist     = ^uint64(0)

	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	bucketLeaf   = 0x01

	bucketHeaderSize = 16
	maxTreeDepth     = 64
)

type boltMeta struct {
	pageSize       uint32
	root           uint64 // the root bucket's page
	freelist       uint64
	pgid, txid     uint64
	magicOK, valid bool
	err            string // why it is not valid
}

func readMeta(b []byte) boltMeta {
	var m boltMeta
	if len(b) < metaSize {
		m.err = "short meta page"
		return m
	}
	le := binary.LittleEndian
	m.pageSize, m.root, m.freelist = le.Uint32(b[8:]), le.Uint64(b[16:]), le.Uint64(b[32:])
	m.pgid, m.txid = le.Uint64(b[40:]), le.Uint64(b[48:])
	m.magicOK = le.Uint32(b[0:]) == boltMagic
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case !m.magicOK:
		m.err = "no bbolt magic number"
	case le.Uint32(b[4:]) != boltVersion:
		m.err = fmt.Sprintf("bbolt format version %d", le.Uint32(b[4:]))
	case h.Sum64() != le.Uint64(b[56:]):
		m.err = "fails its checksum"
	default:
		m.valid = true
	}
	return m
}

// pageFile is a bbolt file being read page by page.
type pageFile struct {
	r        io.ReaderAt
	size     int64
	pageSize int
	meta     boltMeta
	npages   uint64   // pages the file has room for: at most meta.pgid
	used     []uint64 // bit per page: reached from the root, or the freelist's own
	free     []uint64 // bit per page: listed in the freelist
	bufs     [][]byte // one read buffer per depth of the walk
	metas    [2]boltMeta
	metaPage int // which of the two is used
	// metaProblem says what is wrong with the meta pages; a lenient reader
	// goes on with the valid one.
	metaProblem *Problem
}

// metaMissing: the file ends before the second meta page.
const metaMissing = "missing"

// errNotBolt: the file has no bbolt meta page at all.
var errNotBolt = errors.New("not a bbolt file")

// openPages reads the meta pages and picks the one bbolt would use, the
// valid one with the highest transaction id. A file with no meta page is
// errNotBolt; one whose meta pages are damaged, or which is shorter than
// they say, is a *DamageError.
func openPages(f *os.File) (*pageFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf := &pageFile{r: f, size: fi.Size()}
	if pf.size == 0 {
		return nil, errStub
	}
	head := make([]byte, pageHeaderSize+metaSize)
	var metas [2]boltMeta
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("%w: %d bytes", errNotBolt, pf.size)
	}
	metas[0] = readMeta(head[pageHeaderSize:])
	// The second meta page sits one page further: its size comes from the
	// first, or is bbolt's usual 4 KiB if the first is damaged.
	pageSize := int64(4096)
	if metas[0].valid && validPageSize(metas[0].pageSize) {
		pageSize = int64(metas[0].pageSize)
	}
	metas[1].err = metaMissing
	if _, err := f.ReadAt(head, pageSize); err == nil {
		metas[1] = readMeta(head[pageHeaderSize:])
	}
	if !metas[0].magicOK && !metas[1].magicOK {
		return nil, errNotBolt
	}
	switch {
	case metas[0].valid && metas[1].valid:
		if metas[1].txid > metas[0].txid {
			pf.metaPage = 1
		}
	case metas[0].valid || metas[1].valid:
		bad := 0
		if metas[0].valid {
			bad = 1
		}
		pf.metaPage = 1 - bad
		pf.metaProblem = &Problem{Where: fmt.Sprintf("page %d (meta)", bad),
			What: fmt.Sprintf("%s: the file may lack its last commit (bbolt would fall back to the meta page of the commit before)", metas[bad].err)}
	default:
		return nil, damaged("pages 0 and 1 (meta)", "both meta pages are damaged (%s; %s)", metas[0].err, metas[1].err)
	}
	pf.metas, pf.meta = metas, metas[pf.metaPage]
	m := pf.meta
	if !validPageSize(m.pageSize) {
		return nil, damaged(fmt.Sprintf("page %d (meta)", pf.metaPage), "implausible page size %d", m.pageSize)
	}
	pf.pageSize = int(m.pageSize)
	if m.pgid < 4 || m.pgid > 1<<40 || m.root < 2 || m.root >= m.pgid || (m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid)) {
		return nil, damaged(fmt.Sprintf("page %d (meta)", pf.metaPage), "page numbers out of range (root %d, freelist %d, %d pages)", m.root, m.freelist, m.pgid)
	}
	pf.npages = min(m.pgid, uint64((pf.size+int64(pf.pageSize)-1)/int64(pf.pageSize)))
	words := (pf.npages + 63) / 64
	pf.used, pf.free = make([]uint64, words), make([]uint64, words)
	setBit(pf.used, 0)
	setBit(pf.used, 1)
	return pf, nil
}

func validPageSize(n uint32) bool { return n >= 512 && n <= 1<<16 && n&(n-1) == 0 }

func setBit(b []uint64, i uint64)      { b[i/64] |= 1 << (i % 64) }
func bitSet(b []uint64, i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }

// truncated says whether the file is shorter than its pages.
func (pf *pageFile) truncated() *DamageError {
	if need := int64(pf.meta.pgid) * int64(pf.pageSize); pf.size < need {
		return damaged("the whole file", "truncated: %d bytes, its %d pages need %d", pf.size, pf.meta.pgid, need)
	}
	return nil
}

// stub says whether the file is what bbolt writes before the first commit,
// or part of it: it holds nothing. A creation cut short by a kill or a
// full disk leaves this (mailferry before schema 2 created files in place).
//
// Only when nothing says otherwise: a meta page that is there but fails
// its checksum may be of a later commit, so that file is damaged, not
// empty.
func (pf *pageFile) stub() bool {
	for _, m := range pf.metas {
		if !(m.valid && m.txid <= 1) && m.err != metaMissing {
			return false
		}
	}
	return pf.meta.txid <= 1 && pf.meta.pgid == 4 && pf.meta.root == 3
}

// page reads page id and its overflow pages into the buffer of depth d and
// checks its header.
func (pf *pageFile) page(id uint64, d int) ([]byte, error) {
	where := fmt.Sprintf("page %d", id)
	if id < 2 || id >= pf.meta.pgid {
		return nil, damaged(where, "out of range (the file has %d pages)", pf.meta.pgid)
	}
	if id >= pf.npages {
		return nil, damaged(where, "beyond the end of the file (%d bytes)", pf.size)
	}
	for len(pf.bufs) <= d {
		pf.bufs = append(pf.bufs, make([]byte, pf.pageSize))
	}
	buf := pf.bufs[d][:pf.pageSize]
	off := int64(id) * int64(pf.pageSize)
	if _, err := pf.r.ReadAt(buf, off); err != nil {
		return nil, damaged(where, "unreadable: %v", err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(buf); got != id {
		return nil, damaged(where, "says it is page %d", got)
	}
	if over := uint64(le.Uint32(buf[12:])); over > 0 {
		if id+over >= pf.npages {
			return nil, damaged(where, "overflows past the last page (%d more pages)", over)
		}
		n := int(over+1) * pf.pageSize
		if cap(pf.bufs[d]) < n {
			nb := make([]byte, n)
			copy(nb, buf)
			pf.bufs[d] = nb
		}
		buf = pf.bufs[d][:n]
		if _, err := pf.r.ReadAt(buf[pf.pageSize:], off+int64(pf.pageSize)); err != nil {
			return nil, damaged(where, "unreadable overflow: %v", err)
		}
	}
	return buf, nil
}

// claim marks page id and its overflow as in use; a page reached twice
// is damage (and would make a walk loop).
func (pf *pageFile) claim(id uint64, p []byte) error {
	over := uint64(binary.LittleEndian.Uint32(p[12:]))
	for i := id; i <= id+over; i++ {
		if bitSet(pf.used, i) {
			return damaged(fmt.Sprintf("page %d", i), "reached twice")
		}
	}
	for i := id; i <= id+over; i++ {
		setBit(pf.used, i)
	}
	return nil
}

// element is one key of a bucket as the walk finds it. Its bytes are
// valid during the callback only; next is the read-buffer depth for
// walking the bucket it may be.
type element struct {
	key, value []byte
	bucket     bool
	next       int
}

// walker goes through a bucket's tree in key order. In strict mode the
// first problem ends the walk; otherwise problems are noted, the part of
// the tree that cannot be read is skipped and the walk goes on.
type walker struct {
	pf      *pageFile
	strict  bool
	problem func(p Problem) error // called for each problem; an error ends the walk
}

func (w *walker) report(err error) error {
	var d *DamageError
	if !errors.As(err, &d) {
		return err
	}
	return w.problem(d.Problem)
}

// bucketTree walks the bucket whose value (header and, if inline, page)
// is hdr, calling fn for each element in key order; depth counts pages
// above, for the read buffers. A page that cannot be read is reported
// with the range of keys it held, as far as its parent says.
func (w *walker) bucketTree(hdr []byte, depth int, where place, fn func(element) error) error {
	if len(hdr) < bucketHeaderSize {
		return w.report(damaged(where.String(), "bucket header of %d bytes", len(hdr)))
	}
	root := binary.LittleEndian.Uint64(hdr)
	var last []byte
	if root == 0 {
		inline := hdr[bucketHeaderSize:]
		if len(inline) < pageHeaderSize {
			return w.report(damaged(where.String(), "inline bucket of %d bytes", len(inline)))
		}
		return w.leaf(inline, depth, true, where, where.String()+" (inline page)", nil, nil, &last, fn)
	}
	return w.tree(root, depth, where, nil, nil, &last, fn)
}

// rootTree walks the root bucket, whose page the meta page names.
func (w *walker) rootTree(fn func(element) error) error {
	var last []byte
	return w.tree(w.pf.meta.root, 0, place{}, nil, nil, &last, fn)
}

// tree walks the page id, whose keys must lie in [lo, hi) (nil: no bound).
func (w *walker) tree(id uint64, depth int, where place, lo, hi []byte, last *[]byte, fn func(element) error) error {
	if depth > maxTreeDepth {
		return w.report(damaged(fmt.Sprintf("page %d", id), "tree of %s deeper than %d pages", where, maxTreeDepth))
	}
	p, err := w.pf.page(id, depth)
	if err == nil {
		err = w.pf.claim(id, p)
	}
	if err != nil {
		return w.lost(err, where, lo, hi)
	}
	pageWhere := fmt.Sprintf("page %d (%s)", id, where)
	flags, count := binary.LittleEndian.Uint16(p[8:]), int(binary.LittleEndian.Uint16(p[10:]))
	switch flags {
	case leafPage:
		return w.leaf(p, depth+1, false, where, pageWhere, lo, hi, last, fn)
	case branchPage:
	default:
		return w.lost(damaged(pageWhere, "page type %#x where a branch or leaf page belongs", flags), where, lo, hi)
	}
	if count == 0 || pageHeaderSize+count*elemSize > len(p) {
		return w.lost(damaged(pageWhere, "branch page with %d elements", count), where, lo, hi)
	}
	// Read every child's key and page before descending: the buffer of
	// this depth is reused below.
	type child struct {
		key []byte
		id  uint64
	}
	kids := make([]child, count)
	le := binary.LittleEndian
	for i := range kids {
		e := pageHeaderSize + i*elemSize
		pos, ksize := uint64(le.Uint32(p[e:])), uint64(le.Uint32(p[e+4:]))
		if uint64(e)+pos+ksize > uint64(len(p)) || ksize == 0 {
			return w.lost(damaged(pageWhere, "element %d: key outside the page", i), where, lo, hi)
		}
		kids[i] = child{bytes.Clone(p[uint64(e)+pos : uint64(e)+pos+ksize]), le.Uint64(p[e+8:])}
		if i > 0 && bytes.Compare(kids[i-1].key, kids[i].key) >= 0 {
			return w.lost(damaged(pageWhere, "keys out of order at element %d", i), where, lo, hi)
		}
	}
	if (lo != nil && bytes.Compare(kids[0].key, lo) < 0) || (hi != nil && bytes.Compare(kids[count-1].key, hi) >= 0) {
		return w.lost(damaged(pageWhere, "keys outside the range its parent gives"), where, lo, hi)
	}
	for i, k := range kids {
		clo, chi := k.key, hi
		if i == 0 {
			clo = lo // keys below the first are looked up in the first child too
		}
		if i+1 < count {
			chi = kids[i+1].key
		}
		if err := w.tree(k.id, depth+1, where, clo, chi, last, fn); err != nil {
			return err
		}
	}
	return nil
}

// leaf walks a leaf page (or a bucket's inline page).
func (w *walker) leaf(p []byte, next int, inline bool, where place, pageWhere string, lo, hi []byte, last *[]byte, fn func(element) error) error {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if flags != leafPage {
		return w.lost(damaged(pageWhere, "page type %#x where a leaf page belongs", flags), where, lo, hi)
	}
	if pageHeaderSize+count*elemSize > len(p) {
		return w.lost(damaged(pageWhere, "%d elements do not fit in the page", count), where, lo, hi)
	}
	for i := range count {
		e := pageHeaderSize + i*elemSize
		eflags, pos := le.Uint32(p[e:]), uint64(le.Uint32(p[e+4:]))
		ksize, vsize := uint64(le.Uint32(p[e+8:])), uint64(le.Uint32(p[e+12:]))
		start := uint64(e) + pos
		if start+ksize+vsize > uint64(len(p)) || ksize == 0 {
			if err := w.report(damaged(pageWhere, "element %d: key or value outside the page", i)); err != nil {
				return err
			}
			continue
		}
		el := element{key: p[start : start+ksize], value: p[start+ksize : start+ksize+vsize], bucket: eflags&bucketLeaf != 0, next: next}
		if eflags&^bucketLeaf != 0 || (inline && el.bucket) {
			if err := w.report(damaged(where.entry(el.key), "element flags %#x", eflags)); err != nil {
				return err
			}
			continue
		}
		if (*last != nil && bytes.Compare(el.key, *last) <= 0) || (lo != nil && bytes.Compare(el.key, lo) < 0) || (hi != nil && bytes.Compare(el.key, hi) >= 0) {
			if err := w.report(damaged(where.entry(el.key), "key out of order (%s)", pageWhere)); err != nil {
				return err
			}
			continue
		}
		*last = append((*last)[:0], el.key...)
		if err := fn(el); err != nil {
			return err
		}
	}
	return nil
}

// lost reports a subtree that cannot be read, with the keys it covered.
func (w *walker) lost(err error, where place, lo, hi []byte) error {
	var d *DamageError
	if !errors.As(err, &d) {
		return err
	}
	if !w.strict {
		d.What += "; lost: " + keyRange(where, lo, hi)
	}
	return w.problem(d.Problem)
}

func keyRange(where place, lo, hi []byte) string {
	show := func(k []byte) string {
		if where.isMessages() && len(k) == 8 {
			return fmt.Sprintf("%d:%d", binary.BigEndian.Uint32(k), binary.BigEndian.Uint32(k[4:]))
		}
		return fmt.Sprintf("%q", k)
	}
	switch {
	case lo == nil && hi == nil:
		return "every entry of " + where.String()
	case lo == nil:
		return fmt.Sprintf("the entries of %s before %s", where, show(hi))
	case hi == nil:
		return fmt.Sprintf("the entries of %s from %s on", where, show(lo))
	}
	return fmt.Sprintf("the entries of %s from %s to before %s", where, show(lo), show(hi))
}

// freelist reads the freelist and checks that every page is in use or
// free, and none both. It runs after the walk of every bucket.
func (w *walker) freelist() error {
	pf := w.pf
	if pf.meta.freelist == noFreelist {
		return w.report(damaged("page 0 or 1 (meta)", "no freelist (bbolt would write one on open)"))
	}
	id := pf.meta.freelist
	where := fmt.Sprintf("page %d (freelist)", id)
	p, err := pf.page(id, 0)
	if err == nil {
		err = pf.claim(id, p)
	}
	if err != nil {
		return w.report(err)
	}
	le := binary.LittleEndian
	if flags := le.Uint16(p[8:]); flags != freelistPage {
		return w.report(damaged(where, "page type %#x where the freelist belongs", flags))
	}
	body := p[pageHeaderSize:]
	n := uint64(le.Uint16(p[10:]))
	if n == 0xFFFF { // the count does not fit: it is the first id
		if len(body) < 8 {
			return w.report(damaged(where, "too short"))
		}
		n, body = le.Uint64(body), body[8:]
	}
	if n > uint64(len(body)/8) {
		return w.report(damaged(where, "lists %d pages, has room for %d", n, len(body)/8))
	}
	for i := range n {
		fid := le.Uint64(body[8*i:])
		switch {
		case fid < 2 || fid >= pf.meta.pgid:
			if err := w.report(damaged(where, "lists page %d, outside the file's %d pages", fid, pf.meta.pgid)); err != nil {
				return err
			}
			continue
		case fid >= pf.npages:
			if err := w.report(damaged(where, "lists page %d, beyond the end of the file", fid)); err != nil {
				return err
			}
			continue
		case bitSet(pf.free, fid):
			if err := w.report(damaged(where, "lists page %d twice", fid)); err != nil {
				return err
			}
		case bitSet(pf.used, fid):
			if err := w.report(damaged(fmt.Sprintf("page %d", fid), "in use, and listed as free")); err != nil {
				return err
			}
		}
		setBit(pf.free, fid)
	}
	for i := uint64(2); i < pf.npages; i++ {
		if !bitSet(pf.used, i) && !bitSet(pf.free, i) {
			if err := w.report(damaged(fmt.Sprintf("page %d", i), "neither in use nor free (a reference to it was lost)")); err != nil {
				return err
			}
		}
	}
	return nil
}

// freePages counts the pages the freelist lists.
func (pf *pageFile) freePages() int {
	n := 0
	for _, w := range pf.free {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}
