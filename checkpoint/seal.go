package checkpoint

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Schema 2 seals every value: payload, then the CRC-32C of where the entry
// is (its bucket path), its key and its payload. A flipped bit in a value,
// a key or a bucket name then fails the check of every entry it touches.
// What a per-entry check cannot see, an entry gone (a page's count cut, a
// subtree lost), the digest does: meta/digest holds the number of entries
// and the sum of their checksums, kept in the same commit as the entries.
//
// meta/app and meta/schema stay plain: they are compared with fixed
// strings, which checks them as well as a checksum would, and an older
// mailferry can still read the schema version it does not support.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const sealSize = 4

// bpath is a bucket's place in the file: its names from the root, each
// length-prefixed so that no two paths encode alike, and the CRC of that
// encoding, from which every entry's checksum continues.
type bpath struct {
	enc []byte
	crc uint32
}

func (p bpath) child(name []byte) bpath {
	enc := make([]byte, 0, len(p.enc)+binary.MaxVarintLen32+len(name))
	enc = append(enc, p.enc...)
	enc = binary.AppendUvarint(enc, uint64(len(name)))
	enc = append(enc, name...)
	return bpath{enc: enc, crc: crc32.Update(0, castagnoli, enc)}
}

// entrySum is the checksum of a value's entry. A bucket's own entry (its
// name in its parent) counts in the digest with its path's CRC.
func (p bpath) entrySum(key, payload []byte) uint32 {
	var l [binary.MaxVarintLen64]byte
	c := crc32.Update(p.crc, castagnoli, l[:binary.PutUvarint(l[:], uint64(len(key)))])
	c = crc32.Update(c, castagnoli, key)
	return crc32.Update(c, castagnoli, payload)
}

func (p bpath) seal(key, payload []byte) ([]byte, uint32) {
	sum := p.entrySum(key, payload)
	v := make([]byte, 0, len(payload)+sealSize)
	v = append(v, payload...)
	return binary.BigEndian.AppendUint32(v, sum), sum
}

var errChecksum = errors.New("checksum mismatch")

// unseal checks a sealed value and returns its payload and checksum.
func (p bpath) unseal(key, v []byte) ([]byte, uint32, error) {
	if len(v) < sealSize {
		return nil, 0, errors.New("value too short to carry its checksum")
	}
	payload := v[:len(v)-sealSize]
	sum := p.entrySum(key, payload)
	if sum != binary.BigEndian.Uint32(v[len(v)-sealSize:]) {
		return nil, 0, errChecksum
	}
	return payload, sum, nil
}

// digest counts a file's entries (values and buckets, meta/digest itself
// excepted) and sums their checksums modulo 2^64.
type digest struct {
	n   uint64
	sum uint64
}

func (d *digest) add(sum uint32) { d.n++; d.sum += uint64(sum) }
func (d *digest) sub(sum uint32) { d.n--; d.sum -= uint64(sum) }

func (d digest) bytes() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, d.n), d.sum)
}

func parseDigest(b []byte) (digest, error) {
	if len(b) != 16 {
		return digest{}, errors.New("digest of the wrong length")
	}
	return digest{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}, nil
}

// plainMeta are the meta keys stored without a seal.
func plainMeta(key []byte) bool { return string(key) == "app" || string(key) == "schema" }

var (
	keyApp     = []byte("app")
	keySchema  = []byte("schema")
	keyCreated = []byte("created")
	keyFrom    = []byte("from")
	keyTo      = []byte("to")
	keyDigest  = []byte("digest")
	// keyRecovered notes that the file was made by recover: from what, when, and what was lost.
	keyRecovered = []byte("recovered")
)
