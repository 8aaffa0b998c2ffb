package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble keeps every bucket in one keyspace: a key is the bucket's name, a zero byte,
// then the bucket's own key. An update is an indexed batch (its reads see its own
// writes), committed with a synced write to the write-ahead log: the log is appended to,
// never rewritten in place, and keys that land anywhere in the keyspace (dedup keys,
// event ids) cost no more than appended ones, where bbolt rewrites one page per key.

type pebbleEngine struct {
	db *pebble.DB
	// writeMu serialises updates up to their apply: each reads what it then changes
	// (counters, claims), as bbolt's single writer does. Their syncs may overlap, the
	// write-ahead log making one fsync of several.
	writeMu sync.Mutex
	openMu  sync.RWMutex
	closed  bool
}

// pebbleTx reads from r (a snapshot, or the batch of an update, which reads through to
// the database) and writes to batch (nil in a view).
type pebbleTx struct {
	r     pebble.Reader
	batch *pebble.Batch
	// writes counts the batch's mutations, so that cursors know to refresh their view.
	writes  int
	cursors []*pebbleCursor
	// err is the first read error: the transaction fails with it whatever fn returned,
	// since bbolt's reads, which the store's logic was written for, cannot fail.
	err error
}

func (t *pebbleTx) fail(err error) {
	if t.err == nil {
		t.err = fmt.Errorf("reading the event store: %w", err)
	}
}

type pebbleBucket struct {
	tx     *pebbleTx
	prefix []byte
}

func bucketPrefix(name []byte) []byte {
	return append(append(make([]byte, 0, len(name)+1), name...), 0)
}

// prefixEnd is the first key after every key that starts with prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++ // the prefix ends with the zero separator
	return end
}

func (t *pebbleTx) Bucket(name []byte) kvBucket {
	return &pebbleBucket{tx: t, prefix: bucketPrefix(name)}
}

func (b *pebbleBucket) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(b.prefix)+len(k)), b.prefix...), k...)
}

func (b *pebbleBucket) Get(k []byte) []byte {
	v, closer, err := b.tx.r.Get(b.key(k))
	if err != nil {
		if !errors.Is(err, pebble.ErrNotFound) {
			// An unreadable key is not an absent one: the transaction fails with it, so
			// that a counter or dedup key that could not be read is never written over.
			b.tx.fail(err)
		}
		return nil
	}
	out := append(make([]byte, 0, len(v)), v...)
	_ = closer.Close()
	return out
}

var errReadOnly = errors.New("a write in a read-only transaction")

func (b *pebbleBucket) Put(k, v []byte) error {
	if b.tx.batch == nil {
		return errReadOnly
	}
	b.tx.writes++
	return b.tx.batch.Set(b.key(k), v, nil)
}

func (b *pebbleBucket) Delete(k []byte) error {
	if b.tx.batch == nil {
		return errReadOnly
	}
	b.tx.writes++
	return b.tx.batch.Delete(b.key(k), nil)
}

func (b *pebbleBucket) Cursor() kvCursor {
	return &pebbleCursor{b: b, opts: pebble.IterOptions{LowerBound: b.prefix, UpperBound: prefixEnd(b.prefix)}}
}

func (b *pebbleBucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor().(*pebbleCursor)
	defer c.close()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return c.err()
}

// pebbleCursor is a bucket's iterator. Keys and values are copied out, since callers
// keep them past the next step, as bbolt's stay valid for the transaction.
type pebbleCursor struct {
	b    *pebbleBucket
	opts pebble.IterOptions
	it   *pebble.Iterator
	// seen is the transaction's write count the iterator's view includes.
	seen int
	// at is the key the cursor is on (without the bucket prefix), nil when off the ends.
	at []byte
}

// iter is the iterator, opened or refreshed to include the transaction's writes.
func (c *pebbleCursor) iter() *pebble.Iterator {
	if c.it == nil {
		it, err := c.b.tx.r.NewIter(&c.opts)
		if err != nil {
			panic(fmt.Sprintf("pebble: opening an iterator: %v", err)) // only fails on a closed database
		}
		c.it, c.seen = it, c.b.tx.writes
		// Iterators are closed at the end of the transaction that opened them.
		c.b.tx.track(c)
	} else if c.seen != c.b.tx.writes {
		c.it.SetOptions(&c.opts)
		c.seen = c.b.tx.writes
	}
	return c.it
}

func (c *pebbleCursor) current(valid bool) ([]byte, []byte) {
	if !valid {
		c.at = nil
		if err := c.it.Error(); err != nil {
			c.b.tx.fail(err) // an iterator that stopped on an error did not reach the end
		}
		return nil, nil
	}
	k := c.it.Key()[len(c.b.prefix):]
	c.at = append([]byte(nil), k...)
	v, err := c.it.ValueAndErr()
	if err != nil {
		c.at = nil
		c.b.tx.fail(err)
		return nil, nil
	}
	return c.at, append(make([]byte, 0, len(v)), v...)
}

func (c *pebbleCursor) First() ([]byte, []byte) { return c.current(c.iter().First()) }

func (c *pebbleCursor) Last() ([]byte, []byte) { return c.current(c.iter().Last()) }

func (c *pebbleCursor) Seek(seek []byte) ([]byte, []byte) {
	return c.current(c.iter().SeekGE(c.b.key(seek)))
}

