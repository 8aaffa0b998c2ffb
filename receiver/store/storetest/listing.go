package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// testListEvents: a partner's events newest first, filtered by phase, type and time,
// page by page with the cursor; another partner's events never appear, and pruned ones
// leave the listing.
func (h *harness) testListEvents(t *testing.T) {
	s := h.fresh(t)
	var acme []string // oldest first
	for i := range 7 {
		opts := []option{}
		if i%2 == 1 {
			opts = append(opts, stored())
		}
		in := newIngest(at(time.Duration(i)*time.Second), fmt.Sprintf("l%d", i), opts...)
		if i == 6 {
			in.Event.Type = "order.refunded"
		}
		acme = append(acme, add(t, s, in))
		add(t, s, newIngest(at(time.Duration(i)*time.Second+time.Millisecond), fmt.Sprintf("g%d", i), partner("ns", "globex")))
	}
	key := "ns/acme"
	list := func(q store.ListQuery) ([]string, string) {
		t.Helper()
		evs, next, err := s.ListEvents(t.Context(), key, q)
		if err != nil {
			t.Fatalf("ListEvents(%+v): %v", q, err)
		}
		ids := make([]string, len(evs))
		for i := range evs {
			ids[i] = evs[i].UUID
			if evs[i].PartnerKey() != key {
				t.Fatalf("ListEvents for %s returned an event of %s", key, evs[i].PartnerKey())
			}
		}
		return ids, next
	}
	newest := slices.Clone(acme)
	slices.Reverse(newest)

	if got, _ := list(store.ListQuery{Limit: 100}); !slices.Equal(got, newest) {
		t.Fatalf("all, newest first = %v, want %v", got, newest)
	}
	var paged []string
	cursor := ""
	for range 10 {
		got, next := list(store.ListQuery{Limit: 3, Before: cursor})
		paged = append(paged, got...)
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(paged, newest) {
		t.Fatalf("three at a time = %v, want %v", paged, newest)
	}
	if got, _ := list(store.ListQuery{Limit: 100, Phase: store.PhaseStored}); !slices.Equal(got, []string{acme[5], acme[3], acme[1]}) {
		t.Fatalf("Stored = %v", got)
	}
	if got, _ := list(store.ListQuery{Limit: 100, Type: "order.refunded"}); !slices.Equal(got, []string{acme[6]}) {
		t.Fatalf("by type = %v", got)
	}
	if got, _ := list(store.ListQuery{Limit: 100, Since: at(4 * time.Second)}); !slices.Equal(got, newest[:3]) {
		t.Fatalf("since 4s = %v, want %v", got, newest[:3])
	}
	if got, _ := list(store.ListQuery{Limit: 100, Before: acme[2]}); !slices.Equal(got, []string{acme[1], acme[0]}) {
		t.Fatalf("before the third = %v", got)
	}
	if evs, _, err := s.ListEvents(t.Context(), "ns/nobody", store.ListQuery{Limit: 10}); err != nil || len(evs) != 0 {
		t.Fatalf("a partner without events: %d (%v)", len(evs), err)
	}

	// Pruning the Stored (finished) ones takes them out of the listing.
	if _, err := s.Prune(t.Context(), store.Cutoff{Default: at(time.Hour)}, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := list(store.ListQuery{Limit: 100}); !slices.Equal(got, []string{acme[6], acme[4], acme[2], acme[0]}) {
		t.Fatalf("after pruning = %v", got)
	}
}

// testListScanBound: a page looks at no more than store.MaxListScan of the partner's
// events, however selective its filter; it then says so (a cursor on a short page) and
// the next page goes on from where it stopped, so the one rare event far back is found,
// once, and no event is skipped at the bound.
func (h *harness) testListScanBound(t *testing.T) {
	s := h.fresh(t)
	rare := newIngest(at(0), "rare")
	rare.Event.Type = "order.refunded"
	rareID := add(t, s, rare)
	// The event just past the bound, counted from the newest: the first page's scan stops
	// right before it, the second page's starts with it.
	edge := newIngest(at(time.Second), "edge")
	edge.Event.Type = "order.refunded"
	edgeID := add(t, s, edge)
	common := store.MaxListScan
	ins := make([]store.Ingest, 0, common)
	for i := range common {
		ins = append(ins, newIngest(at(time.Duration(i+2)*time.Second), fmt.Sprintf("c%d", i)))
	}
	mustIngestAll(t, s, ins)
	q := store.ListQuery{Limit: 10, Type: "order.refunded"}
	var found []string
	pages := 0
	for cursor := ""; pages < 10; pages++ {
		q.Before = cursor
		evs, next, err := s.ListEvents(t.Context(), "ns/acme", q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			found = append(found, e.UUID)
		}
		if pages == 0 && (!store.ListStoppedEarly(q, len(evs), next) || len(evs) != 0) {
			t.Fatalf("first page: %d events, cursor %q; want none and a cursor (stopped at the scan bound)", len(evs), next)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(found, []string{edgeID, rareID}) {
		t.Fatalf("found %v over %d pages, want the edge and the rare event once each", found, pages+1)
	}
}

// mustIngestAll ingests many events, 16 at a time, so that large fixtures stay quick on
// a store whose ingest is a round trip.
func mustIngestAll(t *testing.T, s store.Store, ins []store.Ingest) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(ins))
	work := make(chan store.Ingest)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range work {
				if _, err := s.Ingest(t.Context(), in); err != nil {
					errs <- fmt.Errorf("ingesting %s: %w", in.Event.EventID, err)
				}
			}
		}()
	}
	for _, in := range ins {
		work <- in
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
