package store

import (
	bolt "go.etcd.io/bbolt"
)

// The embedded store's logic (buckets of ordered keys, read and written in transactions)
// runs on one of two engines: bbolt, a copy-on-write B+tree in one file, or Pebble, a
// log-structured merge tree. The few operations it needs are these interfaces; bucket
// names and keys are the same on both, so that a bbolt file converts to Pebble by copying.

// kvTx is a transaction: a consistent view, and in an update the place writes go.
type kvTx interface {
	Bucket(name []byte) kvBucket
}

// kvBucket is one bucket's ordered keys. A value Get returns, or a cursor's key and
// value, stay valid until the transaction ends.
type kvBucket interface {
	// Get is nil when the key is absent (a present key with no value is an empty slice).
	Get(key []byte) []byte
	Put(key, value []byte) error
	Delete(key []byte) error
	Cursor() kvCursor
	ForEach(fn func(k, v []byte) error) error
}

// kvCursor walks a bucket in key order; a nil key is past either end. It sees the
// transaction's own writes, those made after it was opened included.
type kvCursor interface {
	First() (k, v []byte)
	Last() (k, v []byte)
	Seek(seek []byte) (k, v []byte)
	Next() (k, v []byte)
	Prev() (k, v []byte)
	// Delete removes the key the cursor is on.
	Delete() error
}

// kvEngine is what the embedded store asks of an engine.
type kvEngine interface {
	// view runs fn on a consistent snapshot.
	view(fn func(tx kvTx) error) error
	// update runs fn in a transaction that is durable (fsync'd) when update returns nil,
	// and leaves nothing behind when fn fails. Updates never run concurrently.
	update(fn func(tx kvTx) error) error
	// count is the number of keys in a bucket.
	count(bucket []byte) (int, error)
	// check verifies the engine's own structures.
	check() error
	close() error
	name() string
}

// timeOrdered is a bucket whose new keys come after the keys around them (keyed by uuid
// v7, by expiry, or by partner then uuid v7): bbolt fills its pages before they split,
// since hardly any key will land between two stored ones. Its default (half-full pages) suits random inserts and, for appends,
// doubles the file, the pages each commit writes, and the mapped memory reads touch.
func timeOrdered(tx kvTx, name []byte) kvBucket {
	b := tx.Bucket(name)
	if bb, ok := b.(boltBucket); ok {
		bb.FillPercent = 1
	}
	return b
}

// --- bbolt ------------------------------------------------------------------------------

type boltEngine struct{ db *bolt.DB }

type boltTx struct{ tx *bolt.Tx }

type boltBucket struct{ *bolt.Bucket }

func (t boltTx) Bucket(name []byte) kvBucket { return boltBucket{t.tx.Bucket(name)} }

func (b boltBucket) Cursor() kvCursor { return b.Bucket.Cursor() }

func (e boltEngine) view(fn func(tx kvTx) error) error {
	return e.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (e boltEngine) update(fn func(tx kvTx) error) error {
	return e.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (e boltEngine) count(bucket []byte) (int, error) {
	n := 0
	err := e.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	})
	return n, err
}

func (e boltEngine) check() error {
	return e.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

func (e boltEngine) close() error { return e.db.Close() }

func (e boltEngine) name() string { return EngineBolt }
