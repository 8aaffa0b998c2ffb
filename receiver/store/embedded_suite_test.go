package store_test

import (
	"fmt"
	"testing"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/storetest"
)

// TestEmbeddedStore runs the shared Store behaviour against the embedded store on each
// engine, each subtest in its own directory.
func TestEmbeddedStore(t *testing.T) {
	for _, engine := range store.Engines {
		t.Run(engine, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				s, err := store.OpenEmbedded(t.TempDir(), store.EmbeddedOptions{Engine: engine, Log: logr.Discard()})
				if err != nil {
					t.Fatal(err)
				}
				return checkedStore{s}
			})
		})
	}
}

// checkedStore verifies the engine's own structures (bbolt: every page reachable once,
// no leaks; Pebble: every block's checksum) before closing, so that every behaviour is
// also a test of the engine's bookkeeping after its writes and deletes.
type checkedStore struct{ *store.Embedded }

func (c checkedStore) Close() error {
	if c.Healthy() == nil { // open and writable: a closed store cannot be checked
		if err := c.Check(); err != nil {
			_ = c.Embedded.Close()
			return fmt.Errorf("the store is inconsistent: %w", err)
		}
	}
	return c.Embedded.Close()
}
