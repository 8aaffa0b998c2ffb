package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// testListSelected: the events API's lists, a namespace's or every namespace's, newest
// first, narrowed by partner, endpoint, phase and event id, page by page; a phase change
// moves an event between the phase lists, pruning takes it out of all of them, and a
// selective page over a long history stops at the scan bound with a cursor.
func (h *harness) testListSelected(t *testing.T) {
	s := h.fresh(t)
	// Oldest first: a's acme to orders and to refunds, a's globex, b's acme.
	aOrders := add(t, s, newIngest(at(0), "e1"))
	aRefunds := add(t, s, newIngest(at(time.Second), "e2", endpoint("ns", "refunds"), stored()))
	aGlobex := add(t, s, newIngest(at(2*time.Second), "e1", partner("ns", "globex")))
	bAcme := add(t, s, newIngest(at(3*time.Second), "e1", partner("other", "acme"), endpoint("other", "orders")))
	aLater := add(t, s, newIngest(at(4*time.Second), "e3"))

	list := func(sel store.Selection) []string {
		t.Helper()
		if sel.Limit == 0 {
			sel.Limit = 100
		}
		evs, next, err := s.ListSelected(t.Context(), sel)
		if err != nil {
			t.Fatalf("ListSelected(%+v): %v", sel, err)
		}
		if next != "" && len(evs) < sel.Limit {
			t.Fatalf("ListSelected(%+v): a short page with a cursor, over five events", sel)
		}
		ids := make([]string, len(evs))
		for i := range evs {
			ids[i] = evs[i].UUID
		}
		return ids
	}
	for _, c := range []struct {
		name string
		sel  store.Selection
		want []string
	}{
		{"every namespace", store.Selection{}, []string{aLater, bAcme, aGlobex, aRefunds, aOrders}},
		{"one namespace", store.Selection{Namespace: "ns"}, []string{aLater, aGlobex, aRefunds, aOrders}},
		{"the other namespace", store.Selection{Namespace: "other"}, []string{bAcme}},
		{"a namespace without events", store.Selection{Namespace: "nobody"}, []string{}},
		{"a partner", store.Selection{Namespace: "ns", Partner: "acme"}, []string{aLater, aRefunds, aOrders}},
		{"a partner of that name in every namespace", store.Selection{Partner: "acme"}, []string{aLater, bAcme, aRefunds, aOrders}},
		{"an endpoint", store.Selection{Namespace: "ns", Endpoint: "orders"}, []string{aLater, aGlobex, aOrders}},
		{"an endpoint of that name elsewhere", store.Selection{Namespace: "other", Endpoint: "orders"}, []string{bAcme}},
		{"a phase", store.Selection{Namespace: "ns", Phase: store.PhaseStored}, []string{aRefunds}},
		{"a phase in every namespace", store.Selection{Phase: store.PhaseQueued}, []string{aLater, bAcme, aGlobex, aOrders}},
		{"an event id", store.Selection{Namespace: "ns", EventID: "e1"}, []string{aGlobex, aOrders}},
		{"an event id of one partner", store.Selection{Namespace: "ns", Partner: "globex", EventID: "e1"}, []string{aGlobex}},
		{"partner and endpoint", store.Selection{Namespace: "ns", Partner: "acme", Endpoint: "orders"}, []string{aLater, aOrders}},
		{"endpoint and phase", store.Selection{Namespace: "ns", Endpoint: "orders", Phase: store.PhaseStored}, []string{}},
		{"after the cursor", store.Selection{Namespace: "ns", Before: aGlobex}, []string{aRefunds, aOrders}},
	} {
		if got := list(c.sel); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}

	// Two at a time, every event once.
	var paged []string
	cursor := ""
	for range 10 {
		evs, next, err := s.ListSelected(t.Context(), store.Selection{Limit: 2, Before: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			paged = append(paged, e.UUID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if want := []string{aLater, bAcme, aGlobex, aRefunds, aOrders}; !slices.Equal(paged, want) {
		t.Fatalf("two at a time = %v, want %v", paged, want)
	}

	// A delivery moves its event from one phase's list to another's.
	ds, err := s.Claim(t.Context(), store.QueueKey("ns/orders", store.DefaultDestination), worker, at(10*time.Second), time.Minute, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %d deliveries (%v), want 1", len(ds), err)
	}
	d := ds[0]
	mustRecord(t, s, d.UUID, attempt(1, at(10*time.Second), time.Millisecond, 200, ""), delivered)
	if got := list(store.Selection{Namespace: "ns", Phase: store.PhaseDelivered}); !slices.Equal(got, []string{d.UUID}) {
		t.Fatalf("Delivered after the attempt = %v, want %s", got, d.UUID)
	}
	if got := list(store.Selection{Namespace: "ns", Phase: store.PhaseQueued}); slices.Contains(got, d.UUID) {
		t.Fatalf("Queued after the attempt still lists %s: %v", d.UUID, got)
	}

	// Pruning the finished ones takes them out of every list.
	if _, err := s.Prune(t.Context(), store.Cutoff{Default: at(time.Hour)}, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []store.Selection{{}, {Namespace: "ns"}, {Namespace: "ns", Phase: store.PhaseStored}, {Namespace: "ns", Endpoint: "refunds"}, {Namespace: "ns", Phase: store.PhaseDelivered}} {
		for _, id := range list(sel) {
			if id == aRefunds || id == d.UUID {
				t.Fatalf("after pruning, %+v still lists %s", sel, id)
			}
		}
	}
}

// testListSelectedScanBound: a selective page over every namespace looks at no more than
// store.MaxListScan events, says so with a cursor on a short page, and the next page
// finds the rare event far back.
func (h *harness) testListSelectedScanBound(t *testing.T) {
	s := h.fresh(t)
	rareID := add(t, s, newIngest(at(0), "rare", partner("far", "acme"), endpoint("far", "orders")))
	ins := make([]store.Ingest, 0, store.MaxListScan)
	for i := range store.MaxListScan {
		ins = append(ins, newIngest(at(time.Duration(i+1)*time.Second), fmt.Sprintf("c%d", i)))
	}
	mustIngestAll(t, s, ins)
	sel := store.Selection{EventID: "rare", Limit: 10}
	evs, next, err := s.ListSelected(t.Context(), sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 || next == "" {
		t.Fatalf("first page: %d events, cursor %q; want none and a cursor (stopped at the scan bound)", len(evs), next)
	}
	sel.Before = next
	if evs, next, err = s.ListSelected(t.Context(), sel); err != nil || len(evs) != 1 || evs[0].UUID != rareID || next != "" {
		t.Fatalf("second page: %d events, cursor %q (%v); want the rare event and the end", len(evs), next, err)
	}
}
