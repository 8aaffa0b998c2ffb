package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketEvents   = []byte("events")   // uuid -> Event JSON (uuid v7: keys sort by time)
	bucketPayloads = []byte("payloads") // uuid -> raw body
	bucketDedup    = []byte("dedup")    // dedup key -> expiry(8) + uuid
	bucketDedupExp = []byte("dedupexp") // expiry(8) + dedup key -> nil, for pruning
	bucketByID     = []byte("byid")     // partnerKey \x00 eventId \x00 uuid -> nil
	bucketDue      = []byte("due")      // due time(8) + uuid -> nil: the delivery queue
)

// maxBatch bounds one group commit, so that one transaction stays short.
const maxBatch = 512

// CommitObserver receives each group commit's duration and size (metrics).
type CommitObserver func(d time.Duration, batch int)

// Bolt is the embedded store: one bbolt file. Writes from concurrent requests are
// grouped into one transaction and one fsync by a single committer goroutine: it takes
// whatever is waiting, commits it, answers everyone, and takes the next group, so the
// batch size follows the load with no added delay.
type Bolt struct {
	db       *bolt.DB
	writes   chan *writeOp
	observe  CommitObserver
	closed   atomic.Bool
	closing  chan struct{}
	done     chan struct{}
	closeMu  sync.RWMutex
	lastErr  atomic.Pointer[error]
	failures atomic.Int64
}

type writeOp struct {
	apply func(tx *bolt.Tx) error
	done  chan error
}

// OpenBolt opens (or creates) the store file in dir.
func OpenBolt(dir string, observe CommitObserver) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "events.db"), 0o600, &bolt.Options{
		Timeout:        5 * time.Second, // another process holding the file
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the event store: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketPayloads, bucketDedup, bucketDedupExp, bucketByID, bucketDue, bucketAttempts, bucketReflect, bucketTokens} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("preparing the event store: %w", err)
	}
	if observe == nil {
		observe = func(time.Duration, int) {}
	}
	s := &Bolt{db: db, writes: make(chan *writeOp, 4096), observe: observe, closing: make(chan struct{}), done: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

func (s *Bolt) commitLoop() {
	defer close(s.done)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		select {
		case op := <-s.writes:
			batch = append(batch[:0], op)
		case <-s.closing:
			// Fail whatever is still queued.
			for {
				select {
				case op := <-s.writes:
					op.done <- ErrClosed
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-s.writes:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit applies a group in one transaction. An op whose apply fails is left out by
// re-running the group without it, so that one bad op cannot fail the others.
func (s *Bolt) commit(batch []*writeOp) {
	started := time.Now()
	failed := make([]error, len(batch))
	for {
		var bad = -1
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, op := range batch {
				if failed[i] != nil {
					continue
				}
				if err := op.apply(tx); err != nil {
					failed[i], bad = err, i
					return err
				}
			}
			return nil
		})
		if err != nil && bad >= 0 {
			continue // retry the group without the failed op
		}
		if err != nil {
			s.lastErr.Store(&err)
			s.failures.Add(1)
		} else {
			s.lastErr.Store(nil)
		}
		for i, op := range batch {
			switch {
			case failed[i] != nil:
				op.done <- failed[i]
			default:
				op.done <- err
			}
		}
		s.observe(time.Since(started), len(batch))
		return
	}
}

// write queues apply for the next group commit and waits until it is durable.
func (s *Bolt) write(ctx context.Context, apply func(tx *bolt.Tx) error) error {
	s.closeMu.RLock()
	if s.closed.Load() {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	op := &writeOp{apply: apply, done: make(chan error, 1)}
	select {
	case s.writes <- op:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued, the op is committed or failed by the loop; waiting for it even past
	// ctx keeps "answered" and "durable" the same thing.
	return <-op.done
}

// Ingest implements Store.
func (s *Bolt) Ingest(ctx context.Context, in Ingest) (IngestResult, error) {
	var result IngestResult
	err := s.write(ctx, func(tx *bolt.Tx) error {
		result = IngestResult{Event: in.Event}
		if in.DedupKey != "" {
			dedup := tx.Bucket(bucketDedup)
			if v := dedup.Get([]byte(in.DedupKey)); len(v) > 8 && keyTime(v[:8]).After(in.Event.ReceivedAt) {
				original, err := getEvent(tx, string(v[8:]))
				if err == nil {
					result = IngestResult{Event: *original, Duplicate: true}
					return nil
				}
				if !errors.Is(err, ErrNotFound) {
					return err
				}
			}
			expiry := in.Event.ReceivedAt.Add(in.DedupWindow)
			if err := dedup.Put([]byte(in.DedupKey), append(timeKey(expiry), in.Event.UUID...)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketDedupExp).Put(append(timeKey(expiry), in.DedupKey...), nil); err != nil {
				return err
			}
		}
		uuid := []byte(in.Event.UUID)
		stored := in.Event
		stored.Version = 0
		if err := putEvent(tx, &stored); err != nil {
			return err
		}
		result.Event = stored
		if err := tx.Bucket(bucketPayloads).Put(uuid, in.Payload); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByID).Put(byIDKey(in.Event.PartnerKey(), in.Event.EventID, in.Event.UUID), nil); err != nil {
			return err
		}
		if in.Event.Phase == PhaseQueued {
			due := in.Event.ReceivedAt
			if in.Event.NextAttemptAt != nil {
				due = *in.Event.NextAttemptAt
			}
			return tx.Bucket(bucketDue).Put(append(timeKey(due), uuid...), nil)
		}
		return nil
	})
	return result, err
}

// Get implements Store.
func (s *Bolt) Get(_ context.Context, uuid string) (*Event, error) {
	var e *Event
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		e, err = getEvent(tx, uuid)
		return err
	})
	return e, err
}

// FindByEventID implements Store.
func (s *Bolt) FindByEventID(_ context.Context, partnerKey, eventID string) (*Event, error) {
	var e *Event
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := byIDKey(partnerKey, eventID, "")
		c := tx.Bucket(bucketByID).Cursor()
		var last []byte
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			last = k
		}
		if last == nil {
			return ErrNotFound
		}
		var err error
		e, err = getEvent(tx, string(last[len(prefix):]))
		return err
	})
	return e, err
}

