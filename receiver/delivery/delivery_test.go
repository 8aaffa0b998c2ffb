package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/store"
)

const signingSecret = "whsec_dGVzdC1zaWduaW5nLWtleS1mb3ItZGVsaXZlcmllcw=="

type harness struct {
	store  *store.Embedded
	holder *routing.Holder
	// egress is the dispatcher's guard: by default it lets deliveries reach the loopback
	// sinks of the tests, as --destination-allow-cidrs 127.0.0.0/8,::1/128 does.
	egress *egress.Guard
	log    logr.Logger
}

// loopbackSinks is the allow list of tests that deliver to httptest servers.
var loopbackSinks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func newHarness(t *testing.T, url string, policy routing.Retry, timeout time.Duration) *harness {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	table := &routing.Table{
		Partners: []routing.Partner{{Namespace: "ns", Name: "acme"}},
		Endpoints: []routing.Endpoint{{
			Namespace: "ns", Name: "orders", Path: "/api/webhooks/orders", Retry: policy,
			Destination: &routing.Destination{URL: url, Timeout: routing.Duration(timeout), SigningSecret: signingSecret,
				Headers: map[string]string{"X-Team": "orders"}},
		}},
	}
	table.Finalize(nil)
	holder := routing.NewHolder()
	holder.Swap(table)
	return &harness{store: st, holder: holder, egress: egress.New(egress.Config{AllowCIDRs: loopbackSinks}), log: logr.Discard()}
}

