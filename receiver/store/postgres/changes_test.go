package postgres_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookgate/hookgate/receiver/store"
)

// TestChangesReachEveryReplica: an event stored through one replica is in another's
// change log, at or above the position that replica gave a list just before, so a watch
// served by any replica tells of it.
func TestChangesReachEveryReplica(t *testing.T) {
	u := freshSchema(t)
	one, two := open(t, u), open(t, u)
	t.Cleanup(func() { _ = one.Close(); _ = two.Close() })
	before, err := two.ListPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cursor, served := two.Changes().From(before)
	if !served {
		t.Fatalf("a watch from the list position %d is not served", before)
	}
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := one.Ingest(t.Context(), store.Ingest{Event: store.Event{UUID: id, EventID: "e1", PartnerNamespace: "ns", Partner: "acme",
		EndpointNamespace: "ns", Endpoint: "orders", ReceivedAt: now, Phase: store.PhaseStored}, Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	stored := time.Now()
	deadline := time.After(5 * time.Second)
	for {
		changes, next, more, lost := two.Changes().Read(cursor, 100)
		if lost {
			t.Fatal("the change log lost the watch's place")
		}
		cursor = next
		for _, c := range changes {
			if c.UUID == id {
				if c.Position < before || c.Kind != store.ChangeAdded || c.Namespace != "ns" {
					t.Fatalf("change %+v, want Added in ns at or above %d", c, before)
				}
				t.Logf("replica two told of replica one's event %s after its commit", time.Since(stored).Round(time.Millisecond))
				return
			}
		}
		if len(changes) > 0 {
			continue
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatal("replica two's change log has no word of the event within 5s")
		}
	}
}
