package receiver

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// loopbackSinks is the allow list of test receivers (--destination-allow-cidrs
// 127.0.0.0/8,::1/128): their destinations and JWKS servers are httptest servers on
// loopback, which the egress policy refuses otherwise.
var loopbackSinks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// egressPartner is one partner with one endpoint per destination, each failing at once.
type egressPartner struct {
	namespace, name, apiKey, secret string
}

func (p egressPartner) table(t *routing.Table, endpoints map[string]*routing.Destination) {
	t.Partners = append(t.Partners, routing.Partner{Namespace: p.namespace, Name: p.name,
		Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(p.apiKey), SigningSecret: routing.SecretValue(p.secret)}}})
	for name, dest := range endpoints {
		t.Endpoints = append(t.Endpoints, routing.Endpoint{
			Namespace: p.namespace, Name: name, Path: "/api/webhooks/" + p.namespace + "/" + name,
			Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(time.Hour)}, MaxBodyBytes: 1 << 20,
			Retry:       routing.Retry{MaxAttempts: 1, InitialBackoff: routing.Duration(time.Millisecond), MaxBackoff: routing.Duration(time.Millisecond)},
			Destination: dest,
		})
	}
}

// post sends one event to the partner's endpoint and returns its id.
func (p egressPartner) post(t *testing.T, rcv *testReceiver, endpoint, id string) string {
	t.Helper()
	body := []byte(`{"id":"` + id + `","type":"order.created"}`)
	r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/"+p.namespace+"/"+endpoint, partnerHMACHeaders(p.apiKey, p.secret, time.Now(), body), body))
	if r.status != http.StatusAccepted {
		t.Fatalf("posting %s to %s: %d %s", id, endpoint, r.status, r.raw)
	}
	return id
}

// finished polls the status API until the event is Delivered or Failed.
func (p egressPartner) finished(t *testing.T, rcv *testReceiver, id string) response {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/status?eventId="+id, map[string]string{"x-api-key": p.apiKey}, nil))
		if r.status == http.StatusOK && (r.body["status"] == "Delivered" || r.body["status"] == "Failed") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not finished within 15s: %d %s", id, r.status, r.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStatusAPIShowsOnlyTheErrorClass: a destination URL carrying a secret in its query
// string fails; the partner-facing status API says only the class, never the URL, its
// query string or the address.
func TestStatusAPIShowsOnlyTheErrorClass(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	hanging := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hanging.Close()
	const query = "/hook?token=SECRET123"
	cases := []struct {
		endpoint string
		dest     *routing.Destination
		want     string
	}{
		{"refused", &routing.Destination{URL: "http://" + closedAddr + query, Timeout: routing.Duration(2 * time.Second)}, "connection refused"},
		{"slow", &routing.Destination{URL: hanging.URL + query, Timeout: routing.Duration(200 * time.Millisecond)}, "timeout"},
	}
	acme := egressPartner{namespace: "shop", name: "acme", apiKey: "hgk_egress_acme", secret: "whsec_egress_acme"}
	table := &routing.Table{}
	dests := map[string]*routing.Destination{}
	for _, c := range cases {
		dests[c.endpoint] = c.dest
	}
	acme.table(table, dests)
	rcv := startTestReceiver(t, table, nil) // 127.0.0.0/8 allowed: the connection is attempted
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			r := acme.finished(t, rcv, acme.post(t, rcv, c.endpoint, "evt_"+c.endpoint))
			if r.body["status"] != "Failed" || r.body["lastError"] != c.want {
				t.Fatalf("status %v, lastError %q; want Failed, %q: %s", r.body["status"], r.body["lastError"], c.want, r.raw)
			}
			for _, leak := range []string{"SECRET123", "token", "127.0.0.1", "/hook"} {
				if strings.Contains(r.raw, leak) {
					t.Errorf("the status API answer contains %q: %s", leak, r.raw)
				}
			}
		})
	}
}

