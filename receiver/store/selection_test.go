package store

import (
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// A store from before the listing indexes gets them when it is opened, on each engine.
func TestListingIndexesAreBuiltForAnOldStore(t *testing.T) {
	for _, engine := range Engines {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			open := func() *Embedded {
				t.Helper()
				s, err := OpenEmbedded(dir, EmbeddedOptions{Engine: engine, Log: logr.Discard()})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			s := open()
			now := time.Now()
			for _, in := range []Ingest{ingest("u1", "e1", now, PhaseQueued), ingest("u2", "e2", now, PhaseStored)} {
				if _, err := s.Ingest(t.Context(), in); err != nil {
					t.Fatal(err)
				}
			}
			// As the previous release left it: no listing keys, no token.
			if err := s.eng.update(func(tx kvTx) error {
				for _, e := range []*Event{{UUID: "u1", PartnerNamespace: "ns", EndpointNamespace: "ns", Endpoint: "e", Phase: PhaseQueued}, {UUID: "u2", PartnerNamespace: "ns", EndpointNamespace: "ns", Endpoint: "e", Phase: PhaseStored}} {
					if err := unindexForListing(tx, e); err != nil {
						return err
					}
				}
				return tx.Bucket(bucketTokens).Delete([]byte(tokenListingIndexes))
			}); err != nil {
				t.Fatal(err)
			}
			if evs, _, err := s.ListSelected(t.Context(), Selection{Namespace: "ns", Limit: 10}); err != nil || len(evs) != 0 {
				t.Fatalf("with the keys removed: %d events (%v), want none: the test removed nothing", len(evs), err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open()
			defer s.Close()
			for _, c := range []struct {
				sel  Selection
				want string
			}{
				{Selection{Namespace: "ns", Phase: PhaseStored, Limit: 10}, "u2"},
				{Selection{Namespace: "ns", Endpoint: "e", Phase: PhaseQueued, Limit: 10}, "u1"},
				{Selection{Namespace: "ns", EventID: "e1", Limit: 10}, "u1"},
			} {
				evs, _, err := s.ListSelected(t.Context(), c.sel)
				if err != nil || len(evs) != 1 || evs[0].UUID != c.want {
					t.Fatalf("after reopening, %+v: %v (%v), want %s", c.sel, evs, err, c.want)
				}
			}
		})
	}
}
