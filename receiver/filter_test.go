package receiver

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
)

// TestDestinationFilter: the destination takes only the events its filter matches (a
// topic pattern, a tenant and a CEL expression over the body); the others are Stored with
// the reason, in the status API. The sub-topic (X-Pps-Sub-Topic) and the partner's tenant
// reach the destination as metadata headers.
func TestDestinationFilter(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{}
	sink := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen[r.Header.Get("X-Hookgate-Event-Id")] = r.Header.Clone()
		mu.Unlock()
	}))
	defer sink.Close()
	f := newFixture(t)
	f.signedEndpoint("filtered", sink.URL+"/big-orders", nil, "")
	e := &f.table.Endpoints[len(f.table.Endpoints)-1]
	e.Destination.Filter = &routing.Filter{Types: []string{"orders/*"}, Tenants: []string{"OU1243"}, Expression: "event.data.amount > 100"}
	rcv := startTestReceiver(t, f.table, nil)

	send := func(id, typ string, amount int) {
		t.Helper()
		body := fmt.Appendf(nil, `{"id":%q,"type":%q,"amount":%d}`, id, typ, amount) // event.data is the whole body
		h := partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body)
		h["X-Pps-Sub-Topic"] = "product:adv/adv-120"
		if resp := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/filtered", h, body)); resp.status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", id, resp.status, resp.raw)
		}
	}
	send("evt_big", "orders/placed", 120)
	send("evt_small", "orders/placed", 50)
	send("evt_user", "users/created", 500)
	waitStatus(t, rcv, "evt_big", "Delivered")
	for _, id := range []string{"evt_small", "evt_user"} {
		st := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/status?eventId="+id, map[string]string{"x-api-key": acmeKey}, nil))
		if st.body["status"] != "Stored" || st.body["reason"] != reasonFilteredOut {
			t.Errorf("%s: %s; want Stored with reason %q", id, st.raw, reasonFilteredOut)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("the destination got %d events, want only evt_big", len(seen))
	}
	h := seen["evt_big"]
	if h.Get("X-Hookgate-Sub-Topic") != "product:adv/adv-120" || h.Get("X-Hookgate-Tenant-Id") != "OU1243" || h.Get("X-Hookgate-Topic") != "orders/placed" {
		t.Fatalf("metadata headers: %v", h)
	}
}

// TestFilterOverTheSeedsEnvelope: a seed-shaped event ({"id","type","data":{...}}) goes to
// the destination whose expression reads event.data as the envelope's data and to the
// one reading event.body; an expression that cannot be evaluated (a missing field) takes
// nothing and is counted by endpoint and destination.
func TestFilterOverTheSeedsEnvelope(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
	}))
	defer sink.Close()
	f := newFixture(t)
	f.signedEndpoint("envelopes", sink.URL, nil, "")
	e := &f.table.Endpoints[len(f.table.Endpoints)-1]
	dest := func(name, expr string) *routing.Destination {
		return &routing.Destination{Name: name, URL: sink.URL + "/" + name, Timeout: routing.Duration(5 * time.Second), Filter: &routing.Filter{Expression: expr}}
	}
	e.Destination = nil
	e.Destinations = []*routing.Destination{
		dest("data", "event.data.amount > 100"),
		dest("body", `event.body.type == "orders/placed" && event.body.data.currency == "EUR"`),
		dest("broken", "event.data.missing > 1"),
	}
	rcv := startTestReceiver(t, f.table, nil)
	body := []byte(`{"id":"evt_env","type":"orders/placed","data":{"amount":120,"currency":"EUR"}}`)
	if resp := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/envelopes", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body)); resp.status != http.StatusAccepted {
		t.Fatalf("ingest: %d %s", resp.status, resp.raw)
	}
	waitStatus(t, rcv, "evt_env", "Delivered")
	mu.Lock()
	if seen["/data"] != 1 || seen["/body"] != 1 || seen["/broken"] != 0 {
		t.Errorf("deliveries %v, want one each to data and body, none to broken", seen)
	}
	mu.Unlock()
	metrics := do(t, nil, newRequest(t, http.MethodGet, rcv.probeURL+"/metrics", nil, nil))
	want := `hookgate_filter_failures_total{destination="broken",endpoint="` + fixtureNamespace + `/envelopes",reason="evaluation"} 1`
	if !strings.Contains(metrics.raw, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestLargeBodyFiltersStayInTheMemoryBudget: an 8 MiB array body for an endpoint with
// three expression destinations is decoded at most once, and only within the in-flight
// memory budget: with a 64 MiB budget its decoding (16 bytes a body byte) does not fit,
// so the expressions do not match (counted as over_budget) and the event is Stored, while
// the receiver allocates a small multiple of the body, not hundreds of megabytes.
func TestLargeBodyFiltersStayInTheMemoryBudget(t *testing.T) {
	f := newFixture(t)
	f.signedEndpoint("big", "http://127.0.0.1:9/never", nil, "")
	e := &f.table.Endpoints[len(f.table.Endpoints)-1]
	e.MaxBodyBytes = 16 << 20
	e.Destination = nil
	for _, name := range []string{"a", "b", "c"} {
		e.Destinations = append(e.Destinations, &routing.Destination{Name: name, URL: "http://127.0.0.1:9/" + name, Timeout: routing.Duration(time.Second),
			Filter: &routing.Filter{Expression: "size(event.data.items) > 0"}})
	}
	rcv := startTestReceiver(t, f.table, func(o *Options) { o.MaxInflightBodyBytes = 64 << 20 })
	var b strings.Builder
	b.WriteString(`{"id":"evt_big","type":"orders/placed","items":[`)
	for b.Len() < 8<<20 {
		b.WriteString("1,")
	}
	b.WriteString("1]}")
	body := []byte(b.String())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/big", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
	runtime.ReadMemStats(&after)
	if resp.status != http.StatusAccepted || resp.body["status"] != "Stored" {
		t.Fatalf("ingest: %d %s, want 202 Stored", resp.status, resp.raw)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("the 8 MiB body cost %d MiB of allocations (client and receiver)", allocated>>20)
	if allocated > 100<<20 {
		t.Errorf("the 8 MiB body cost %d MiB of allocations, want it bounded near the body's size", allocated>>20)
	}
	metrics := do(t, nil, newRequest(t, http.MethodGet, rcv.probeURL+"/metrics", nil, nil))
	for _, name := range []string{"a", "b", "c"} {
		want := `hookgate_filter_failures_total{destination="` + name + `",endpoint="` + fixtureNamespace + `/big",reason="over_budget"} 1`
		if !strings.Contains(metrics.raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
