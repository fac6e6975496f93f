package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt maps the file and trusts its meta pages: a truncated file makes it
// read past the end of the mapping, which kills the process with SIGBUS
// rather than returning an error. precheck reads the two meta pages itself
// and refuses a file whose newest valid meta points past its end, so an
// operator gets a clear error and the file is left as it is.

const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64
	noFreelist     = ^uint64(0)
)

type boltMeta struct {
	pageSize       uint32
	root, freelist uint64
	pgid, txid     uint64
}

func readMeta(b []byte) (boltMeta, error) {
	if len(b) < metaSize {
		return boltMeta{}, errors.New("short meta page")
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic {
		return boltMeta{}, errors.New("bad magic")
	}
	if le.Uint32(b[4:]) != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d", le.Uint32(b[4:]))
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if h.Sum64() != le.Uint64(b[56:]) {
		return boltMeta{}, errors.New("bad meta checksum")
	}
	return boltMeta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]),
		pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, nil
}

func precheck(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	head := make([]byte, pageHeaderSize+metaSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("%w: file too short (%d bytes)", ErrNotCheckpoint, fi.Size())
	}
	var metas []boltMeta
	m0, err0 := readMeta(head[pageHeaderSize:])
	if err0 == nil {
		metas = append(metas, m0)
	}
	// The second meta page sits one page further; its size comes from the
	// first one, or the usual 4 KiB if the first is damaged.
	pageSize := int64(4096)
	if err0 == nil {
		pageSize = int64(m0.pageSize)
	}
	second := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(second, pageSize); err == nil {
		if m1, err := readMeta(second[pageHeaderSize:]); err == nil {
			metas = append(metas, m1)
		}
	}
	if len(metas) == 0 {
		return fmt.Errorf("%w: no valid bbolt meta page (%v)", ErrNotCheckpoint, err0)
	}
	m := metas[0]
	if len(metas) == 2 && metas[1].txid > m.txid {
		m = metas[1]
	}
	if m.pageSize < 512 || m.pageSize&(m.pageSize-1) != 0 {
		return fmt.Errorf("%w: implausible page size %d", ErrNotCheckpoint, m.pageSize)
	}
	if need := int64(m.pgid) * int64(m.pageSize); m.pgid > 1<<40 || fi.Size() < need {
		return fmt.Errorf("%w: truncated: %d bytes, its pages need %d", ErrNotCheckpoint, fi.Size(), need)
	}
	if m.root >= m.pgid || (m.freelist >= m.pgid && m.freelist != noFreelist) {
		return fmt.Errorf("%w: corrupt meta page", ErrNotCheckpoint)
	}
	return nil
}
