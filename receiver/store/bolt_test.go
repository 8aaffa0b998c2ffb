package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func ingest(id, eventID string, at time.Time, phase string) Ingest {
	return Ingest{
		Event: Event{UUID: id, EventID: eventID, PartnerNamespace: "ns", Partner: "acme", EndpointNamespace: "ns", Endpoint: "e",
			ReceivedAt: at, Phase: phase},
		Payload:     []byte(`{"id":"` + eventID + `"}`),
		DedupKey:    "ns/acme\x00ns/e\x00" + eventID,
		DedupWindow: time.Hour,
	}
}

// goIngest ingests the i-th test event in a goroutine of wg, sending the outcome to errs.
func goIngest(s *Embedded, wg *sync.WaitGroup, i int, errs chan<- error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := s.Ingest(context.Background(), ingest(fmt.Sprintf("u%05d", i), fmt.Sprintf("e%d", i), time.Now(), PhaseStored))
		errs <- err
	}()
}

func TestConcurrentIngestsShareCommits(t *testing.T) {
	var mu sync.Mutex
	commits, events := 0, 0
	s, err := OpenBolt(t.TempDir(), func(_ time.Duration, n int) { mu.Lock(); commits++; events += n; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	const n = 400
	errs := make(chan error, n)
	for i := range n {
		goIngest(s, &wg, i, errs)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	count, _ := s.Count()
	t.Logf("%d concurrent ingests: %d group commits", n, commits)
	if count != n || events != n {
		t.Fatalf("stored %d, committed %d, want %d", count, events, n)
	}
	if commits >= n {
		t.Errorf("%d commits for %d concurrent writes: no grouping", commits, n)
	}
}

// TestPruneStaysOutOfTheGroupCommit: pruning runs in transactions of its own, never as an
// op of the ingest group commit, whose batches it would otherwise hold up.
func TestPruneStaysOutOfTheGroupCommit(t *testing.T) {
	var commits atomic.Int64
	s, err := OpenBolt(t.TempDir(), func(time.Duration, int) { commits.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().Add(-48 * time.Hour)
	for i := range 600 {
		if _, err := s.Ingest(context.Background(), ingest(fmt.Sprintf("a%05d", i), fmt.Sprintf("e%d", i), t0, PhaseStored)); err != nil {
			t.Fatal(err)
		}
	}
	before := commits.Load()
	n, err := s.Prune(context.Background(), Before(time.Now().Add(-time.Hour)), time.Now())
	if err != nil || n != 600 {
		t.Fatalf("pruned %d (%v)", n, err)
	}
	if after := commits.Load(); after != before {
		t.Fatalf("pruning went through the group commit: %d commits", after-before)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestUsageCountedForAnOldFile: a file written before per-partner quotas (no usage
// bucket) gets each partner's stored bytes counted when it is opened.
func TestUsageCountedForAnOldFile(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Ingest(context.Background(), ingest(fmt.Sprintf("a%d", i), fmt.Sprintf("e%d", i), time.Now(), PhaseStored)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.boltDB().Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketUsage) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	usage, err := s.Usage(context.Background())
	if err != nil || usage["ns/acme"] != int64(3*len(`{"id":"e0"}`)) {
		t.Fatalf("usage %v (%v)", usage, err)
	}
}

// TestDueIndexMigrates: a file with the single due index of the previous release opens
// with its queued events in their per-destination queues.
func TestDueIndexMigrates(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute)
	for i := range 3 {
		if _, err := s.Ingest(context.Background(), ingest(fmt.Sprintf("q%d", i), fmt.Sprintf("e%d", i), t0, PhaseQueued)); err != nil {
			t.Fatal(err)
		}
	}
	// Rewrite the queues as the previous release kept them: time(8) + uuid in "due".
	if err := s.boltDB().Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket(bucketDueV1)
		if err != nil {
			return err
		}
		for i := range 3 {
			if err := old.Put(append(timeKey(t0), fmt.Sprintf("q%d", i)...), nil); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketQueues); err != nil {
			return err
		}
		_, err = tx.CreateBucket(bucketQueues)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	due, err := s.Due(context.Background(), "ns/e", time.Now(), 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("after migration %d due (%v), want 3", len(due), err)
	}
}

// The file lock means one process holds the embedded store: claims found in the file at
// open were made by a process that is gone, and its deliveries must not wait out their
// leases after a restart.
func TestReopenReleasesDeadClaims(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.Ingest(t.Context(), ingest("u1", "e1", now, PhaseQueued)); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Claim(t.Context(), "ns/e", "gone", now, time.Hour, 10); err != nil || len(evs) != 1 {
		t.Fatalf("Claim = %d (%v)", len(evs), err)
	}
	if due, _ := s.Due(t.Context(), "ns/e", now, 10); len(due) != 0 {
		t.Fatalf("a claimed delivery is due: %v", due)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if evs, err := s.Claim(t.Context(), "ns/e", "next", now, time.Hour, 10); err != nil || len(evs) != 1 {
		t.Fatalf("after reopening, Claim = %d (%v): the dead claim still holds", len(evs), err)
	}
}

// A file from before the partner API's listing gets its partner index when it is opened.
func TestPartnerIndexIsBuiltForAnOldFile(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.Ingest(t.Context(), ingest("u1", "e1", now, PhaseQueued)); err != nil {
		t.Fatal(err)
	}
	if err := s.boltDB().Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketByPartner) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = OpenBolt(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, _, err := s.ListEvents(t.Context(), "ns/acme", ListQuery{Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].UUID != "u1" {
		t.Fatalf("after reopening: %v (%v), want u1 listed", evs, err)
	}
}

// TestEventFromBeforeFanOut: a file written by the release before fan-out (an event
// record without deliveries, queued under its endpoint key) is delivered as one delivery
// to the default destination, without a migration.
func TestEventFromBeforeFanOut(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	received := time.Now().Add(-time.Minute).UTC()
	old := fmt.Sprintf(`{"uuid":"019593fa-5d95-7000-8000-000000000001","eventId":"e1","partnerNamespace":"ns","partner":"acme","endpointNamespace":"ns","endpoint":"orders","receivedAt":%q,"phase":"Retrying","attempts":2,"lastResponseCode":503,"lastError":"HTTP 503","version":3}`, received.Format(time.RFC3339Nano))
	if err := s.boltDB().Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketEvents).Put([]byte("019593fa-5d95-7000-8000-000000000001"), []byte(old)); err != nil {
			return err
		}
		return tx.Bucket(bucketQueues).Put(append(append([]byte("ns/orders\x00"), timeKey(received)...), "019593fa-5d95-7000-8000-000000000001"...), nil)
	}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Claim(t.Context(), "ns/orders", "w", time.Now(), time.Minute, 10)
	if err != nil || len(ds) != 1 || ds[0].Destination != DefaultDestination || ds[0].State() == nil || ds[0].State().Attempts != 2 {
		t.Fatalf("Claim = %+v (%v), want the old event's one default delivery with its 2 attempts", ds, err)
	}
	e, err := s.RecordAttempt(t.Context(), "w", ds[0].UUID, Attempt{Number: 3, StartedAt: time.Now(), ResponseCode: 200}, Outcome{Phase: PhaseDelivered})
	if err != nil || e.Phase != PhaseDelivered || e.Attempts != 3 {
		t.Fatalf("after the attempt: %+v (%v)", e, err)
	}
	if depth, _ := s.QueueDepth(t.Context()); depth != 0 {
		t.Fatalf("queue depth %d after delivery, want 0", depth)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// boltDB is the bbolt file under a store opened with OpenBolt, for tests that write a
// file as an earlier release left it.
func (s *Embedded) boltDB() *bolt.DB { return s.eng.(boltEngine).db }

// TestFullCommitQueueBoundsTheWait: with the committer stalled and its queue full, a
// write waits its bound, then fails as a deadline (a 503 at the pipeline) and stores
// nothing; the queued writes are committed once the committer goes on.
func TestFullCommitQueueBoundsTheWait(t *testing.T) {
	stalled, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s, err := OpenBolt(t.TempDir(), func(time.Duration, int) {
		once.Do(func() { close(stalled); <-release })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.queueWait = 50 * time.Millisecond
	var wg sync.WaitGroup
	queued := cap(s.writes) + 1 // one in the stalled commit, then a full queue
	errs := make(chan error, queued)
	for i := range queued {
		goIngest(s, &wg, i, errs)
		if i == 0 {
			<-stalled
		}
	}
	for len(s.writes) < cap(s.writes) {
		time.Sleep(time.Millisecond)
	}
	if _, bounded := Store(s).(BoundedIngest); !bounded {
		t.Fatal("the embedded store does not say it bounds its ingest waits")
	}
	started := time.Now()
	_, err = s.Ingest(context.Background(), ingest("late", "late", time.Now(), PhaseStored))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write into a full queue: %v, want a deadline", err)
	}
	if waited := time.Since(started); waited < s.queueWait {
		t.Fatalf("gave up after %s, before its bound %s", waited, s.queueWait)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.Count(); n != queued {
		t.Fatalf("stored %d events, want the %d queued ones and not the refused one", n, queued)
	}
}
