package store

import (
	"fmt"
	"testing"
	"time"
)

// dropPhaseIndexes leaves a store as a release before the phase indexes wrote it.
func dropPhaseIndexes(t *testing.T, s *Embedded) {
	t.Helper()
	if err := s.update(func(tx kvTx) error {
		for _, name := range [][]byte{bucketFailed, bucketFinished, bucketDailyByDay} {
			c := tx.Bucket(name).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketTokens).Delete([]byte(tokenPhaseIndexes))
	}); err != nil {
		t.Fatal(err)
	}
}

// A store from before the phase indexes (on either engine) gets them at its first open:
// its Failed events are redelivered, its finished events pruned and its old daily counts
// removed, as if they had been indexed all along.
func TestPhaseIndexesAreBuiltForAnOldStore(t *testing.T) {
	for _, engine := range Engines {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			open := func() *Embedded {
				s, err := OpenEmbedded(dir, EmbeddedOptions{Engine: engine})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			s := open()
			old := time.Now().Add(-48 * time.Hour)
			for i, phase := range []string{PhaseFailed, PhaseFailed, PhaseDelivered, PhaseQueued} {
				if _, err := s.Ingest(t.Context(), ingest(fmt.Sprintf("u%d", i), fmt.Sprintf("e%d", i), old.Add(time.Duration(i)*time.Second), phase)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddDailyCounts(t.Context(), []DailyCount{{PartnerKey: "ns/acme", Day: "2020-01-01", Outcome: "accepted", N: 3}}); err != nil {
				t.Fatal(err)
			}
			dropPhaseIndexes(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = open()
			defer s.Close()
			if n, err := s.RequeueFailed(t.Context(), "ns/e", "", time.Now()); err != nil || n != 2 {
				t.Fatalf("RequeueFailed after reopening = %d (%v), want the 2 Failed events", n, err)
			}
			if n, err := s.Prune(t.Context(), Before(time.Now().Add(-time.Hour)), time.Now()); err != nil || n != 1 {
				t.Fatalf("Prune after reopening = %d (%v), want the one Delivered event", n, err)
			}
			if _, err := s.Get(t.Context(), "u2"); err == nil {
				t.Fatal("the Delivered event is still stored")
			}
			if err := s.PruneDailyCounts(t.Context(), "2021-01-01"); err != nil {
				t.Fatal(err)
			}
			if counts, err := s.DailyCounts(t.Context(), "ns/acme", "2000-01-01"); err != nil || len(counts) != 0 {
				t.Fatalf("daily counts after pruning: %v (%v), want none", counts, err)
			}
		})
	}
}
