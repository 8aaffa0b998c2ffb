package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T) *Bolt {
	t.Helper()
	s, err := OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ingest(id, eventID string, at time.Time, phase string) Ingest {
	return Ingest{
		Event: Event{UUID: id, EventID: eventID, PartnerNamespace: "ns", Partner: "acme", EndpointNamespace: "ns", Endpoint: "e",
			ReceivedAt: at, Phase: phase},
		Payload:     []byte(`{"id":"` + eventID + `"}`),
		DedupKey:    "ns/acme\x00ns/e\x00" + eventID,
		DedupWindow: time.Hour,
	}
}

func TestDedupWithinWindowOnly(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	t0 := time.Now()
	first, err := s.Ingest(ctx, ingest("0001", "evt_1", t0, PhaseQueued))
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v %v", first, err)
	}
	dup, err := s.Ingest(ctx, ingest("0002", "evt_1", t0.Add(59*time.Minute), PhaseQueued))
	if err != nil || !dup.Duplicate || dup.Event.UUID != "0001" {
		t.Fatalf("within the window: %+v %v", dup, err)
	}
	later, err := s.Ingest(ctx, ingest("0003", "evt_1", t0.Add(61*time.Minute), PhaseQueued))
	if err != nil || later.Duplicate || later.Event.UUID != "0003" {
		t.Fatalf("after the window: %+v %v", later, err)
	}
	// The status lookup by event id finds the latest.
	got, err := s.FindByEventID(ctx, "ns/acme", "evt_1")
	if err != nil || got.UUID != "0003" {
		t.Fatalf("FindByEventID: %+v %v", got, err)
	}
	if _, err := s.FindByEventID(ctx, "ns/other", "evt_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another partner's lookup: %v", err)
	}
	payload, err := s.Payload(ctx, "0001")
	if err != nil || string(payload) != `{"id":"evt_1"}` {
		t.Fatalf("payload %q %v", payload, err)
	}
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Ingest(context.Background(), ingest(fmt.Sprintf("u%04d", i), fmt.Sprintf("e%d", i), time.Now(), PhaseStored))
			errs <- err
		}()
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

// Event uuids are v7, so keys sort by time; the test's ids do too.
func TestPrune(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	t0 := time.Now().Add(-48 * time.Hour)
	for i, phase := range []string{PhaseDelivered, PhaseQueued, PhaseStored} {
		if _, err := s.Ingest(ctx, ingest(fmt.Sprintf("a-old%d", i), fmt.Sprintf("o%d", i), t0, phase)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Ingest(ctx, ingest("b-new", "n", time.Now(), PhaseDelivered)); err != nil {
		t.Fatal(err)
	}
	removed, err := s.Prune(ctx, time.Now().Add(-24*time.Hour), time.Now())
	if err != nil || removed != 2 {
		t.Fatalf("pruned %d (%v), want the 2 finished old events", removed, err)
	}
	for id, want := range map[string]bool{"a-old0": false, "a-old1": true, "a-old2": false, "b-new": true} {
		_, err := s.Get(ctx, id)
		if (err == nil) != want {
			t.Errorf("%s present=%v, want %v", id, err == nil, want)
		}
	}
	// Expired dedup keys are gone: the old id is new again.
	again, err := s.Ingest(ctx, ingest("c-again", "o0", time.Now(), PhaseStored))
	if err != nil || again.Duplicate {
		t.Fatalf("after pruning: %+v %v", again, err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	s, err := OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(context.Background(), ingest("x", "x", time.Now(), PhaseStored)); !errors.Is(err, ErrClosed) {
		t.Fatalf("ingest into a closed store: %v", err)
	}
	if s.Healthy() == nil {
		t.Fatal("a closed store reports healthy")
	}
}
