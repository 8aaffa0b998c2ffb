package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// sinks are the destinations of TestFanOut: what each one received, by path.
type sinks struct {
	mu       sync.Mutex
	got      map[string][]http.Header
	failBig  atomic.Bool // /big answers 503 while set
	endpoint *httptest.Server
}

func newSinks() *sinks {
	s := &sinks{got: map[string][]http.Header{}}
	s.failBig.Store(true)
	s.endpoint = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.got[r.URL.Path] = append(s.got[r.URL.Path], r.Header.Clone())
		s.mu.Unlock()
		if r.URL.Path == "/big" && s.failBig.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	return s
}

func (s *sinks) received(path string) []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.got[path]...)
}

// eventStatus is what `hookgate status` prints: the status API's answer.
type eventStatus struct {
	UUID       string `json:"uuid"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	Deliveries []struct {
		Destination string `json:"destination"`
		Status      string `json:"status"`
		Attempts    int32  `json:"attempts"`
		LastError   string `json:"lastError"`
	} `json:"deliveries"`
}

func (e eventStatus) phases() map[string]string {
	out := map[string]string{}
	for _, d := range e.Deliveries {
		out[d.Destination] = d.Status
	}
	return out
}

// TestFanOut: one event goes to every destination whose filter takes it (by topic, by
// tenant, by a CEL expression over the body) and not to the one whose filter does not;
// each destination's attempts are its own, so one failing and retrying holds up none of
// the others, and kubectl and the status API show each destination's delivery. An event
// no filter takes is Stored with the reason; a redelivery can name one destination.
func TestFanOut(t *testing.T) {
	p := startControlPlane(t)
	cluster, dir, bin, env := p.cluster, p.dir, p.bin, p.env
	kubectl := func(args ...string) string { t.Helper(); return p.kubectl(t, args...) }
	s := newSinks()
	defer s.endpoint.Close()

	receiverAddr := freePort(t)
	start := func(name string, extraEnv []string, args ...string) { p.start(t, name, extraEnv, args...) }
	start("operator", nil, "operator", "--receiver-namespace", "hookgate-system", "--shared-path-namespaces", "partners", "--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0")
	apiArgs, registerAPI := p.eventsAPI(t)
	start("receiver", []string{"POD_NAME=receiver-0"}, append([]string{"receiver", "--namespace", "hookgate-system", "--data-dir", filepath.Join(dir, "data"),
		"--listen", receiverAddr, "--probe-listen", "127.0.0.1:0", "--destination-allow-cidrs", "127.0.0.0/8,::1/128",
		"--public-url", "http://" + receiverAddr}, apiArgs...)...)
	registerAPI()

	manifest := filepath.Join(dir, "fanout.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: hookgate.io/v1alpha1
kind: Partner
metadata:
  name: acme
spec:
  tenantID: OU1243
---
apiVersion: hookgate.io/v1alpha1
kind: Partner
metadata:
  name: globex
---
apiVersion: hookgate.io/v1alpha1
kind: WebhookEndpoint
metadata:
  name: orders
spec:
  path: /api/webhooks/events
  partners: [acme, globex]
  destinations:
  - name: billing
    url: %[1]s/billing
    filter:
      types: ["order.*"]
  - name: tenant-feed
    url: %[1]s/tenant
    signing:
      type: RSA
    filter:
      tenants: [OU1243]
  - name: big-orders
    url: %[1]s/big
    signing:
      type: JWT
      jwt:
        audience: big-orders
    retry:
      maxAttempts: 50
      initialBackoff: 200ms
      maxBackoff: 400ms
    filter:
      expression: event.data.amount > 100
  - name: archive
    url: %[1]s/archive
    filter:
      types: ["invoice.*"]
`, s.endpoint.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-n", "partners", "-f", manifest)
	kubectl("wait", "-n", "partners", "--for=condition=Ready", "partner/acme", "partner/globex", "webhookendpoint/orders", "--timeout=60s")

	sendAs := func(partner, id, typ, data string) {
		t.Helper()
		out, err := run(t, env, bin, "send", "--partner", partner, "-n", "partners", "--url", "http://"+receiverAddr+"/api/webhooks/events",
			"--type", typ, "--data", data, "--id", id)
		if err != nil {
			t.Fatalf("hookgate send %s: %v\n%s", id, err, out)
		}
	}
	status := func(partner, id string) eventStatus {
		t.Helper()
		out, err := run(t, env, bin, "status", "--partner", partner, "-n", "partners", "--url", "http://"+receiverAddr, id)
		if err != nil {
			t.Fatalf("hookgate status %s: %v\n%s", id, err, out)
		}
		var st eventStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("hookgate status %s printed %q: %v", id, out, err)
		}
		return st
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, limit)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The CEL expression reads the parsed body as event.data: this body has the amount
	// at its top (hookgate send would put it under "data").
	var creds corev1.Secret
	if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: "partners", Name: "acme-credentials"}, &creds); err != nil {
		t.Fatal(err)
	}
	if _, ok := send(http.DefaultClient, "http://"+receiverAddr, string(creds.Data[hookgatev1alpha1.SecretKeyAPIKey]), string(creds.Data[hookgatev1alpha1.SecretKeySigningSecret]),
		[]byte(`{"id":"evt_big","type":"order.created","orderId":"ORD-1","amount":250}`)); !ok {
		t.Fatal("posting evt_big was not accepted")
	}
	sendAs("globex", "evt_nobody", "user.created", `{"amount":5}`)

	// billing (topic) and tenant-feed (tenant) deliver at once; big-orders (CEL) keeps
	// failing and retrying meanwhile; archive (invoice.*) never gets the event.
	var st eventStatus
	last := ""
	waitFor("billing and tenant-feed Delivered while big-orders retries", 30*time.Second, func() bool {
		st = status("acme", "evt_big")
		p := st.phases()
		if now := fmt.Sprint(st.Status, p, len(s.received("/big"))); now != last {
			t.Logf("evt_big: %s", now)
			last = now
		}
		return p["billing"] == "Delivered" && p["tenant-feed"] == "Delivered" && p["big-orders"] == "Retrying" && len(s.received("/big")) >= 2
	})
	t.Logf("status API while big-orders retries: %+v", st)
	if st.Status != "Retrying" || len(st.Deliveries) != 3 {
		t.Fatalf("event status %q with %d deliveries, want the aggregate Retrying over 3 (archive filtered out)", st.Status, len(st.Deliveries))
	}
	var table string
	waitFor("kubectl shows 2/3 Delivered", 30*time.Second, func() bool {
		table = kubectl("get", "webhookevents", "-n", "partners", "-l", "hookgate.io/partner=acme")
		return strings.Contains(table, "Retrying") && strings.Contains(table, "2/3")
	})
	t.Logf("kubectl get webhookevents while big-orders retries:\n%s", table)
	if n := len(s.received("/billing")) + len(s.received("/tenant")); n != 2 {
		t.Fatalf("billing and tenant-feed got %d deliveries while big-orders retried, want one each", n)
	}

	s.failBig.Store(false)
	waitFor("kubectl shows 3/3 Delivered", 30*time.Second, func() bool {
		table = kubectl("get", "webhookevents", "-n", "partners", "-l", "hookgate.io/partner=acme")
		return strings.Contains(table, "Delivered") && strings.Contains(table, "3/3")
	})
	t.Logf("kubectl get webhookevents after big-orders recovered:\n%s", table)
	st = status("acme", "evt_big")
	deliveries := kubectl("get", "webhookevents", "-n", "partners", st.UUID, "-o",
		`jsonpath={range .status.deliveries[*]}{.destination}={.phase}/{.attempts}{" "}{end}`)
	t.Logf("status.deliveries: %s", deliveries)
	for _, want := range []string{"billing=Delivered/1", "tenant-feed=Delivered/1", "big-orders=Delivered/"} {
		if !strings.Contains(deliveries, want) {
			t.Fatalf("status.deliveries = %q, want %s", deliveries, want)
		}
	}
	if got := s.received("/archive"); len(got) != 0 {
		t.Fatalf("archive got %d deliveries of an order event", len(got))
	}
	if h := s.received("/big"); !strings.HasPrefix(h[len(h)-1].Get("Authorization"), "Bearer ") || h[0].Get("X-Hookgate-Webhook-Id") != h[len(h)-1].Get("X-Hookgate-Webhook-Id") {
		t.Fatalf("big-orders deliveries: a JWT and the same webhook id on every retry, got %v", h[len(h)-1])
	}
	if h := s.received("/tenant"); h[0].Get("X-Hookgate-Signature") == "" || h[0].Get("X-Hookgate-Tenant-Id") != "OU1243" {
		t.Fatalf("tenant-feed delivery: RSA signature and tenant header, got %v", h[0])
	}
	keys := kubectl("get", "secret", "-n", "partners", "orders-signing", "-o", `jsonpath={.data}`)
	for _, k := range []string{`"billing"`, `"tenant-feed"`, `"big-orders"`, `"archive"`} {
		if !strings.Contains(keys, k) {
			t.Fatalf("orders-signing has no key %s: %s", k, keys)
		}
	}
	published := kubectl("get", "webhookendpoint", "-n", "partners", "orders", "-o",
		`jsonpath={range .status.destinations[*]}{.name}:{.signing}:{.keyID}{" "}{end}`)
	t.Logf("status.destinations: %s", published)

	// No destination takes globex's user.created: Stored, with the reason.
	if nobody := status("globex", "evt_nobody"); nobody.Status != "Stored" || nobody.Reason == "" || len(nobody.Deliveries) != 0 {
		t.Fatalf("evt_nobody = %+v, want Stored with a reason and no deliveries", nobody)
	}

	// A redelivery naming one destination sends to that one alone.
	kubectl("annotate", "webhookevent", "-n", "partners", st.UUID, "hookgate.io/redeliver-destination=billing", "hookgate.io/redeliver=again")
	waitFor("billing's redelivery", 30*time.Second, func() bool { return len(s.received("/billing")) == 2 })
	time.Sleep(time.Second)
	if n := len(s.received("/tenant")); n != 1 {
		t.Fatalf("tenant-feed got %d deliveries after a redelivery to billing, want 1", n)
	}
}
