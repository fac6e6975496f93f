package checkpoint

import (
	"bytes"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// txn is one bbolt transaction seen through the seals: reads check each
// value's checksum, writes seal it and keep the digest.
type txn struct {
	tx     *bolt.Tx
	sealed bool   // false for a schema-1 file, read as it is
	delta  digest // what this transaction changed, added to meta/digest at commit
}

// bucket is a bucket with its place in the file.
type bucket struct {
	t     *txn
	b     *bolt.Bucket
	path  bpath
	where place
}

func (t *txn) root() bucket { return bucket{t: t} }

func (b bucket) isMeta() bool { return len(b.where) == 1 && b.where[0] == "meta" }

// top returns a bucket every checkpoint has; a missing one is damage.
func (t *txn) top(name []byte) (bucket, error) {
	b, ok := t.root().sub(name)
	if !ok {
		return bucket{}, damaged(string(name), "bucket missing")
	}
	return b, nil
}

func (b bucket) sub(name []byte) (bucket, bool) {
	var c *bolt.Bucket
	if b.b == nil {
		c = b.t.tx.Bucket(name)
	} else {
		c = b.b.Bucket(name)
	}
	if c == nil {
		return bucket{}, false
	}
	return bucket{t: b.t, b: c, path: b.path.child(name), where: b.where.child(name)}, true
}

func (b bucket) subOrCreate(name []byte) (bucket, error) {
	if c, ok := b.sub(name); ok {
		return c, nil
	}
	var c *bolt.Bucket
	var err error
	if b.b == nil {
		c, err = b.t.tx.CreateBucket(name)
	} else {
		c, err = b.b.CreateBucket(name)
	}
	if err != nil {
		return bucket{}, err
	}
	nb := bucket{t: b.t, b: c, path: b.path.child(name), where: b.where.child(name)}
	if b.t.sealed {
		b.t.delta.add(nb.path.crc)
	}
	return nb, nil
}

// open checks a stored value and returns its payload and checksum.
func (b bucket) open(key, v []byte) ([]byte, uint32, error) {
	if !b.t.sealed {
		return v, 0, nil
	}
	if b.isMeta() && plainMeta(key) {
		return v, b.path.entrySum(key, v), nil
	}
	p, sum, err := b.path.unseal(key, v)
	if err != nil {
		return nil, 0, damaged(b.where.entry(key), "%v", err)
	}
	return p, sum, nil
}

// get returns the payload at key, nil if there is none.
func (b bucket) get(key []byte) ([]byte, error) {
	v := b.b.Get(key)
	if v == nil {
		return nil, nil
	}
	p, _, err := b.open(key, v)
	return p, err
}

// put stores payload under key. bbolt keeps the value's slice until the
// commit: what it gets is always a copy.
func (b bucket) put(key, payload []byte) error {
	if err := b.forget(key); err != nil {
		return err
	}
	v, sum := payload, uint32(0)
	switch {
	case !b.t.sealed:
		return errors.New("checkpoint: write to a schema-1 file") // Open upgrades before any write
	case b.isMeta() && plainMeta(key):
		v, sum = bytes.Clone(payload), b.path.entrySum(key, payload)
	default:
		v, sum = b.path.seal(key, payload)
	}
	b.t.delta.add(sum)
	return b.b.Put(key, v)
}

func (b bucket) del(key []byte) error {
	if err := b.forget(key); err != nil {
		return err
	}
	return b.b.Delete(key)
}

// forget takes the value at key out of the digest, checking it first: a
// damaged value is never overwritten.
func (b bucket) forget(key []byte) error {
	old := b.b.Get(key)
	if old == nil {
		return nil
	}
	_, sum, err := b.open(key, old)
	if err != nil {
		return err
	}
	b.t.delta.sub(sum)
	return nil
}

// each calls fn for every value of the bucket in key order.
func (b bucket) each(fn func(k, payload []byte) error) error {
	c := b.b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			continue // a bucket
		}
		p, _, err := b.open(k, v)
		if err != nil {
			return err
		}
		if err := fn(k, p); err != nil {
			return err
		}
	}
	return nil
}

// commit adds the transaction's changes to meta/digest.
func (t *txn) commit() error {
	if t.delta == (digest{}) {
		return nil
	}
	m, err := t.top(bucketMeta)
	if err != nil {
		return err
	}
	var d digest
	if v := m.b.Get(keyDigest); v != nil {
		p, _, err := m.path.unseal(keyDigest, v)
		if err == nil {
			d, err = parseDigest(p)
		}
		if err != nil {
			return damaged(m.where.entry(keyDigest), "%v", err)
		}
	}
	d.n += t.delta.n
	d.sum += t.delta.sum
	v, _ := m.path.seal(keyDigest, d.bytes())
	return m.b.Put(keyDigest, v)
}
