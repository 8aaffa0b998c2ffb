package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
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
