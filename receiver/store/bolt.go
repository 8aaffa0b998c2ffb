package store

import (
	"bytes"
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
	bucketQueues   = []byte("queues")   // queue key \x00 due time(8) + uuid -> nil: the delivery queues
	// bucketDueV1 is the single due index of files written before per-destination queues.
	bucketDueV1 = []byte("due")
	bucketUsage = []byte("usage") // partner key -> payload bytes stored(8)
)

// maxBatch bounds one group commit, so that one transaction stays short.
const maxBatch = 512

// CommitObserver receives each group commit's duration and size (metrics).
type CommitObserver func(d time.Duration, batch int)

// Embedded is the embedded store: buckets of ordered keys on one engine (bbolt or
// Pebble) in the data directory. Writes from concurrent requests are grouped into one
// transaction and one fsync by a single committer goroutine: it takes whatever is
// waiting, commits it, answers everyone, and takes the next group, so the batch size
// follows the load with no added delay (groupcommit.go).
type Embedded struct {
	eng kvEngine
	// pipelined is eng when it can commit without waiting for the fsync, else nil.
	pipelined pipelinedEngine
	writes    chan *writeOp
	// syncing holds the groups applied and waiting for their fsync (pipelined only).
	syncing chan syncingGroup
	// changes is the log of committed changes of events, for the events API's watches.
	changes  *ChangeLog
	observe  CommitObserver
	closed   atomic.Bool
	closing  chan struct{}
	done     chan struct{}
	closeMu  sync.RWMutex
	lastErr  atomic.Pointer[error]
	failures atomic.Int64
	room     *diskRoom
	// queueWait bounds a write's wait for room in the commit queue (defaultQueueWait).
	queueWait time.Duration
}

// defaultQueueWait is how long a write waits for room in a full commit queue: a store
// that stopped committing costs a request that long, then a 503.
const defaultQueueWait = 10 * time.Second

// IngestWaitBound implements BoundedIngest: a write waits at most queueWait to be
// queued, and once queued it is committed or failed by the loop.
func (s *Embedded) IngestWaitBound() time.Duration { return s.queueWait }

// boltFile is the bbolt engine's file in the data directory.
const boltFile = "events.db"

// OpenBolt opens (or creates) the bbolt store file in dir.
func OpenBolt(dir string, observe CommitObserver) (*Embedded, error) {
	db, err := openBoltFile(dir)
	if err != nil {
		return nil, err
	}
	return newEmbedded(boltEngine{db}, observe, nil), nil
}

