package storetest

import (
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// testChangeFeed: the events API's watches. A change committed after a list position is
// in the change log at or above it (an ingest Added, a delivery's outcome Modified), in
// the partner's namespace; a position from before the log began is not served.
func (h *harness) testChangeFeed(t *testing.T) {
	s := h.fresh(t)
	feed, ok := s.(store.ChangeFeed)
	if !ok {
		t.Fatalf("%T has no change feed: the events API cannot watch it", s)
	}
	before, err := feed.ListPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	id := add(t, s, newIngest(at(0), "e1", partner("ns", "acme")))
	c := awaitChange(t, feed, before, id)
	if c.Kind != store.ChangeAdded || c.Namespace != "ns" {
		t.Fatalf("the ingest's change = %+v, want Added in ns", c)
	}

	mid, err := feed.ListPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if mid < before {
		t.Fatalf("the list position went back: %d, then %d", before, mid)
	}
	d := claimOne(t, s, store.QueueKey("ns/orders", store.DefaultDestination), at(time.Second))
	mustRecord(t, s, d.UUID, attempt(1, at(time.Second), time.Millisecond, 200, ""), delivered)
	if c := awaitChange(t, feed, mid, id); c.Kind != store.ChangeModified || c.Position < mid {
		t.Fatalf("the delivery's change = %+v, want Modified at or above %d", c, mid)
	}
	if _, served := feed.Changes().From(0); served {
		t.Fatal("a watch from position 0, before the log began, is served: it would miss changes")
	}
}

// awaitChange reads the log from position p until it tells of id, for a few seconds.
func awaitChange(t *testing.T, feed store.ChangeFeed, p uint64, id string) store.Change {
	t.Helper()
	log := feed.Changes()
	cursor, served := log.From(p)
	if !served {
		t.Fatalf("a watch from %d, a list position, is not served", p)
	}
	deadline := time.After(5 * time.Second)
	for {
		changes, next, more, lost := log.Read(cursor, 100)
		if lost {
			t.Fatal("the change log lost the watch's place")
		}
		cursor = next
		for _, c := range changes {
			if c.UUID == id && c.Position >= p {
				return c
			}
		}
		if len(changes) > 0 {
			continue
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no change of %s at or above %d within 5s", id, p)
		}
	}
}
