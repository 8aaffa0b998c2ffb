package receiver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/hookgate/hookgate/receiver/store"
)

// TestDefaultOptionsConvertABoltDataDirectory: a receiver started with its default options
// on a data directory that a release on bbolt left behind opens it on Pebble, converted,
// finds the event that release had accepted (and treats its repeat as a duplicate), and
// says which engine it runs and that it converted.
func TestDefaultOptionsConvertABoltDataDirectory(t *testing.T) {
	dir := t.TempDir()
	old, err := store.OpenBolt(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	accepted := store.Ingest{
		Event: store.Event{UUID: "019593fa-5d95-7000-8000-000000000001", EventID: "evt-1", PartnerNamespace: "team-a", Partner: "acme",
			EndpointNamespace: "team-a", Endpoint: "orders", ReceivedAt: time.Now(), Phase: store.PhaseStored},
		Payload: []byte(`{"id":"evt-1"}`), DedupKey: "team-a/acme\x00team-a/orders\x00evt-1", DedupWindow: time.Hour,
	}
	if _, err := old.Ingest(context.Background(), accepted); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var logged strings.Builder
	opts := DefaultOptions()
	opts.DataDir = dir
	opts.Log = funcr.New(func(prefix, args string) { mu.Lock(); logged.WriteString(prefix + " " + args + "\n"); mu.Unlock() }, funcr.Options{})
	st, backend, err := openStore(context.Background(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mu.Lock()
	lines := logged.String()
	mu.Unlock()
	for _, want := range []string{`"converted the bbolt store to Pebble"`, `"embedded store engine" "engine"="pebble"`} {
		if !strings.Contains(lines, want) {
			t.Errorf("the start-up log does not say %s:\n%s", want, lines)
		}
	}
	if backend != backendEmbedded {
		t.Errorf("backend %q, want %q", backend, backendEmbedded)
	}
	if _, err := os.Stat(filepath.Join(dir, "pebble")); err != nil {
		t.Errorf("no Pebble store in the data directory: %v", err)
	}
	e, err := st.FindByEventID(context.Background(), "team-a/acme", "evt-1")
	if err != nil || e.UUID != accepted.Event.UUID {
		t.Fatalf("the event accepted before the upgrade: %+v (%v)", e, err)
	}
	repeat := accepted
	repeat.Event.UUID = "019593fa-5d95-7000-8000-000000000002"
	if res, err := st.Ingest(context.Background(), repeat); err != nil || !res.Duplicate || res.Event.UUID != accepted.Event.UUID {
		t.Errorf("its repeat after the upgrade: %+v (%v), want a duplicate of %s", res, err, accepted.Event.UUID)
	}
}