// openBoltFile opens the bbolt file and brings what it holds up to this release's layout.
func openBoltFile(dir string) (*bolt.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, boltFile), 0o600, &bolt.Options{
		Timeout: 5 * time.Second, // another process holding the file
		// Allocation from a large freelist (a store that prunes) in constant time; the
		// array type measured 6% fewer instructions per event, but on a fresh file only.
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the event store: %w", err)
	}
	if err := db.Update(func(raw *bolt.Tx) error {
		tx := boltTx{raw}
		countUsage := raw.Bucket(bucketUsage) == nil
		indexPartners := raw.Bucket(bucketByPartner) == nil
		for _, b := range allBuckets {
			if _, err := raw.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := migrateDueIndex(raw); err != nil {
			return err
		}
		if err := releaseDeadLeases(tx); err != nil {
			return err
		}
		if indexPartners {
			// A file from before the partner API's listing: index what it holds.
			if err := buildPartnerIndex(tx); err != nil {
				return err
			}
		}
		if err := buildPhaseIndexes(tx); err != nil {
			return err
		}
		if err := buildListingIndexes(tx); err != nil {
			return err
		}
		if countUsage {
			// A file from before per-partner quotas: count what each partner stores.
			return recountUsage(tx)
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("preparing the event store: %w", err)
	}
	return db, nil
}

// allBuckets are the buckets of this release's layout.
var allBuckets = [][]byte{bucketEvents, bucketPayloads, bucketDedup, bucketDedupExp, bucketByID, bucketQueues, bucketAttempts, bucketReflect, bucketTokens, bucketUsage, bucketLeases, bucketByPartner, bucketDaily, bucketFailed, bucketFinished, bucketDailyByDay, bucketByNamespace, bucketByEndpoint, bucketByPhase}

// newEmbedded starts the store's committer on eng; room, if any, is the disk's reserve.
func newEmbedded(eng kvEngine, observe CommitObserver, room *diskRoom) *Embedded {
	if observe == nil {
		observe = func(time.Duration, int) {}
	}
	s := &Embedded{eng: eng, writes: make(chan *writeOp, 4096), syncing: make(chan syncingGroup, syncingGroups), observe: observe, room: room, queueWait: defaultQueueWait, closing: make(chan struct{}), done: make(chan struct{}), changes: newSequencedChangeLog(0)}
	s.pipelined, _ = eng.(pipelinedEngine)
	go s.commitLoop()
	go s.syncLoop()
	return s
}

// Engine names the engine under the store: EngineBolt or EnginePebble.
func (s *Embedded) Engine() string { return s.eng.name() }

// Ingest implements Store.
func (s *Embedded) Ingest(ctx context.Context, in Ingest) (IngestResult, error) {
	var result IngestResult
	overQuota := false
	// An event's record and indexes take about a kilobyte besides its payload.
	err := s.writeGrowing(ctx, int64(len(in.Payload))+1024, func(tx kvTx) error {
		result, overQuota = IngestResult{Event: in.Event}, false
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
		}
		// Refused for its quota, the event writes nothing (not even its dedup key); it is
		// a result, not a failed op, so that the group commits without a rerun.
		usage := tx.Bucket(bucketUsage)
		partnerKey := []byte(in.Event.PartnerKey())
		used := readCounter(usage.Get(partnerKey))
		if in.QuotaBytes > 0 && used+int64(len(in.Payload)) > in.QuotaBytes {
			overQuota = true
			return nil
		}
		if err := usage.Put(partnerKey, counter(used+int64(len(in.Payload)))); err != nil {
			return err
		}
		if in.DedupKey != "" {
			dedup := tx.Bucket(bucketDedup)
			expiry := in.Event.ReceivedAt.Add(in.DedupWindow)
			if err := dedup.Put([]byte(in.DedupKey), append(timeKey(expiry), in.Event.UUID...)); err != nil {
				return err
			}
			if err := timeOrdered(tx, bucketDedupExp).Put(append(timeKey(expiry), in.DedupKey...), nil); err != nil {
				return err
			}
		}
		uuid := []byte(in.Event.UUID)
		stored := in.Event
		stored.Version = 0
		stored.Normalize()
		stored.Aggregate()
		if err := putEvent(tx, &stored, ""); err != nil {
			return err
		}
		result.Event = stored
		if err := timeOrdered(tx, bucketPayloads).Put(uuid, in.Payload); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByID).Put(byIDKey(in.Event.PartnerKey(), in.Event.EventID, in.Event.UUID), nil); err != nil {
			return err
		}
		if err := timeOrdered(tx, bucketByPartner).Put(byPartnerKey(in.Event.PartnerKey(), in.Event.UUID), nil); err != nil {
			return err
		}
		if err := indexForListing(tx, &stored); err != nil {
			return err
		}
		for i := range stored.Deliveries {
			if d := &stored.Deliveries[i]; d.Phase == PhaseQueued {
				if err := timeOrdered(tx, bucketQueues).Put(dueKey(&stored, d.Destination, stored.DueAt(d)), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && overQuota {
		return IngestResult{}, ErrQuotaExceeded
	}
	return result, err
}

// Get implements Store.
func (s *Embedded) Get(_ context.Context, uuid string) (*Event, error) {
	var e *Event
	err := s.eng.view(func(tx kvTx) error {
		var err error
		e, err = getEvent(tx, uuid)
		return err
	})
	return e, err
}

// FindByEventID implements Store.
func (s *Embedded) FindByEventID(_ context.Context, partnerKey, eventID string) (*Event, error) {
	var e *Event
	err := s.eng.view(func(tx kvTx) error {
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
func (s *Embedded) Payload(_ context.Context, uuid string) ([]byte, error) {
	var out []byte
	err := s.eng.view(func(tx kvTx) error {
		v := tx.Bucket(bucketPayloads).Get([]byte(uuid))
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Prune implements Store. Each transaction removes at most pruneBatch events or dedup
// keys, outside the group commit, so that ingest waits at most one small transaction.
func (s *Embedded) Prune(ctx context.Context, cutoff Cutoff, now time.Time) (int, error) {
	for {
		more, err := s.pruneDedupBatch(now)
		if err != nil || !more {
			if err != nil {
				return 0, err
			}
			break
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	removed := 0
	var from []byte
	for {
		n, next, err := s.pruneEventBatch(cutoff, from)
		removed += n
		if err != nil || next == nil {
			return removed, err
		}
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		from = next
	}
}

const (
	pruneBatch   = 256  // removals per transaction
	pruneScanMax = 4096 // events looked at per transaction
)

// update runs fn in a transaction of its own, unless the store is closed.
func (s *Embedded) update(fn func(tx kvTx) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	tx := &changeTx{}
	err := s.eng.update(func(inner kvTx) error {
		tx.kvTx, tx.changes = inner, tx.changes[:0]
		return fn(tx)
	})
	if err == nil {
		s.changes.appendSequenced(tx.changes)
	}
	return err
}

// pruneDedupBatch removes up to pruneBatch dedup keys expired at now; more reports
// whether some may remain.
func (s *Embedded) pruneDedupBatch(now time.Time) (more bool, err error) {
	err = s.update(func(tx kvTx) error {
		more = false
		exp := tx.Bucket(bucketDedupExp).Cursor()
		dedup := tx.Bucket(bucketDedup)
		limit := timeKey(now)
		n := 0
		for k, _ := exp.First(); k != nil && string(k[:8]) < string(limit); k, _ = exp.First() {
			if n == pruneBatch {
				more = true
				return nil
			}
			key := k[8:]
			if v := dedup.Get(key); v != nil && string(v[:8]) == string(k[:8]) {
				if err := dedup.Delete(key); err != nil {
					return err
				}
			}
			if err := exp.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return more, err
}

// pruneEventBatch removes finished events past their endpoint's cutoff, up to
// pruneBatch of them, reading the finished index from key from on (the first when nil):
// each endpoint's finished events are in received order, so the batch reads only the
// events it removes, and one key per endpoint whose next event is not due yet, never the
// events still retained. It returns where the next batch starts, or nil when done.
func (s *Embedded) pruneEventBatch(cutoff Cutoff, from []byte) (removed int, next []byte, err error) {
	err = s.update(func(tx kvTx) error {
		removed, next = 0, nil
		c := tx.Bucket(bucketFinished).Cursor()
		k, _ := c.First()
		if from != nil {
			k, _ = c.Seek(from)
		}
		var doomed [][]byte
		for looked := 0; k != nil; looked++ {
			if len(doomed) == pruneBatch || looked == pruneScanMax {
				next = bytes.Clone(k)
				break
			}
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) < i+9 {
				return fmt.Errorf("malformed finished-index key %q", k)
			}
			endpoint := k[:i]
			if bytes.Compare(k[i+1:i+9], timeKey(cutoff.For(string(endpoint)))) < 0 {
				doomed = append(doomed, bytes.Clone(k))
				k, _ = c.Next()
				continue
			}
			// This endpoint's next finished event is retained, and so are all after it.
			k, _ = c.Seek(nextPrefix(endpoint))
		}
		for _, key := range doomed {
			e, err := getEvent(tx, string(key[bytes.IndexByte(key, 0)+9:]))
			if errors.Is(err, ErrNotFound) {
				// An index key without its event: nothing else refers to it.
				if err := tx.Bucket(bucketFinished).Delete(key); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if err := deleteEvent(tx, e); err != nil {
				return err
			}
		}
		removed = len(doomed)
		return nil
	})
	return removed, next, err
}

// deleteEvent removes an event with its payload, indexes and attempts, and gives its
// bytes back to its partner's quota.
func deleteEvent(tx kvTx, e *Event) error {
	noteChange(tx, e, ChangeDeleted)
	if err := unindex(tx, e); err != nil {
		return err
	}
	if err := unindexForListing(tx, e); err != nil {
		return err
	}
	payloadBytes := int64(len(tx.Bucket(bucketPayloads).Get([]byte(e.UUID))))
	for _, del := range []struct {
		bucket []byte
		key    []byte
	}{{bucketEvents, []byte(e.UUID)}, {bucketPayloads, []byte(e.UUID)}, {bucketByID, byIDKey(e.PartnerKey(), e.EventID, e.UUID)}, {bucketByPartner, byPartnerKey(e.PartnerKey(), e.UUID)}, {bucketReflect, []byte(e.UUID)}} {
		if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return err
		}
	}
	c := tx.Bucket(bucketAttempts).Cursor()
	prefix := []byte(e.UUID + "\x00")
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	usage := tx.Bucket(bucketUsage)
	key := []byte(e.PartnerKey())
	left := readCounter(usage.Get(key)) - payloadBytes
	if left <= 0 {
		return usage.Delete(key)
	}
	return usage.Put(key, counter(left))
}

// Usage implements Store.
func (s *Embedded) Usage(_ context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.eng.view(func(tx kvTx) error {
		return tx.Bucket(bucketUsage).ForEach(func(k, v []byte) error {
			out[string(k)] = readCounter(v)
			return nil
		})
	})
	return out, err
}

// recountUsage sets every partner's usage from the stored events.
func recountUsage(tx kvTx) error {
	totals := map[string]int64{}
	if err := tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("event %s is unreadable: %w", k, err)
		}
		totals[e.PartnerKey()] += int64(len(tx.Bucket(bucketPayloads).Get(k)))
		return nil
	}); err != nil {
		return err
	}
	usage := tx.Bucket(bucketUsage)
	for k, n := range totals {
		if err := usage.Put([]byte(k), counter(n)); err != nil {
			return err
		}
	}
	return nil
}

func counter(n int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(max(n, 0))) //nolint:gosec // clamped to zero
	return b
}

func readCounter(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b)) //nolint:gosec // written by counter from a non-negative int64
}

// Healthy implements Store.
func (s *Embedded) Healthy() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.room != nil && s.room.full.Load() {
		// Looked at again, so that room made by pruning (or by hand) ends it.
		if err := s.room.admit(0); err != nil {
			return err
		}
	}
	if p := s.lastErr.Load(); p != nil {
		return fmt.Errorf("the last commit failed: %w", *p)
	}
	return nil
}

// Close stops the committer after the queued writes and closes the file.
func (s *Embedded) Close() error {
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
	return s.eng.close()
}

func getEvent(tx kvTx, uuid string) (*Event, error) {
	v := tx.Bucket(bucketEvents).Get([]byte(uuid))
	if v == nil {
		return nil, ErrNotFound
	}
	var e Event
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("event %s is unreadable: %w", uuid, err)
	}
	e.Normalize()
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

// Check verifies the engine's own structures (bbolt: every page reachable once, no leaks;
// Pebble: every block's checksum).
func (s *Embedded) Check() error { return s.eng.check() }

// Count returns the number of stored events.
func (s *Embedded) Count() (int, error) { return s.eng.count(bucketEvents) }
