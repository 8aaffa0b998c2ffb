package store_test

import (
	"fmt"
	"testing"

	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/storetest"
)

// TestBoltStore runs the shared Store behaviour against the embedded store, each
// subtest in its own file.
func TestBoltStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenBolt(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return checkedBolt{s}
	})
}

// checkedBolt verifies the file's consistency (every page reachable once, no leaks)
// before closing it, so that every behaviour is also a test of bbolt's bookkeeping
// after its writes and deletes.
type checkedBolt struct{ *store.Bolt }

func (c checkedBolt) Close() error {
	if c.Healthy() == nil { // open and writable: a closed file cannot be checked
		if err := c.Check(); err != nil {
			_ = c.Bolt.Close()
			return fmt.Errorf("the file is inconsistent: %w", err)
		}
	}
	return c.Bolt.Close()
}
