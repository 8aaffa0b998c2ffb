package delivery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/store"
)

// TestRemovedDestinationsAreFinished: deliveries whose endpoint (namespace gone) or
// destination (namespace ns, destination old) left the routing table are finished as
// Failed, reason DestinationRemoved, once the grace period is over, are pruned with their
// events and give their bytes back; namespace ns's remaining destination is delivered to
// as usual, and a delivery whose destination is only briefly missing is left alone.
func TestRemovedDestinationsAreFinished(t *testing.T) {
	var delivered atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { delivered.Add(1) }))
	defer sink.Close()
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	retry := routing.Retry{MaxAttempts: 3, InitialBackoff: routing.Duration(time.Millisecond), MaxBackoff: routing.Duration(time.Millisecond)}
	dest := func(name string) *routing.Destination {
		return &routing.Destination{Name: name, URL: sink.URL, Timeout: routing.Duration(time.Second)}
	}
	ctx := context.Background()
	ingest := func(ns, id string, destinations ...string) string {
		e := store.Event{UUID: id, EventID: id, PartnerNamespace: ns, Partner: "acme", EndpointNamespace: ns, Endpoint: "orders",
			ReceivedAt: time.Now().Add(-time.Hour), Phase: store.PhaseQueued}
		for _, d := range destinations {
			e.Deliveries = append(e.Deliveries, store.DeliveryState{Destination: d, Phase: store.PhaseQueued})
		}
		if _, err := st.Ingest(ctx, store.Ingest{Event: e, Payload: []byte(`{"id":"` + id + `"}`)}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	gone := ingest("gone", "0190a0b0-0000-7000-8000-000000000001", store.DefaultDestination)
	fanOut := ingest("ns", "0190a0b0-0000-7000-8000-000000000002", "kept", "old")
	// The table the events were accepted under has no endpoint in namespace gone any more,
	// and namespace ns's endpoint has lost destination old.
	table := &routing.Table{
		Partners: []routing.Partner{{Namespace: "ns", Name: "acme"}},
		Endpoints: []routing.Endpoint{{Namespace: "ns", Name: "orders", Path: "/api/webhooks/ns/orders", Retry: retry,
			Destinations: []*routing.Destination{dest("kept")}}},
	}
	table.Finalize(nil)
	holder := routing.NewHolder()
	holder.Swap(table)

	run := func(grace time.Duration, until func() bool) {
		t.Helper()
		runCtx, cancel := context.WithCancel(ctx)
		d := NewDispatcher(Options{Store: st, Holder: holder, Log: logr.Discard(), Egress: egress.New(egress.Config{AllowCIDRs: loopbackSinks}),
			PollInterval: 10 * time.Millisecond, RemovedGrace: grace})
		done := make(chan struct{})
		go func() { _ = d.Start(runCtx); close(done) }()
		defer func() { cancel(); <-done }()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if until() {
				return
			}
		}
		t.Fatal("not done within 10s")
	}
	get := func(id string) *store.Event {
		e, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// A grace period longer than the run: the kept destination is delivered to, the
	// orphaned deliveries wait.
	run(time.Hour, func() bool { return get(fanOut).Delivery("kept").Phase == store.PhaseDelivered })
	time.Sleep(100 * time.Millisecond)
	if p := get(gone).Phase; p != store.PhaseQueued {
		t.Fatalf("within the grace period the removed endpoint's event is %s, want Queued", p)
	}
	if p := get(fanOut).Delivery("old").Phase; p != store.PhaseQueued {
		t.Fatalf("within the grace period the removed destination's delivery is %s, want Queued", p)
	}

	run(50*time.Millisecond, func() bool { return get(gone).Finished() && get(fanOut).Finished() })
	for _, c := range []struct {
		id, destination string
	}{{gone, store.DefaultDestination}, {fanOut, "old"}} {
		e := get(c.id)
		d := e.Delivery(c.destination)
		if e.Phase != store.PhaseFailed || d.Phase != store.PhaseFailed || d.LastError != store.ReasonDestinationRemoved || d.Attempts != 0 {
			t.Errorf("%s/%s: event %s, delivery %+v; want Failed, reason %s, no attempt", c.id, c.destination, e.Phase, d, store.ReasonDestinationRemoved)
		}
	}
	if e := get(fanOut); e.LastError != store.ReasonDestinationRemoved {
		t.Errorf("the fan-out event's lastError is %q, want %s", e.LastError, store.ReasonDestinationRemoved)
	}
	if n := delivered.Load(); n != 1 {
		t.Errorf("the sink saw %d deliveries, want the kept destination's one", n)
	}
	removed, err := st.Prune(ctx, store.Before(time.Now()), time.Now())
	if err != nil || removed != 2 {
		t.Fatalf("Prune removed %d (%v), want both events", removed, err)
	}
	if usage, err := st.Usage(ctx); err != nil || usage["gone/acme"] != 0 || usage["ns/acme"] != 0 {
		t.Fatalf("usage after pruning %v (%v), want the bytes given back", usage, err)
	}
}
