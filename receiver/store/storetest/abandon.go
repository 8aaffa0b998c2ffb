package storetest

import (
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// testAbandon: a delivery whose destination was removed is finished as Failed with the
// reason as its last error and no attempt; it is no longer due, is pruned with its event
// (its bytes given back), and a redelivery queues it again. A finished delivery stays.
func (h *harness) testAbandon(t *testing.T) {
	t.Run("a queued delivery is finished as Failed", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(-2*time.Hour), "orphan"))
		claimed, err := s.Claim(t.Context(), "ns/orders", "w1", at(0), time.Minute, 10)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("Claim = %d (%v), want the delivery", len(claimed), err)
		}
		e, err := s.Abandon(t.Context(), id, store.DefaultDestination, store.ReasonDestinationRemoved)
		if err != nil {
			t.Fatal(err)
		}
		got := mustGet(t, s, id)
		if e.Phase != store.PhaseFailed || got.Phase != store.PhaseFailed || got.LastError != store.ReasonDestinationRemoved || got.Attempts != 0 {
			t.Fatalf("after Abandon: phase %s, lastError %q, attempts %d; want Failed, %q, 0", got.Phase, got.LastError, got.Attempts, store.ReasonDestinationRemoved)
		}
		if d := got.Delivery(store.DefaultDestination); d == nil || d.Phase != store.PhaseFailed || d.LastError != store.ReasonDestinationRemoved {
			t.Fatalf("delivery after Abandon: %+v", d)
		}
		if n := dueCount(t, s, forever, id); n != 0 {
			t.Fatalf("due %d times after Abandon, want never", n)
		}
		if a := mustAttempts(t, s, id); len(a) != 0 {
			t.Fatalf("%d attempts recorded, want none", len(a))
		}
		// Abandoning again changes nothing.
		if _, err := s.Abandon(t.Context(), id, store.DefaultDestination, "other"); err != nil {
			t.Fatal(err)
		}
		sameEvent(t, "abandoned twice", mustGet(t, s, id), got)
		// A redelivery (the destination came back) queues it again.
		if n, err := s.RequeueFailed(t.Context(), "ns/orders", "", at(0)); err != nil || n != 1 {
			t.Fatalf("RequeueFailed = %d (%v), want the abandoned event", n, err)
		}
		if n := dueCount(t, s, at(0), id); n != 1 {
			t.Fatalf("due %d times after the redelivery, want once", n)
		}
	})
	t.Run("an abandoned event is pruned and its bytes given back", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(-2*time.Hour), "orphan"))
		if usage, err := s.Usage(t.Context()); err != nil || usage["ns/acme"] == 0 {
			t.Fatalf("usage %v (%v), want the event's bytes counted", usage, err)
		}
		if removed, err := s.Prune(t.Context(), store.Before(at(-time.Hour)), at(0)); err != nil || removed != 0 {
			t.Fatalf("Prune before Abandon removed %d (%v), want none (unfinished)", removed, err)
		}
		if _, err := s.Abandon(t.Context(), id, store.DefaultDestination, store.ReasonDestinationRemoved); err != nil {
			t.Fatal(err)
		}
		if removed, err := s.Prune(t.Context(), store.Before(at(-time.Hour)), at(0)); err != nil || removed != 1 {
			t.Fatalf("Prune after Abandon removed %d (%v), want the abandoned event", removed, err)
		}
		if usage, err := s.Usage(t.Context()); err != nil || usage["ns/acme"] != 0 {
			t.Fatalf("usage after pruning %v (%v), want nothing left for ns/acme", usage, err)
		}
	})
	t.Run("a finished delivery stays", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(-2*time.Hour), "done"))
		mustRecord(t, s, id, attempt(1, at(-time.Hour), time.Second, 200, ""), delivered)
		before := mustGet(t, s, id)
		if _, err := s.Abandon(t.Context(), id, store.DefaultDestination, store.ReasonDestinationRemoved); err != nil {
			t.Fatal(err)
		}
		sameEvent(t, "delivered, then abandoned", mustGet(t, s, id), before)
	})
}
