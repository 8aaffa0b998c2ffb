package storetest

import (
	"slices"
	"testing"

	"github.com/hookgate/hookgate/receiver/store"
)

// testDailyCounts: batches add up per partner, day, outcome and reason; a partner reads
// only its own days from the one asked for; pruning drops the old days.
func (h *harness) testDailyCounts(t *testing.T) {
	s := h.fresh(t)
	add := func(counts ...store.DailyCount) {
		t.Helper()
		if err := s.AddDailyCounts(t.Context(), counts); err != nil {
			t.Fatal(err)
		}
	}
	add(store.DailyCount{PartnerKey: "ns/acme", Day: "2026-11-30", Outcome: "accepted", N: 3},
		store.DailyCount{PartnerKey: "ns/acme", Day: "2026-12-01", Outcome: "rejected", Reason: "bad_signature", N: 1},
		store.DailyCount{PartnerKey: "ns/globex", Day: "2026-12-01", Outcome: "accepted", N: 9})
	add(store.DailyCount{PartnerKey: "ns/acme", Day: "2026-11-30", Outcome: "accepted", N: 2},
		store.DailyCount{PartnerKey: "ns/acme", Day: "2026-12-01", Outcome: "accepted", N: 4})
	got, err := s.DailyCounts(t.Context(), "ns/acme", "2026-11-01")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DailyCount{
		{PartnerKey: "ns/acme", Day: "2026-11-30", Outcome: "accepted", N: 5},
		{PartnerKey: "ns/acme", Day: "2026-12-01", Outcome: "accepted", N: 4},
		{PartnerKey: "ns/acme", Day: "2026-12-01", Outcome: "rejected", Reason: "bad_signature", N: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("DailyCounts = %+v, want %+v", got, want)
	}
	if got, _ := s.DailyCounts(t.Context(), "ns/acme", "2026-12-01"); len(got) != 2 {
		t.Fatalf("from 2026-12-01: %+v", got)
	}
	if err := s.PruneDailyCounts(t.Context(), "2026-12-01"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DailyCounts(t.Context(), "ns/acme", "2026-01-01"); len(got) != 2 || got[0].Day != "2026-12-01" {
		t.Fatalf("after pruning: %+v", got)
	}
}
