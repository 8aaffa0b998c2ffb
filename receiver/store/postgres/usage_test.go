package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/postgres"
)

// Two replicas ingesting for one partner add its bytes in shards of their committers,
// never in one shared row; the usage is their exact sum before and after pruning folds
// the shards, and pruning everything gives every byte back.
func TestUsageShards(t *testing.T) {
	ctx := context.Background()
	schema := freshSchema(t)
	var replicas []*postgres.Store
	for range 2 {
		s, err := postgres.Open(ctx, schema, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		replicas = append(replicas, s)
	}
	const perReplica, size = 200, 100
	received := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	for r, s := range replicas {
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < perReplica; i += 16 {
					in := store.Ingest{Event: store.Event{UUID: uuid.Must(uuid.NewV7()).String(), EventID: fmt.Sprintf("r%d-%d", r, i),
						PartnerNamespace: "ns", Partner: "acme", EndpointNamespace: "ns", Endpoint: "orders", ReceivedAt: received, Phase: store.PhaseStored},
						Payload: make([]byte, size), DedupKey: fmt.Sprintf("ns/acme\x00ns/orders\x00r%d-%d", r, i), DedupWindow: time.Minute}
					if _, err := s.Ingest(ctx, in); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	pool := replicas[0].Pool()
	var shardRows, usageRows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM usage_shards WHERE partner_key = 'ns/acme'").Scan(&shardRows); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM usage WHERE partner_key = 'ns/acme'").Scan(&usageRows); err != nil {
		t.Fatal(err)
	}
	if shardRows < 2 || usageRows != 0 {
		t.Fatalf("%d shard rows and %d usage rows for the partner, want a shard per committer that wrote (at least one per replica) and no shared row", shardRows, usageRows)
	}
	want := int64(2 * perReplica * size)
	usage := func() int64 {
		t.Helper()
		u, err := replicas[1].Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return u["ns/acme"]
	}
	if got := usage(); got != want {
		t.Fatalf("usage %d after ingest, want %d", got, want)
	}
	// A prune that removes nothing folds the shards, and the sum stands.
	if _, err := replicas[0].Prune(ctx, store.Before(received.Add(-time.Hour)), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM usage_shards").Scan(&shardRows); err != nil || shardRows != 0 {
		t.Fatalf("%d shard rows after the fold (%v), want none", shardRows, err)
	}
	if got := usage(); got != want {
		t.Fatalf("usage %d after the fold, want %d", got, want)
	}
	// Pruning every event gives every byte back.
	if n, err := replicas[0].Prune(ctx, store.Before(time.Now()), time.Now().Add(time.Hour)); err != nil || n != 2*perReplica {
		t.Fatalf("Prune removed %d (%v), want %d", n, err, 2*perReplica)
	}
	if got := usage(); got != 0 {
		t.Fatalf("usage %d after pruning every event, want 0", got)
	}
}