func (h *harness) ingest(t *testing.T, body string) store.Event {
	t.Helper()
	res, err := h.store.Ingest(context.Background(), store.Ingest{
		Event: store.Event{UUID: "0190a0b0-0000-7000-8000-000000000001", EventID: "evt_1", Type: "order.created",
			PartnerNamespace: "ns", Partner: "acme", EndpointNamespace: "ns", Endpoint: "orders",
			ReceivedAt: time.Now(), Phase: store.PhaseQueued, ContentType: "application/json; charset=utf-8"},
		Payload: []byte(body),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Event
}

// run delivers until the event is finished and returns it with its attempts.
func (h *harness) run(t *testing.T, uuid string) (*store.Event, []store.Attempt) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDispatcher(Options{Store: h.store, Holder: h.holder, Log: h.log, Egress: h.egress, PollInterval: 10 * time.Millisecond})
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ev, err := h.store.Get(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Finished() {
			attempts, err := h.store.Attempts(ctx, uuid)
			if err != nil {
				t.Fatal(err)
			}
			return ev, attempts
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the event did not finish within 15s")
	return nil, nil
}

// TestDeliveryIsByteForByteAndSigned checks what a destination receives against the
// Standard Webhooks algorithm, written here independently of the code under test.
func TestDeliveryIsByteForByteAndSigned(t *testing.T) {
	body := "{\"id\":\"evt_1\",  \"type\":\"order.created\",\n \"data\":{\"amount\":99.99,\"note\":\"caf\u00e9 \\u00e9\"}}"
	var got *http.Request
	var gotBody []byte
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		gotBody, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	h := newHarness(t, sink.URL+"/hooks", routing.Retry{MaxAttempts: 3, InitialBackoff: routing.Duration(time.Millisecond), MaxBackoff: routing.Duration(time.Millisecond)}, time.Second)
	ev := h.ingest(t, body)
	final, attempts := h.run(t, ev.UUID)
	if final.Phase != store.PhaseDelivered || len(attempts) != 1 || final.DeliveredAt == nil || final.LastResponseCode != 204 {
		t.Fatalf("event %+v after %d attempts", final, len(attempts))
	}
	if string(gotBody) != body {
		t.Fatalf("body changed on the way:\n got %q\nwant %q", gotBody, body)
	}
	want := map[string]string{
		"Content-Type": "application/json; charset=utf-8", "Webhook-Id": ev.UUID, "X-Hookgate-Partner": "acme",
		"X-Hookgate-Event-Type": "order.created", "X-Hookgate-Event-Id": "evt_1", "X-Hookgate-Attempt": "1", "X-Team": "orders",
	}
	for k, v := range want {
		if got.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
		}
	}
	if got.URL.Path != "/hooks" || got.Method != http.MethodPost {
		t.Errorf("request %s %s", got.Method, got.URL.Path)
	}
	// Standard Webhooks: base64(HMAC-SHA256(base64-decoded secret, id.timestamp.body)).
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(signingSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(got.Header.Get("Webhook-Id") + "." + got.Header.Get("Webhook-Timestamp") + "." + string(gotBody)))
	expected := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	found := false
	for _, sig := range strings.Fields(got.Header.Get("Webhook-Signature")) {
		if v, s, ok := strings.Cut(sig, ","); ok && v == "v1" && hmac.Equal([]byte(s), []byte(expected)) {
			found = true
		}
	}
	if !found {
		t.Fatalf("webhook-signature %q does not verify", got.Header.Get("Webhook-Signature"))
	}
}

func TestDeliveryOutcomes(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()
	const initial, maxBackoff = 40 * time.Millisecond, 200 * time.Millisecond
	policy := func(attempts int32) routing.Retry {
		return routing.Retry{MaxAttempts: attempts, InitialBackoff: routing.Duration(initial), MaxBackoff: routing.Duration(maxBackoff)}
	}
	cases := []struct {
		name         string
		answers      []int // status codes, in order; the last repeats
		retryAfter   string
		slow         bool
		url          string
		policy       routing.Retry
		wantPhase    string
		wantAttempts int
		wantError    string
		minGap       time.Duration // between the first two attempts, when set
	}{
		{name: "500, 500, 200 delivered after 3", answers: []int{500, 500, 200}, policy: policy(12), wantPhase: store.PhaseDelivered, wantAttempts: 3},
		{name: "400 failed after 1", answers: []int{400}, policy: policy(12), wantPhase: store.PhaseFailed, wantAttempts: 1, wantError: "HTTP 400"},
		{name: "410 failed after 1", answers: []int{410}, policy: policy(12), wantPhase: store.PhaseFailed, wantAttempts: 1, wantError: "HTTP 410"},
		{name: "429 with Retry-After, then 200", answers: []int{429, 200}, retryAfter: "1", policy: routing.Retry{MaxAttempts: 5, InitialBackoff: routing.Duration(initial), MaxBackoff: routing.Duration(5 * time.Second)},
			wantPhase: store.PhaseDelivered, wantAttempts: 2, minGap: 900 * time.Millisecond},
		{name: "429 Retry-After clamped to maxBackoff", answers: []int{429, 200}, retryAfter: "3600", policy: policy(5), wantPhase: store.PhaseDelivered, wantAttempts: 2},
		{name: "timeouts until maxAttempts", answers: []int{200}, slow: true, policy: policy(2), wantPhase: store.PhaseFailed, wantAttempts: 2, wantError: "timeout"},
		{name: "connection refused until maxAttempts", url: refusedURL, policy: policy(3), wantPhase: store.PhaseFailed, wantAttempts: 3, wantError: "connection refused"},
		{name: "503 until maxAttempts exhausted", answers: []int{503}, policy: policy(4), wantPhase: store.PhaseFailed, wantAttempts: 4, wantError: "HTTP 503"},
		{name: "link-local destination refused", url: "http://169.254.169.254/latest/meta-data", policy: policy(5), wantPhase: store.PhaseFailed, wantAttempts: 1, wantError: "destination refused by egress policy"},
		{name: "redirect is not followed", answers: []int{302}, policy: policy(5), wantPhase: store.PhaseFailed, wantAttempts: 1, wantError: "HTTP 302"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			var mu sync.Mutex
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				if c.slow {
					select {
					case <-time.After(2 * time.Second):
					case <-r.Context().Done():
					}
				}
				mu.Lock()
				code := c.answers[min(n, len(c.answers))-1]
				mu.Unlock()
				if code == 429 && c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				if code == 302 {
					w.Header().Set("Location", "http://example.invalid/")
				}
				w.WriteHeader(code)
			}))
			defer sink.Close()
			url := c.url
			if url == "" {
				url = sink.URL
			}
			h := newHarness(t, url, c.policy, 100*time.Millisecond)
			ev := h.ingest(t, `{"id":"evt_1"}`)
			final, attempts := h.run(t, ev.UUID)
			if final.Phase != c.wantPhase || int(final.Attempts) != c.wantAttempts || len(attempts) != c.wantAttempts {
				t.Fatalf("phase %s after %d attempts (%d recorded), want %s after %d; last error %q", final.Phase, final.Attempts, len(attempts), c.wantPhase, c.wantAttempts, final.LastError)
			}
			if c.wantError != "" && final.LastError != c.wantError {
				t.Errorf("lastError %q, want %q", final.LastError, c.wantError)
			}
			// Each retry waited no longer than the policy allows (full jitter under the
			// doubling ceiling, or Retry-After clamped to maxBackoff).
			for i := 1; i < len(attempts); i++ {
				gap := attempts[i].StartedAt.Sub(attempts[i-1].StartedAt.Add(attempts[i-1].Duration))
				ceiling := min(c.policy.InitialBackoff.Std()<<(i-1), c.policy.MaxBackoff.Std())
				if c.retryAfter != "" {
					ceiling = c.policy.MaxBackoff.Std()
				}
				if gap > ceiling+150*time.Millisecond {
					t.Errorf("wait before attempt %d was %s, over the policy's %s", i+1, gap, ceiling)
				}
				t.Logf("attempt %d after %s (ceiling %s), answer %d %q", i+1, gap.Round(time.Millisecond), ceiling, attempts[i].ResponseCode, attempts[i].Error)
			}
			if c.minGap > 0 {
				if gap := attempts[1].StartedAt.Sub(attempts[0].StartedAt); gap < c.minGap {
					t.Errorf("Retry-After not honoured: second attempt after %s", gap)
				}
			}
		})
	}
}

func TestPausedEndpointHoldsDeliveries(t *testing.T) {
	var calls atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { calls.Add(1) }))
	defer sink.Close()
	h := newHarness(t, sink.URL, routing.Retry{MaxAttempts: 3, InitialBackoff: routing.Duration(time.Millisecond), MaxBackoff: routing.Duration(time.Millisecond)}, time.Second)
	paused := *h.holder.Current()
	paused.Endpoints = append([]routing.Endpoint(nil), paused.Endpoints...)
	paused.Endpoints[0].Paused = true
	paused.Finalize(nil)
	unpaused := h.holder.Current()
	h.holder.Swap(&paused)
	ev := h.ingest(t, `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDispatcher(Options{Store: h.store, Holder: h.holder, Log: h.log, Egress: h.egress, PollInterval: 10 * time.Millisecond})
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	time.Sleep(300 * time.Millisecond)
	if calls.Load() != 0 {
		t.Fatal("a paused endpoint's event was delivered")
	}
	h.holder.Swap(unpaused)
	d.Wake()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if calls.Load() == 0 {
		t.Fatal("not delivered after unpausing")
	}
	got, _ := h.store.Get(context.Background(), ev.UUID)
	if got.Phase != store.PhaseDelivered {
		t.Fatalf("phase %s", got.Phase)
	}
}
