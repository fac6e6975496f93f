package checkpoint

import (
	"encoding/json"

	"github.com/mailferry/mailferry/migrate/ledger"
)

var _ ledger.Ledger = (*Store)(nil)

// The ledger bucket holds, per account id, a "mailboxes" bucket (source
// mailbox name -> MailboxRecord as JSON), a "destinations" bucket
// (destination mailbox name -> DestMailbox as JSON) and a "messages"
// bucket with one bucket per source mailbox name (RecordKey -> Record).

func accountBucket(t *txn, id string, create bool) (bucket, bool, error) {
	l, err := t.top(bucketLedger)
	if err != nil {
		return bucket{}, false, err
	}
	if !create {
		a, ok := l.sub([]byte(id))
		return a, ok, nil
	}
	a, err := l.subOrCreate([]byte(id))
	if err != nil {
		return bucket{}, false, err
	}
	for _, name := range [][]byte{bucketMailbox, bucketMessages} {
		if _, err := a.subOrCreate(name); err != nil {
			return bucket{}, false, err
		}
	}
	return a, true, nil
}

// accountSub returns a sub-bucket of account id; ok is false if either is
// not there yet.
func accountSub(t *txn, id string, name []byte, create bool) (bucket, bool, error) {
	a, ok, err := accountBucket(t, id, create)
	if err != nil || !ok {
		return bucket{}, false, err
	}
	if create {
		b, err := a.subOrCreate(name)
		return b, err == nil, err
	}
	b, ok := a.sub(name)
	return b, ok, nil
}

func messageBucket(t *txn, account, mailbox string, create bool) (bucket, bool, error) {
	m, ok, err := accountSub(t, account, bucketMessages, create)
	if err != nil || !ok {
		return bucket{}, false, err
	}
	if create {
		b, err := m.subOrCreate([]byte(mailbox))
		return b, err == nil, err
	}
	b, ok := m.sub([]byte(mailbox))
	return b, ok, nil
}

// Mailbox returns the record of source mailbox name in account.
func (s *Store) Mailbox(account, name string) (ledger.MailboxRecord, bool, error) {
	var rec diskMailbox
	var found bool
	err := s.view(func(t *txn) error {
		b, ok, err := accountSub(t, account, bucketMailbox, false)
		if err != nil || !ok {
			return err
		}
		v, err := b.get([]byte(name))
		if err != nil || v == nil {
			return err
		}
		found = true
		if err := json.Unmarshal(v, &rec); err != nil {
			return damaged(b.where.entry([]byte(name)), "%v", err)
		}
		return nil
	})
	return rec.ledger(), found, err
}

// PutMailbox stores the record of source mailbox name in account.
func (s *Store) PutMailbox(account, name string, rec ledger.MailboxRecord) error {
	return s.PutMailboxes(account, map[string]ledger.MailboxRecord{name: rec})
}

// PutMailboxes writes the records of several source mailboxes of account
// in one transaction.
func (s *Store) PutMailboxes(account string, recs map[string]ledger.MailboxRecord) error {
	return putAll(s, account, bucketMailbox, recs, toDiskMailbox)
}

// putAll writes one JSON value per name into account's sub-bucket, in one
// transaction.
func putAll[V, D any](s *Store, account string, bucket []byte, vals map[string]V, disk func(V) D) error {
	if len(vals) == 0 {
		return nil
	}
	return s.update(func(t *txn) error {
		b, _, err := accountSub(t, account, bucket, true)
		if err != nil {
			return err
		}
		for name, v := range vals {
			if err := putJSON(b, []byte(name), disk(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ForgetMailbox removes the record of source mailbox name in account (not
// its message records).
func (s *Store) ForgetMailbox(account, name string) error {
	return s.update(func(t *txn) error {
		b, ok, err := accountSub(t, account, bucketMailbox, false)
		if err != nil || !ok {
			return err
		}
		return b.del([]byte(name))
	})
}

// DestMailboxes calls fn for every destination mailbox of account that
// mailferry has recorded a first sight of, in name order.
func (s *Store) DestMailboxes(account string, fn func(name string, d ledger.DestMailbox) error) error {
	return s.view(func(t *txn) error {
		b, ok, err := accountSub(t, account, bucketDestSeen, false)
		if err != nil || !ok {
			return err // none yet, or a checkpoint from before they were kept
		}
		return b.each(func(k, v []byte) error {
			var d diskDest
			if err := json.Unmarshal(v, &d); err != nil {
				return damaged(b.where.entry(k), "%v", err)
			}
			return fn(string(k), ledger.DestMailbox(d))
		})
	})
}

// PutDestMailboxes records first sights of destination mailboxes of
// account, in one transaction.
func (s *Store) PutDestMailboxes(account string, seen map[string]ledger.DestMailbox) error {
	return putAll(s, account, bucketDestSeen, seen, func(d ledger.DestMailbox) diskDest { return diskDest(d) })
}

// Mailboxes calls fn for every mailbox record of account in name order.
func (s *Store) Mailboxes(account string, fn func(name string, rec ledger.MailboxRecord) error) error {
	return s.view(func(t *txn) error {
		b, ok, err := accountSub(t, account, bucketMailbox, false)
		if err != nil || !ok {
			return err
		}
		return b.each(func(k, v []byte) error {
			var rec diskMailbox
			if err := json.Unmarshal(v, &rec); err != nil {
				return damaged(b.where.entry(k), "%v", err)
			}
			return fn(string(k), rec.ledger())
		})
	})
}

// Records calls fn for every message record of a source mailbox in key
// order (source UIDVALIDITY, then UID).
func (s *Store) Records(account, mailbox string, fn func(ledger.Record) error) error {
	return s.view(func(t *txn) error {
		b, ok, err := messageBucket(t, account, mailbox, false)
		if err != nil || !ok {
			return err
		}
		return b.each(func(k, v []byte) error {
			var r ledger.Record
			key, err := parseRecordKey(k)
			if err == nil {
				err = unmarshalRecord(v, &r)
			}
			if err != nil {
				return damaged(b.where.entry(k), "%v", err)
			}
			r.RecordKey = key
			return fn(r)
		})
	})
}

// PutRecords stores recs in one transaction: one fsync for the whole batch.
func (s *Store) PutRecords(account, mailbox string, recs []ledger.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return s.update(func(t *txn) error {
		b, _, err := messageBucket(t, account, mailbox, true)
		if err != nil {
			return err
		}
		for i := range recs {
			v, err := marshalRecord(&recs[i])
			if err != nil {
				return err
			}
			if err := b.put(keyBytes(recs[i].RecordKey), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRecords removes the records with the given keys in one transaction.
func (s *Store) DeleteRecords(account, mailbox string, keys []ledger.RecordKey) error {
	if len(keys) == 0 {
		return nil
	}
	return s.update(func(t *txn) error {
		b, ok, err := messageBucket(t, account, mailbox, false)
		if err != nil || !ok {
			return err
		}
		for _, k := range keys {
			if err := b.del(keyBytes(k)); err != nil {
				return err
			}
		}
		return nil
	})
}