// TestEgressRefusalStaysWithItsTenant: namespace tenant-a's destinations are refused by
// the egress policy (a url on a loopback address outside the allow list, a Service on
// loopback, the metadata address), and that neither delays nor blocks namespace
// tenant-b's delivery to an allowed sink.
func TestEgressRefusalStaysWithItsTenant(t *testing.T) {
	var calledA, calledB atomic.Int32
	sinkA := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calledA.Add(1) }))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	sinkA.Listener = ln
	sinkA.Start()
	defer sinkA.Close()
	sinkB := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calledB.Add(1) }))
	defer sinkB.Close()

	a := egressPartner{namespace: "tenant-a", name: "acme", apiKey: "hgk_tenant_a", secret: "whsec_tenant_a"}
	b := egressPartner{namespace: "tenant-b", name: "globex", apiKey: "hgk_tenant_b", secret: "whsec_tenant_b"}
	table := &routing.Table{}
	timeout := routing.Duration(2 * time.Second)
	a.table(table, map[string]*routing.Destination{
		"url":      {URL: sinkA.URL + "/hook", Timeout: timeout},
		"service":  {URL: sinkA.URL + "/hook", Service: true, Timeout: timeout},
		"metadata": {URL: "http://169.254.169.254/latest/meta-data/", Timeout: timeout},
	})
	b.table(table, map[string]*routing.Destination{"orders": {URL: sinkB.URL + "/hook", Timeout: timeout}})
	rcv := startTestReceiver(t, table, func(o *Options) {
		// Only tenant-b's sink address; 127.0.0.2 stays loopback, refused to every kind.
		o.DestinationAllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	var idsA []string
	for _, endpoint := range []string{"url", "service", "metadata"} {
		idsA = append(idsA, a.post(t, rcv, endpoint, "evt_a_"+endpoint))
	}
	idB := b.post(t, rcv, "orders", "evt_b")
	for _, id := range idsA {
		r := a.finished(t, rcv, id)
		if r.body["status"] != "Failed" || r.body["lastError"] != "destination refused by egress policy" || r.body["attempts"] != float64(1) {
			t.Errorf("tenant-a %s: %s", id, r.raw)
		}
	}
	if r := b.finished(t, rcv, idB); r.body["status"] != "Delivered" {
		t.Errorf("tenant-b: %s", r.raw)
	}
	if calledA.Load() != 0 || calledB.Load() != 1 {
		t.Errorf("tenant-a's sink saw %d requests (want 0), tenant-b's %d (want 1)", calledA.Load(), calledB.Load())
	}
	// Each tenant sees only its own events.
	r := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/status?eventId="+idB, map[string]string{"x-api-key": a.apiKey}, nil))
	if r.status != http.StatusNotFound {
		t.Errorf("tenant-a reads tenant-b's event: %d %s", r.status, r.raw)
	}
}

// TestJWKSEgress: the JWKS fetch goes through the egress guard as a url destination, and
// does not follow redirects; the partner gets a 401 saying why.
func TestJWKSEgress(t *testing.T) {
	cases := []struct {
		name        string
		allow       []netip.Prefix
		redirect    bool
		wantStatus  int
		wantMessage string
	}{
		{name: "loopback JWKS URL, loopback allowed", allow: loopbackSinks, wantStatus: http.StatusAccepted},
		{name: "loopback JWKS URL, no allow list", allow: nil, wantStatus: http.StatusUnauthorized, wantMessage: "the issuer's key set URL is refused by the receiver's egress policy"},
		{name: "JWKS URL answering 302 to an allowed URL", allow: loopbackSinks, redirect: true, wantStatus: http.StatusUnauthorized, wantMessage: "answered with a redirect, which is not followed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			var redirects atomic.Int32
			if c.redirect {
				redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					redirects.Add(1)
					http.Redirect(w, r, f.jwks.URL, http.StatusFound)
				}))
				defer redirect.Close()
				for i := range f.table.Endpoints {
					if f.table.Endpoints[i].Name == "jwt" {
						f.table.Endpoints[i].Verification.JWKSURL = redirect.URL
					}
				}
			}
			rcv := startTestReceiver(t, f.table, func(o *Options) { o.DestinationAllowCIDRs = c.allow })
			body := []byte(`{"id":"evt_jwks","type":"order.created"}`)
			r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/jwt", f.jwtHeaders(t, validClaims(time.Now())), body))
			if r.status != c.wantStatus {
				t.Fatalf("%d %s, want %d", r.status, r.raw, c.wantStatus)
			}
			if c.wantMessage != "" {
				if msg, _ := r.body["message"].(string); !strings.Contains(msg, c.wantMessage) {
					t.Errorf("message %q, want it to say %q", msg, c.wantMessage)
				}
				if strings.Contains(r.raw, "127.0.0.1") {
					t.Errorf("the answer names the address: %s", r.raw)
				}
				if f.jwksServed != 0 {
					t.Errorf("the key set server was reached %d times", f.jwksServed)
				}
			}
			if c.redirect && redirects.Load() != 1 {
				t.Errorf("the redirecting URL saw %d fetches, want 1", redirects.Load())
			}
		})
	}
}
