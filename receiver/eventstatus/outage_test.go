package eventstatus_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/testproxy"
	"github.com/hookgate/hookgate/receiver"
)

func sign(apiKey, secret string, body []byte) http.Header {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("x-api-key", apiKey)
	h.Set("x-timestamp", ts)
	h.Set("x-webhook-signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	return h
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestAPIServerOutageDuringIngest cuts the receiver off the API server for 20 s while it
// takes 300 events/s: no ingest request fails, and once the API server is back every
// stored event gets its WebhookEvent in its final phase.
func TestAPIServerOutageDuringIngest(t *testing.T) {
	const (
		ns      = "outage"
		rate    = 300
		before  = 5 * time.Second
		outage  = 20 * time.Second
		after   = 5 * time.Second
		apiKey  = "hgk_outage"
		secret  = "whsec_outage"
		catchUp = 60 * time.Second
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	newNamespace(t, ns)
	// Later tests prune every namespace: leave them none of these thousands.
	t.Cleanup(func() {
		_ = cluster.Client.DeleteAllOf(context.Background(), &hookgatev1alpha1.WebhookEvent{}, client.InNamespace(ns))
	})
	partner := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	if err := cluster.Client.Create(ctx, partner); err != nil {
		t.Fatal(err)
	}
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer sink.Close()
	table := &routing.Table{
		Partners: []routing.Partner{{Namespace: ns, Name: "acme", UID: string(partner.UID),
			RateLimit:   &routing.RateLimit{RequestsPerSecond: 10000, Burst: 10000},
			Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(apiKey), SigningSecret: secret}}}},
		Endpoints: []routing.Endpoint{{Namespace: ns, Name: "events", Path: "/api/webhooks/events",
			Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(time.Hour)}, MaxBodyBytes: 1 << 20,
			Retry:       routing.Retry{MaxAttempts: 12, InitialBackoff: routing.Duration(100 * time.Millisecond), MaxBackoff: routing.Duration(time.Second)},
			Destination: &routing.Destination{URL: sink.URL, Timeout: routing.Duration(5 * time.Second)}}},
	}
	dir := t.TempDir()
	raw, _ := json.Marshal(table)
	routingFile := filepath.Join(dir, "routing.json")
	if err := os.WriteFile(routingFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	apiURL, err := url.Parse(cluster.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testproxy.New(t, apiURL.Host)
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Host = "https://" + proxy.Addr
	cfg.QPS, cfg.Burst = 1000, 2000
	cfg.Timeout = 5 * time.Second

	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		opts := receiver.DefaultOptions()
		opts.RoutingFile, opts.KubeConfig, opts.DataDir = routingFile, cfg, filepath.Join(dir, "data")
		opts.Listen, opts.ProbeListen, opts.StoreRetention = "127.0.0.1:0", "127.0.0.1:0", time.Hour
		opts.EventRetention, opts.MaxEventsPerNamespace = time.Hour, 100000
		opts.DestinationAllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} // the sink
		opts.Log, opts.Registry = logr.Discard(), prometheus.NewRegistry()
		opts.Ready = func(webhook, _ string) { ready <- "http://" + webhook }
		done <- receiver.Run(ctx, opts)
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("receiver: %v", err)
	}

	// Fixed arrival rate: one request every 1/rate s, each timed on its own.
	type sample struct {
		phase   int // 0 before, 1 during, 2 after
		latency time.Duration
		status  int
		err     error
	}
	var phase atomic.Int32
	var mu sync.Mutex
	var samples []sample
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var seq atomic.Int64
	// The sender stops before the requests are counted: one it started after the count
	// would be stored, reflected and missing from it.
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		ticker := time.NewTicker(time.Second / rate)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := []byte(fmt.Sprintf(`{"id":"evt_%d","type":"order.created","data":{"n":%d}}`, seq.Add(1), seq.Load()))
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/webhooks/events", bytes.NewReader(body))
				req.Header = sign(apiKey, secret, body)
				p := int(phase.Load())
				start := time.Now()
				resp, err := httpClient.Do(req)
				s := sample{phase: p, latency: time.Since(start), err: err}
				if err == nil {
					s.status = resp.StatusCode
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}()
		}
	}()
	time.Sleep(before)
	proxy.Cut()
	phase.Store(1)
	t.Log("API server cut off")
	time.Sleep(outage)
	proxy.Restore(t)
	restored := time.Now()
	phase.Store(2)
	t.Log("API server back")
	time.Sleep(after)
	close(stop)
	<-senderDone
	wg.Wait()

	accepted := 0
	var lat [3][]time.Duration
	for _, s := range samples {
		if s.err != nil || s.status != http.StatusAccepted {
			t.Errorf("an ingest request failed during phase %d: status %d, error %v", s.phase, s.status, s.err)
			continue
		}
		accepted++
		lat[s.phase] = append(lat[s.phase], s.latency)
	}
	for i, name := range []string{"before the outage", "during the outage", "after the outage"} {
		t.Logf("ingest %s: %d requests, p50 %s, p99 %s", name, len(lat[i]), percentile(lat[i], 0.5).Round(10*time.Microsecond), percentile(lat[i], 0.99).Round(10*time.Microsecond))
	}

	// Every stored event reaches its final phase in a WebhookEvent.
	took := eventually(t, catchUp, "every event reflected as Delivered", func() error {
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(hookgatev1alpha1.GroupVersion.WithKind("WebhookEventList"))
		if err := cluster.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{hookgatev1alpha1.LabelPhase: "Delivered"}); err != nil {
			return err
		}
		if len(list.Items) != accepted {
			return fmt.Errorf("%d of %d WebhookEvents Delivered", len(list.Items), accepted)
		}
		return nil
	})
	t.Logf("%d events accepted, none refused; all %d WebhookEvents Delivered %s after the API server came back (%s after the load ended)",
		accepted, accepted, time.Since(restored).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("receiver: %v", err)
	}
}
