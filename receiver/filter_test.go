package receiver

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
