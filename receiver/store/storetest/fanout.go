package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// toDestinations is an event that its endpoint's filters sent to these destinations.
func toDestinations(names ...string) option {
	return func(in *store.Ingest) {
		in.Event.Deliveries = nil
		for _, n := range names {
			in.Event.Deliveries = append(in.Event.Deliveries, store.DeliveryState{Destination: n, Phase: store.PhaseQueued})
		}
	}
}

func to(destination string, a store.Attempt) store.Attempt {
	a.Destination = destination
	return a
}

func claimOne(t *testing.T, s store.Store, queue string, now time.Time) store.Delivery {
	t.Helper()
	ds, err := s.Claim(t.Context(), queue, worker, now, time.Minute, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim(%s) = %d deliveries (%v), want 1", queue, len(ds), err)
	}
	return ds[0]
}

func phases(e store.Event) map[string]string {
	out := map[string]string{}
	for _, d := range e.Deliveries {
		out[d.Destination] = d.Phase
	}
	return out
}

// testFanOut: an event taken by several destinations is one delivery per destination,
// each in its own queue with its own attempts, backoff and retry budget; the event's
// phase is their aggregate.
func (h *harness) testFanOut(t *testing.T) {
	const (
		qBilling = "ns/orders/billing"
		qAudit   = "ns/orders/audit"
		qDefault = "ns/orders"
	)
	now := at(time.Minute)

	t.Run("one queue per destination, claimed independently", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(0), "f1", toDestinations(store.DefaultDestination, "billing", "audit")))
		queues, err := s.DueQueues(t.Context(), now)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, q := range queues {
			keys = append(keys, q.Key)
		}
		if want := []string{qDefault, qAudit, qBilling}; !slices.Equal(keys, want) {
			t.Fatalf("queues = %v, want %v", keys, want)
		}
		d := claimOne(t, s, qBilling, now)
		if d.UUID != id || d.Destination != "billing" || d.State() == nil || d.State().Phase != store.PhaseQueued {
			t.Fatalf("claimed %+v, want event %s for billing", d, id)
		}
		// The billing claim does not hide the same event's other deliveries.
		if got := claimOne(t, s, qAudit, now); got.Destination != "audit" {
			t.Fatalf("claimed %s from the audit queue", got.Destination)
		}
		if e := mustGet(t, s, id); e.Phase != store.PhaseQueued || len(e.Deliveries) != 3 {
			t.Fatalf("after the claims: %+v", e)
		}
	})

	t.Run("attempts, backoff and the aggregate are per destination", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(0), "f2", toDestinations("billing", "audit")))
		claimOne(t, s, qBilling, now)
		e := mustRecord(t, s, id, to("billing", attempt(1, now, time.Second, 200, "")), delivered)
		if e.Phase != store.PhaseDelivering {
			t.Fatalf("one of two delivered: phase %s, want Delivering", e.Phase)
		}
		claimOne(t, s, qAudit, now)
		e = mustRecord(t, s, id, to("audit", attempt(1, now, time.Second, 503, "HTTP 503")), retrying(now.Add(time.Minute)))
		if e.Phase != store.PhaseRetrying || e.Attempts != 2 || e.NextAttemptAt == nil || !normTime(*e.NextAttemptAt).Equal(normTime(now.Add(time.Minute))) {
			t.Fatalf("one delivered, one retrying: %+v", e)
		}
		if got := phases(e); got["billing"] != store.PhaseDelivered || got["audit"] != store.PhaseRetrying {
			t.Fatalf("deliveries = %v", got)
		}
		if due := dueIDs(t, s, now.Add(30*time.Second), 10); len(due) != 0 {
			t.Fatalf("due before audit's retry: %v (billing is done)", due)
		}
		d := claimOne(t, s, qAudit, now.Add(time.Minute))
		if d.State().Attempts != 1 {
			t.Fatalf("audit's own attempts = %d, want 1 (billing's do not count)", d.State().Attempts)
		}
		e = mustRecord(t, s, id, to("audit", attempt(2, now.Add(time.Minute), time.Second, 410, "HTTP 410")), failed)
		if e.Phase != store.PhaseFailed || e.LastResponseCode != 410 || e.DeliveredAt != nil {
			t.Fatalf("one delivered, one failed: %+v, want Failed with the last attempt's code", e)
		}
		if n, total := e.DeliveredCount(); n != 1 || total != 2 {
			t.Fatalf("DeliveredCount = %d/%d, want 1/2", n, total)
		}
		got, err := s.Attempts(t.Context(), id)
		if err != nil || len(got) != 3 {
			t.Fatalf("Attempts = %v (%v), want 3", got, err)
		}
		var dests []string
		for _, a := range got {
			dests = append(dests, a.Destination)
		}
		if want := []string{"audit", "billing", "audit"}; !slices.Equal(dests, want) {
			t.Fatalf("attempts' destinations = %v, want %v (by number, then destination)", dests, want)
		}
	})

	t.Run("requeue: the failed deliveries, or the one named", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(0), "f3", toDestinations("billing", "audit")))
		claimOne(t, s, qBilling, now)
		mustRecord(t, s, id, to("billing", attempt(1, now, time.Second, 200, "")), delivered)
		claimOne(t, s, qAudit, now)
		mustRecord(t, s, id, to("audit", attempt(1, now, time.Second, 400, "HTTP 400")), failed)
		if n, err := s.RequeueFailed(t.Context(), "ns/orders", "", now); err != nil || n != 1 {
			t.Fatalf("RequeueFailed = %d (%v), want 1", n, err)
		}
		e := mustGet(t, s, id)
		if got := phases(e); got["billing"] != store.PhaseDelivered || got["audit"] != store.PhaseQueued {
			t.Fatalf("after RequeueFailed: %v; the delivered one must not be sent again", got)
		}
		if due := dueIDs(t, s, now, 10); len(due) != 1 {
			t.Fatalf("due = %v, want audit's delivery alone", due)
		}
		claimOne(t, s, qAudit, now)
		mustRecord(t, s, id, to("audit", attempt(2, now, time.Second, 200, "")), delivered)
		if _, err := s.Requeue(t.Context(), id, "billing", now); err != nil {
			t.Fatal(err)
		}
		if got := phases(mustGet(t, s, id)); got["billing"] != store.PhaseQueued || got["audit"] != store.PhaseDelivered {
			t.Fatalf("after requeueing billing: %v", got)
		}
		if _, err := s.Requeue(t.Context(), id, "nowhere", now); err == nil {
			t.Fatal("requeueing an unknown destination succeeded")
		}
	})

	t.Run("release and renewal by delivery", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(0), "f4", toDestinations("billing", "audit")))
		claimOne(t, s, qBilling, now)
		claimOne(t, s, qAudit, now)
		billing := store.DeliveryRef{UUID: id, Destination: "billing"}
		audit := store.DeliveryRef{UUID: id, Destination: "audit"}
		lost, err := s.RenewLeases(t.Context(), "w", []store.DeliveryRef{billing, audit, {UUID: id, Destination: "nowhere"}}, now.Add(time.Hour))
		if err != nil || len(lost) != 1 || lost[0].Destination != "nowhere" {
			t.Fatalf("RenewLeases lost %v (%v), want only the unknown destination", lost, err)
		}
		if err := s.Release(t.Context(), "w", []store.DeliveryRef{billing}); err != nil {
			t.Fatal(err)
		}
		if got := claimOne(t, s, qBilling, now); got.Destination != "billing" {
			t.Fatalf("claimed %+v after the release", got)
		}
		if ds, err := s.Claim(t.Context(), qAudit, "x", now.Add(30*time.Minute), time.Minute, 10); err != nil || len(ds) != 0 {
			t.Fatalf("audit's renewed claim was taken: %d (%v)", len(ds), err)
		}
	})

	t.Run("no destination took it: Stored with the reason", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(at(0), "f5", stored(), toDestinations()))
		e := mustGet(t, s, id)
		if e.Phase != store.PhaseStored || len(e.Deliveries) != 0 || e.Reason == "" {
			t.Fatalf("stored event = %+v", e)
		}
		if queues, _ := s.DueQueues(t.Context(), forever); len(queues) != 0 {
			t.Fatalf("a Stored event is queued: %v", queues)
		}
	})
}