func (c *pebbleCursor) Next() ([]byte, []byte) {
	if c.at == nil {
		return nil, nil
	}
	if c.seen != c.b.tx.writes {
		// The view changed under the cursor: find its place again.
		it := c.iter()
		if !it.SeekGE(c.b.key(c.at)) {
			return c.current(false)
		}
		if !bytes.Equal(it.Key()[len(c.b.prefix):], c.at) {
			return c.current(true) // the key it was on is gone: this is the next one
		}
	}
	return c.current(c.iter().Next())
}

func (c *pebbleCursor) Prev() ([]byte, []byte) {
	if c.at == nil {
		return nil, nil
	}
	if c.seen != c.b.tx.writes {
		return c.current(c.iter().SeekLT(c.b.key(c.at)))
	}
	return c.current(c.iter().Prev())
}

func (c *pebbleCursor) Delete() error {
	if c.at == nil {
		return errors.New("cursor delete: the cursor is on no key")
	}
	return c.b.Delete(c.at)
}

func (c *pebbleCursor) err() error {
	if c.it == nil {
		return nil
	}
	return c.it.Error()
}

func (c *pebbleCursor) close() {
	if c.it != nil {
		_ = c.it.Close()
		c.it = nil
	}
}

func (t *pebbleTx) track(c *pebbleCursor) { t.cursors = append(t.cursors, c) }

// closeCursors closes the iterators the transaction opened: they must be closed before
// its batch or snapshot is.
func (t *pebbleTx) closeCursors() {
	for _, c := range t.cursors {
		c.close()
	}
	t.cursors = nil
}

// openMu is held (read) by every transaction and taken by close, so that a read still
// running when the store closes (a request past the shutdown timeout) gets ErrClosed
// rather than meet a closed database, which Pebble answers with a panic.
func (e *pebbleEngine) begin() error {
	e.openMu.RLock()
	if e.closed {
		e.openMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (e *pebbleEngine) view(fn func(tx kvTx) error) error {
	if err := e.begin(); err != nil {
		return err
	}
	defer e.openMu.RUnlock()
	snap := e.db.NewSnapshot()
	tx := &pebbleTx{r: snap}
	err := fn(tx)
	tx.closeCursors()
	_ = snap.Close()
	if tx.err != nil {
		return tx.err
	}
	return err
}

func (e *pebbleEngine) update(fn func(tx kvTx) error) error {
	if err := e.begin(); err != nil {
		return err
	}
	// Held until the batch is synced, so that close cannot close the database under
	// the wait.
	defer e.openMu.RUnlock()
	wait, err := e.applyNoSyncWait(fn)
	if err != nil {
		return err
	}
	return wait()
}

// updateNoSyncWait implements pipelinedEngine. Close waits for the committer and the
// syncer, so no wait is outstanding when the database closes.
func (e *pebbleEngine) updateNoSyncWait(fn func(tx kvTx) error) (func() error, error) {
	if err := e.begin(); err != nil {
		return nil, err
	}
	defer e.openMu.RUnlock()
	return e.applyNoSyncWait(fn)
}

// applyNoSyncWait runs fn on a batch and applies it, returning the wait for its sync. A
// batch applied with ApplyNoSyncWait is in the memtable and readable when it returns,
// exactly as a synced Commit's batch is before its fsync (Pebble publishes a batch
// before it waits for the log's sync), so the next transaction's reads (dedup keys,
// counters) see it; the next may be built while this one syncs.
func (e *pebbleEngine) applyNoSyncWait(fn func(tx kvTx) error) (func() error, error) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	batch, err := e.build(fn)
	if err != nil {
		return nil, err
	}
	if batch == nil {
		return func() error { return nil }, nil
	}
	if err := e.db.ApplyNoSyncWait(batch, pebble.Sync); err != nil {
		_ = batch.Close()
		return nil, err
	}
	return func() error {
		err := batch.SyncWait()
		_ = batch.Close()
		return err
	}, nil
}

// build runs fn on a new indexed batch: the batch when fn wrote something, nil when it
// wrote nothing or failed.
func (e *pebbleEngine) build(fn func(tx kvTx) error) (*pebble.Batch, error) {
	batch := e.db.NewIndexedBatch()
	tx := &pebbleTx{r: batch, batch: batch}
	err := fn(tx)
	tx.closeCursors()
	if tx.err != nil {
		err = tx.err
	}
	if err != nil || batch.Empty() {
		_ = batch.Close()
		return nil, err
	}
	return batch, nil
}

func (e *pebbleEngine) count(bucket []byte) (int, error) {
	if err := e.begin(); err != nil {
		return 0, err
	}
	defer e.openMu.RUnlock()
	prefix := bucketPrefix(bucket)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++ // keys only: the values are not read
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	return n, nil
}

// check reads every key and value back: Pebble verifies each block's checksum as it
// reads it.
func (e *pebbleEngine) check() error {
	if err := e.begin(); err != nil {
		return err
	}
	defer e.openMu.RUnlock()
	snap := e.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		if _, err := it.ValueAndErr(); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	return nil
}

func (e *pebbleEngine) close() error {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.db.Close()
}

func (e *pebbleEngine) name() string { return EnginePebble }
