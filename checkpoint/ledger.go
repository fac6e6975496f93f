package checkpoint

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The ledger bucket holds, per account id, a "mailboxes" bucket (source
// mailbox name -> MailboxRecord as JSON) and a "messages" bucket with one
// bucket per source mailbox name (RecordKey -> Record).

func accountBucket(tx *bolt.Tx, id string, create bool) (*bolt.Bucket, error) {
	l := tx.Bucket(bucketLedger)
	if !create {
		return l.Bucket([]byte(id)), nil
	}
	a, err := l.CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return nil, err
	}
	if _, err := a.CreateBucketIfNotExists(bucketMailbox); err != nil {
		return nil, err
	}
	if _, err := a.CreateBucketIfNotExists(bucketMessages); err != nil {
		return nil, err
	}
	return a, nil
}

func messageBucket(tx *bolt.Tx, account, mailbox string, create bool) (*bolt.Bucket, error) {
	a, err := accountBucket(tx, account, create)
	if err != nil || a == nil {
		return nil, err
	}
	if !create {
		return a.Bucket(bucketMessages).Bucket([]byte(mailbox)), nil
	}
	return a.Bucket(bucketMessages).CreateBucketIfNotExists([]byte(mailbox))
}

// Mailbox returns the record of source mailbox name in account.
func (s *Store) Mailbox(account, name string) (MailboxRecord, bool, error) {
	var rec MailboxRecord
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		a, _ := accountBucket(tx, account, false)
		if a == nil {
			return nil
		}
		v := a.Bucket(bucketMailbox).Get([]byte(name))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	return rec, found, err
}

// PutMailbox stores the record of source mailbox name in account.
func (s *Store) PutMailbox(account, name string, rec MailboxRecord) error {
	return s.update(func(tx *bolt.Tx) error {
		a, err := accountBucket(tx, account, true)
		if err != nil {
			return err
		}
		return putJSON(a.Bucket(bucketMailbox), []byte(name), rec)
	})
}

// DestMailboxes calls fn for every destination mailbox of account that
// mailferry has recorded a first sight of, in name order.
func (s *Store) DestMailboxes(account string, fn func(name string, d DestMailbox) error) error {
	return s.view(func(tx *bolt.Tx) error {
		a, _ := accountBucket(tx, account, false)
		if a == nil || a.Bucket(bucketDestSeen) == nil {
			return nil // none yet, or a checkpoint from before they were kept
		}
		return a.Bucket(bucketDestSeen).ForEach(func(k, v []byte) error {
			var d DestMailbox
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("destination mailbox %q: %w", k, err)
			}
			return fn(string(k), d)
		})
	})
}

// PutDestMailboxes records first sights of destination mailboxes of
// account, in one transaction.
func (s *Store) PutDestMailboxes(account string, seen map[string]DestMailbox) error {
	if len(seen) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		a, err := accountBucket(tx, account, true)
		if err != nil {
			return err
		}
		b, err := a.CreateBucketIfNotExists(bucketDestSeen)
		if err != nil {
			return err
		}
		for name, d := range seen {
			if err := putJSON(b, []byte(name), d); err != nil {
				return err
			}
		}
		return nil
	})
}

// Mailboxes calls fn for every mailbox record of account in name order.
func (s *Store) Mailboxes(account string, fn func(name string, rec MailboxRecord) error) error {
	return s.view(func(tx *bolt.Tx) error {
		a, _ := accountBucket(tx, account, false)
		if a == nil {
			return nil
		}
		return a.Bucket(bucketMailbox).ForEach(func(k, v []byte) error {
			var rec MailboxRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("mailbox %q: %w", k, err)
			}
			return fn(string(k), rec)
		})
	})
}

// Records calls fn for every message record of a source mailbox in key
// order (source UIDVALIDITY, then UID).
func (s *Store) Records(account, mailbox string, fn func(Record) error) error {
	return s.view(func(tx *bolt.Tx) error {
		b, err := messageBucket(tx, account, mailbox, false)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r Record
			key, err := parseRecordKey(k)
			if err == nil {
				err = r.unmarshal(v)
			}
			if err != nil {
				return fmt.Errorf("checkpoint record %x in %q: %w", k, mailbox, err)
			}
			r.RecordKey = key
			return fn(r)
		})
	})
}

// PutRecords stores recs in one transaction: one fsync for the whole batch.
func (s *Store) PutRecords(account, mailbox string, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := messageBucket(tx, account, mailbox, true)
		if err != nil {
			return err
		}
		for i := range recs {
			if err := b.Put(recs[i].RecordKey.bytes(), recs[i].marshal()); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRecords removes the records with the given keys in one transaction.
func (s *Store) DeleteRecords(account, mailbox string, keys []RecordKey) error {
	if len(keys) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := messageBucket(tx, account, mailbox, false)
		if err != nil || b == nil {
			return err
		}
		for _, k := range keys {
			if err := b.Delete(k.bytes()); err != nil {
				return err
			}
		}
		return nil
	})
}
