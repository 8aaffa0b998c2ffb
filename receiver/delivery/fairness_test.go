package delivery

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/store"
)

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(done)
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

func queue(t *testing.T, st store.Store, ns, endpoint string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		id := uuid.Must(uuid.NewV7()).String()
		ids[i] = id
		if _, err := st.Ingest(context.Background(), store.Ingest{
			Event: store.Event{UUID: id, EventID: fmt.Sprintf("%s-%d", endpoint, i), PartnerNamespace: ns, Partner: "p",
				EndpointNamespace: ns, Endpoint: endpoint, ReceivedAt: time.Now(), Phase: store.PhaseQueued},
			Payload: []byte(`{}`),
		}); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestOneTenantsBacklogNeverDelaysAnother: namespace team-a has 1,500 events held by a
// paused endpoint and 300 for a destination that accepts connections and never answers;
// namespace team-b's five events are delivered within seconds all the same, and team-a's
// black hole has its circuit opened instead of holding workers.
func TestOneTenantsBacklogNeverDelaysAnother(t *testing.T) {
	var delivered atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	hole := blackHole(t)
	retry := routing.Retry{MaxAttempts: 12, InitialBackoff: routing.Duration(time.Second), MaxBackoff: routing.Duration(time.Minute)}
	table := &routing.Table{Endpoints: []routing.Endpoint{
		{Namespace: "team-a", Name: "paused", Path: "/a/paused", Paused: true, Retry: retry,
			Destination: &routing.Destination{URL: sink.URL + "/paused", Timeout: routing.Duration(time.Second)}},
		{Namespace: "team-a", Name: "hole", Path: "/a/hole", Retry: retry,
			Destination: &routing.Destination{URL: hole + "/hole", Timeout: routing.Duration(2 * time.Second)}},
		{Namespace: "team-b", Name: "orders", Path: "/b/orders", Retry: retry,
			Destination: &routing.Destination{URL: sink.URL + "/orders", Timeout: routing.Duration(time.Second)}},
	}}
	table.Finalize(nil)
	holder := routing.NewHolder()
	holder.Swap(table)
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	queue(t, st, "team-a", "paused", 1500)
	queue(t, st, "team-a", "hole", 300)

	var opened atomic.Int64
	d := NewDispatcher(Options{Store: st, Holder: holder, Log: logr.Discard(), PollInterval: 20 * time.Millisecond,
		Egress: egress.New(egress.Config{AllowCIDRs: loopbackSinks}), Workers: 16, PerDestination: 8, PerNamespace: 12,
		OnCircuit: func(q string, open bool) {
			if open && q == "team-a/hole" {
				opened.Add(1)
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(500 * time.Millisecond) // team-a's black hole takes what it may take

	started := time.Now()
	ids := queue(t, st, "team-b", "orders", 5)
	d.Wake()
	waitDelivered(t, st, ids, started.Add(10*time.Second), "behind team-a's backlog", func() {})
	t.Logf("team-b's five events delivered %s after they were stored, next to team-a's 1,500 paused and 300 black-holed", time.Since(started).Round(time.Millisecond))
	if n := delivered.Load(); n != 5 {
		t.Errorf("the sink got %d deliveries; the paused endpoint's must wait", n)
	}
	deadlineOpen := time.Now().Add(10 * time.Second)
	for opened.Load() == 0 && time.Now().Before(deadlineOpen) {
		time.Sleep(20 * time.Millisecond)
	}
	if opened.Load() == 0 {
		t.Fatal("the black hole's circuit never opened")
	}
	if open := d.OpenCircuits(); len(open) != 1 || open[0] != "team-a/hole" {
		t.Fatalf("open circuits %v, want team-a/hole", open)
	}
	attempts := 0
	for _, q := range []string{"team-a/hole"} {
		evs, _ := st.Due(ctx, q, time.Now().Add(time.Hour), 1000)
		for _, ev := range evs {
			attempts += int(ev.Attempts)
		}
	}
	if attempts > 3*circuitThreshold {
		t.Errorf("%d attempts at the black hole: an open circuit must stop them", attempts)
	}
}

func TestCircuitBreaker(t *testing.T) {
	now := time.Now()
	var changes []bool
	c := newCircuits(func(_ string, open bool) { changes = append(changes, open) })
	for range circuitThreshold - 1 {
		c.record("q", true, now)
	}
	if !c.admit("q", now) {
		t.Fatal("open before the threshold")
	}
	c.record("q", true, now)
	if c.admit("q", now) || len(changes) != 1 || !changes[0] {
		t.Fatalf("not open at the threshold: changes %v", changes)
	}
	later := now.Add(circuitInitialCooldown)
	if !c.admit("q", later) || c.admit("q", later) {
		t.Fatal("after the cool-down exactly one probe is admitted")
	}
	c.record("q", true, later) // the probe failed: twice the cool-down
	if c.admit("q", later.Add(circuitInitialCooldown)) || !c.admit("q", later.Add(2*circuitInitialCooldown)) {
		t.Fatal("a failed probe must double the cool-down")
	}
	c.record("q", false, later.Add(2*circuitInitialCooldown))
	if !c.admit("q", later) || len(changes) != 2 || changes[1] {
		t.Fatalf("a good probe closes the circuit: changes %v", changes)
	}
	c.record("r", true, now)
	c.abandon("r")
	if !c.admit("r", now) {
		t.Fatal("a closed circuit with one failure admits")
	}
}

// TestCapIsPerHost: URLs that differ only in path or query are one destination host, so
// `?n=1`, `?n=2`, ... cannot multiply a tenant's share of workers.
func TestCapIsPerHost(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"http://sink.example:8080/hook?n=1", "http://sink.example:8080/hook?n=2"},
		{"https://Sink.Example/a", "https://sink.example/b#x"},
	} {
		if hostOf(c.a) != hostOf(c.b) {
			t.Errorf("%s and %s are capped apart: %q vs %q", c.a, c.b, hostOf(c.a), hostOf(c.b))
		}
	}
	if hostOf("http://a.example/") == hostOf("https://a.example/") {
		t.Error("http and https of a host are different destinations")
	}
}

// TestFanOutStaysInItsNamespacesShare: namespace team-a's endpoint fans every event out
// to 16 destinations on two hosts that never answer (1,600 deliveries); team-b's five
// events to its one destination are delivered within seconds all the same, and team-a
// never has more attempts in flight than its namespace cap, however many destinations
// its events go to.
func TestFanOutStaysInItsNamespacesShare(t *testing.T) {
	var delivered atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	holes := []string{blackHole(t), blackHole(t)}
	retry := routing.Retry{MaxAttempts: 12, InitialBackoff: routing.Duration(time.Second), MaxBackoff: routing.Duration(time.Minute)}
	fanOut := routing.Endpoint{Namespace: "team-a", Name: "fan", Path: "/a/fan", Retry: retry}
	var names []string
	for i := range 16 {
		name := fmt.Sprintf("d%d", i)
		names = append(names, name)
		fanOut.Destinations = append(fanOut.Destinations, &routing.Destination{Name: name, URL: holes[i%2] + "/" + name, Timeout: routing.Duration(2 * time.Second)})
	}
	table := &routing.Table{Endpoints: []routing.Endpoint{fanOut,
		{Namespace: "team-b", Name: "orders", Path: "/b/orders", Retry: retry,
			Destination: &routing.Destination{URL: sink.URL + "/orders", Timeout: routing.Duration(time.Second)}},
	}}
	table.Finalize(nil)
	holder := routing.NewHolder()
	holder.Swap(table)
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 100 {
		ev := store.Event{UUID: uuid.Must(uuid.NewV7()).String(), EventID: fmt.Sprintf("fan-%d", i), PartnerNamespace: "team-a", Partner: "p",
			EndpointNamespace: "team-a", Endpoint: "fan", ReceivedAt: time.Now(), Phase: store.PhaseQueued}
		for _, n := range names {
			ev.Deliveries = append(ev.Deliveries, store.DeliveryState{Destination: n, Phase: store.PhaseQueued})
		}
		if _, err := st.Ingest(context.Background(), store.Ingest{Event: ev, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}

	const perNamespace = 12
	d := NewDispatcher(Options{Store: st, Holder: holder, Log: logr.Discard(), PollInterval: 20 * time.Millisecond,
		Egress: egress.New(egress.Config{AllowCIDRs: loopbackSinks}), Workers: 32, PerDestination: 16, PerNamespace: perNamespace})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	peak := 0
	sample := func() {
		d.mu.Lock()
		peak = max(peak, d.perNamespace["team-a"])
		d.mu.Unlock()
	}
	for range 25 { // team-a's black holes take what they may take
		sample()
		time.Sleep(20 * time.Millisecond)
	}

	started := time.Now()
	ids := queue(t, st, "team-b", "orders", 5)
	d.Wake()
	waitDelivered(t, st, ids, started.Add(10*time.Second), "behind team-a's fan-out", sample)
	t.Logf("team-b's five events delivered %s after they were stored, next to team-a's 1,600 black-holed deliveries; team-a peaked at %d attempts in flight", time.Since(started).Round(time.Millisecond), peak)
	if peak == 0 || peak > perNamespace {
		t.Fatalf("team-a had at most %d attempts in flight, want between 1 and its namespace cap %d", peak, perNamespace)
	}
}

// waitDelivered waits until every one of ids is Delivered, calling each between looks,
// and fails the test at deadline.
func waitDelivered(t *testing.T, st store.Store, ids []string, deadline time.Time, behind string, each func()) {
	t.Helper()
	for {
		each()
		all := true
		for _, id := range ids {
			ev, err := st.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			all = all && ev.Phase == store.PhaseDelivered
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events not all delivered in time %s", len(ids), behind)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