// Payload implements Store.
func (s *Bolt) Payload(_ context.Context, uuid string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPayloads).Get([]byte(uuid))
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Prune implements Store.
func (s *Bolt) Prune(ctx context.Context, olderThan, now time.Time) (int, error) {
	removed := 0
	err := s.write(ctx, func(tx *bolt.Tx) error {
		removed = 0
		exp := tx.Bucket(bucketDedupExp).Cursor()
		dedup := tx.Bucket(bucketDedup)
		limit := timeKey(now)
		for k, _ := exp.First(); k != nil && string(k[:8]) < string(limit); k, _ = exp.First() {
			key := k[8:]
			if v := dedup.Get(key); v != nil && string(v[:8]) == string(k[:8]) {
				if err := dedup.Delete(key); err != nil {
					return err
				}
			}
			if err := exp.Delete(); err != nil {
				return err
			}
		}
		events := tx.Bucket(bucketEvents)
		c := events.Cursor()
		var doomed []*Event
		for k, v := c.First(); k != nil && len(doomed) < 10000; k, v = c.Next() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %s is unreadable: %w", k, err)
			}
			if !e.ReceivedAt.Before(olderThan) {
				break // uuid v7 keys are in time order
			}
			if e.Finished() {
				doomed = append(doomed, &e)
			}
		}
		for _, e := range doomed {
			for _, del := range []struct {
				bucket []byte
				key    []byte
			}{{bucketEvents, []byte(e.UUID)}, {bucketPayloads, []byte(e.UUID)}, {bucketByID, byIDKey(e.PartnerKey(), e.EventID, e.UUID)}, {bucketReflect, []byte(e.UUID)}} {
				if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
					return err
				}
			}
		}
		attempts := tx.Bucket(bucketAttempts)
		for _, e := range doomed {
			prefix := []byte(e.UUID + "\x00")
			c := attempts.Cursor()
			for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Seek(prefix) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		removed = len(doomed)
		return nil
	})
	return removed, err
}

// Healthy implements Store.
func (s *Bolt) Healthy() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if p := s.lastErr.Load(); p != nil {
		return fmt.Errorf("the last commit failed: %w", *p)
	}
	return nil
}

// Close stops the committer after the queued writes and closes the file.
func (s *Bolt) Close() error {
	s.closeMu.Lock()
	if s.closed.Swap(true) {
		s.closeMu.Unlock()
		return nil
	}
	s.closeMu.Unlock()
	// Writes already queued are still committed before the loop sees closing.
	for len(s.writes) > 0 {
		time.Sleep(time.Millisecond)
	}
	close(s.closing)
	<-s.done
	return s.db.Close()
}

func getEvent(tx *bolt.Tx, uuid string) (*Event, error) {
	v := tx.Bucket(bucketEvents).Get([]byte(uuid))
	if v == nil {
		return nil, ErrNotFound
	}
	var e Event
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("event %s is unreadable: %w", uuid, err)
	}
	return &e, nil
}

// keyTime reads a timeKey back.
func keyTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))) //nolint:gosec // written by timeKey from an int64
}

func timeKey(t time.Time) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano())) //nolint:gosec // times after 1970 are positive
	return b
}

func byIDKey(partnerKey, eventID, uuid string) []byte {
	return []byte(partnerKey + "\x00" + eventID + "\x00" + uuid)
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// Check verifies the file's internal consistency (every page reachable once, no leaks).
func (s *Bolt) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

// Count returns the number of stored events.
func (s *Bolt) Count() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEvents).Stats().KeyN
		return nil
	})
	return n, err
}
