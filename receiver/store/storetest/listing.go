package storetest

import (
	"fmt"
	"slices"
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
