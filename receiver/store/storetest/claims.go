package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

const queueOrders = "ns/orders"

func claimIDs(t *testing.T, s store.Store, owner string, now time.Time, lease time.Duration, limit int) []string {
	t.Helper()
	evs, err := s.Claim(t.Context(), queueOrders, owner, now, lease, limit)
	if err != nil {
		t.Fatalf("Claim(%s): %v", owner, err)
	}
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].UUID
		// The dispatcher delivers what Claim returns without reading it again.
		sameEvent(t, "a claimed event", evs[i].Event, mustGet(t, s, evs[i].UUID))
	}
	return ids
}

// refs are the default-destination deliveries of these events.
func refs(uuids ...string) []store.DeliveryRef {
	out := make([]store.DeliveryRef, len(uuids))
	for i, u := range uuids {
		out[i] = store.DeliveryRef{UUID: u, Destination: store.DefaultDestination}
	}
	return out
}

// testClaims: a delivery is taken by one worker pool at a time, whichever replica it
// runs in; a claim that is neither ended nor renewed runs out, and the delivery is due
// again for anyone. A delivery claimed twice is sent twice; one never due again after its
// claimant died is never sent.
func (h *harness) testClaims(t *testing.T) {
	const lease = 30 * time.Second
	setup := func(t *testing.T) (store.Store, []string) {
		s := h.fresh(t)
		var ids []string
		for i := range 3 {
			ids = append(ids, add(t, s, newIngest(at(time.Duration(i)*time.Second), fmt.Sprintf("c%d", i))))
		}
		return s, ids
	}
	now := at(time.Minute)

	t.Run("two owners never claim the same delivery", func(t *testing.T) {
		s, ids := setup(t)
		if got := claimIDs(t, s, "a", now, lease, 2); !slices.Equal(got, ids[:2]) {
			t.Fatalf("a claimed %v, want the two oldest %v", got, ids[:2])
		}
		if got := claimIDs(t, s, "b", now, lease, 10); !slices.Equal(got, ids[2:]) {
			t.Fatalf("b claimed %v, want only the one left %v", got, ids[2:])
		}
		if got := claimIDs(t, s, "c", now.Add(lease-time.Microsecond), lease, 10); len(got) != 0 {
			t.Fatalf("c claimed %v while every lease holds", got)
		}
	})

	t.Run("a claimed delivery is not due while its lease holds", func(t *testing.T) {
		s, ids := setup(t)
		claimIDs(t, s, "a", now, lease, 1)
		if got := dueIDs(t, s, now, 10); !slices.Equal(got, ids[1:]) {
			t.Fatalf("due while claimed = %v, want %v", got, ids[1:])
		}
		queues, err := s.DueQueues(t.Context(), now)
		if err != nil || len(queues) != 1 || !queues[0].OldestDue.Equal(at(time.Second)) {
			t.Fatalf("DueQueues = %v (%v), want ns/orders due since its oldest unclaimed delivery", queues, err)
		}
		if depth, err := s.QueueDepth(t.Context()); err != nil || depth != 3 {
			t.Fatalf("QueueDepth = %d (%v): a claimed delivery still waits", depth, err)
		}
	})

	t.Run("an expired lease makes the delivery due again for anyone", func(t *testing.T) {
		s, ids := setup(t)
		claimIDs(t, s, "dead", now, lease, 3)
		if got := claimIDs(t, s, "b", now.Add(lease), lease, 10); !slices.Equal(got, ids) {
			t.Fatalf("after the lease ran out b claimed %v, want all %v", got, ids)
		}
		if lost, err := s.RenewLeases(t.Context(), "dead", refs(ids...), now.Add(2*lease)); err != nil || !slices.Equal(lost, refs(ids...)) {
			t.Fatalf("the dead owner's renewal: lost %v (%v), want all", lost, err)
		}
	})

	t.Run("a renewed lease holds past its first end", func(t *testing.T) {
		s, ids := setup(t)
		claimIDs(t, s, "a", now, lease, 1)
		lost, err := s.RenewLeases(t.Context(), "a", refs(ids[0], ids[1], "no-such-event"), now.Add(3*lease))
		if err != nil || !slices.Equal(lost, refs(ids[1], "no-such-event")) {
			t.Fatalf("RenewLeases lost %v (%v), want the unclaimed and the unknown", lost, err)
		}
		if got := claimIDs(t, s, "b", now.Add(2*lease), 10*lease, 10); !slices.Equal(got, ids[1:]) {
			t.Fatalf("b claimed %v before the renewed lease ended, want %v", got, ids[1:])
		}
		if got := claimIDs(t, s, "c", now.Add(3*lease), lease, 10); !slices.Equal(got, ids[:1]) {
			t.Fatalf("at the renewed end c claimed %v, want %v", got, ids[:1])
		}
	})

	t.Run("a released delivery is due at once, only its owner releases it", func(t *testing.T) {
		s, ids := setup(t)
		claimIDs(t, s, "a", now, lease, 2)
		if err := s.Release(t.Context(), "b", refs(ids[:2]...)); err != nil {
			t.Fatal(err)
		}
		if got := claimIDs(t, s, "b", now, lease, 10); !slices.Equal(got, ids[2:]) {
			t.Fatalf("another owner's release freed %v", got)
		}
		if err := s.Release(t.Context(), "a", refs(ids[:1]...)); err != nil {
			t.Fatal(err)
		}
		if got := dueIDs(t, s, now, 10); !slices.Equal(got, ids[:1]) {
			t.Fatalf("due after release = %v, want %v at its own due time", got, ids[:1])
		}
		if e := mustGet(t, s, ids[0]); e.Phase != store.PhaseQueued || e.Attempts != 0 {
			t.Fatalf("a release changed the event: %+v", e)
		}
	})

	t.Run("an attempt ends the claim", func(t *testing.T) {
		s, ids := setup(t)
		claimIDs(t, s, "a", now, lease, 2)
		mustRecordAs(t, s, "a", ids[0], attempt(1, now, time.Second, 503, "HTTP 503"), retrying(now.Add(5*time.Second)))
		mustRecordAs(t, s, "a", ids[1], attempt(1, now, time.Second, 200, ""), delivered)
		if got := claimIDs(t, s, "b", now.Add(5*time.Second), lease, 10); !slices.Equal(got, []string{ids[2], ids[0]}) {
			t.Fatalf("b claimed %v; want the retry at its next attempt time (not the lease end) and the unclaimed one", got)
		}
		if lost, err := s.RenewLeases(t.Context(), "a", refs(ids[1:2]...), now.Add(lease)); err != nil || len(lost) != 1 {
			t.Fatalf("renewing a finished delivery: lost %v (%v), want it lost", lost, err)
		}
		if depth, err := s.QueueDepth(t.Context()); err != nil || depth != 2 {
			t.Fatalf("QueueDepth = %d (%v), want 2", depth, err)
		}
	})

	t.Run("a late result from an expired lease changes nothing", func(t *testing.T) {
		s, ids := setup(t)
		id := ids[0]
		claimIDs(t, s, "slow", now, lease, 3)
		if got := claimIDs(t, s, "b", now.Add(lease), lease, 3); !slices.Equal(got, ids) {
			t.Fatalf("after slow's lease ran out b claimed %v, want %v", got, ids)
		}
		late := func(what string, a store.Attempt, o store.Outcome) {
			t.Helper()
			e, err := s.RecordAttempt(t.Context(), "slow", id, a, o)
			if !errors.Is(err, store.ErrClaimLost) {
				t.Fatalf("%s: RecordAttempt by the expired owner: %v, want ErrClaimLost", what, err)
			}
			if e == nil || e.UUID != id {
				t.Fatalf("%s: RecordAttempt returned %+v, want the event as it is", what, e)
			}
		}
		late("while b holds the claim", attempt(1, now, time.Second, 200, ""), delivered)
		if e := mustGet(t, s, id); e.Phase != store.PhaseQueued || e.Attempts != 0 {
			t.Fatalf("the late result changed the event: phase %s, %d attempts", e.Phase, e.Attempts)
		}
		if lost, err := s.RenewLeases(t.Context(), "b", refs(id), now.Add(2*lease)); err != nil || len(lost) != 0 {
			t.Fatalf("b's renewal after the late result: lost %v (%v), want its claim intact", lost, err)
		}
		mustRecordAs(t, s, "b", id, attempt(1, now.Add(lease), time.Second, 503, "HTTP 503"), retrying(now.Add(2*lease)))
		// Unclaimed again, but attempt 1 is b's: the late one must not replace it.
		late("after b recorded attempt 1", attempt(1, now, time.Second, 200, ""), delivered)
		e := mustGet(t, s, id)
		if e.Phase != store.PhaseRetrying || e.Attempts != 1 || e.LastResponseCode != 503 {
			t.Fatalf("after the late result: phase %s, %d attempts, code %d; want b's Retrying, 1, 503", e.Phase, e.Attempts, e.LastResponseCode)
		}
		got, err := s.Attempts(t.Context(), id)
		if err != nil || len(got) != 1 || got[0].ResponseCode != 503 {
			t.Fatalf("Attempts = %+v (%v), want b's attempt alone", got, err)
		}
		if due := dueIDs(t, s, now.Add(2*lease), 10); !slices.Contains(due, id) {
			t.Fatalf("due at b's retry time: %v, want %s", due, id)
		}
	})

	t.Run("a requeued event is unclaimed", func(t *testing.T) {
		s, ids := setup(t)
		claimIDs(t, s, "a", now, lease, 1)
		mustRecordAs(t, s, "a", ids[0], attempt(1, now, time.Second, 400, "HTTP 400"), failed)
		if _, err := s.Requeue(t.Context(), ids[0], "", now); err != nil {
			t.Fatal(err)
		}
		if got, want := claimIDs(t, s, "b", now, lease, 10), []string{ids[1], ids[2], ids[0]}; !slices.Equal(got, want) {
			t.Fatalf("b claimed %v after the requeue, want %v", got, want)
		}
	})

	t.Run("many owners at once claim each delivery once", func(t *testing.T) {
		s := h.fresh(t)
		const events, owners = 60, 6
		for i := range events {
			add(t, s, newIngest(at(time.Duration(i)*time.Millisecond), fmt.Sprintf("m%d", i)))
		}
		var mu sync.Mutex
		claimedBy := map[string]string{}
		var wg sync.WaitGroup
		for o := range owners {
			owner := fmt.Sprintf("owner-%d", o)
			wg.Go(func() {
				for {
					evs, err := s.Claim(t.Context(), queueOrders, owner, now, lease, 3)
					if err != nil {
						t.Errorf("Claim(%s): %v", owner, err)
						return
					}
					if len(evs) == 0 {
						return
					}
					mu.Lock()
					for _, e := range evs {
						if prev, ok := claimedBy[e.UUID]; ok {
							t.Errorf("%s claimed by %s and %s", e.UUID, prev, owner)
						}
						claimedBy[e.UUID] = owner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimedBy) != events {
			t.Fatalf("%d of %d deliveries claimed", len(claimedBy), events)
		}
	})

	t.Run("a limit of zero claims nothing", func(t *testing.T) {
		s, _ := setup(t)
		if got := claimIDs(t, s, "a", now, lease, 0); len(got) != 0 {
			t.Fatalf("claimed %v", got)
		}
	})
}
