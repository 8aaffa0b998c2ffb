package receiver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store/postgres/pgtest"
)

const (
	floodKey     = "hgk_flood-key"
	floodSecret  = "whsec_flood-secret"
	pollerKey    = "hgk_poller-key"
	steadyKey    = "hgk_steady-key"
	steadySecret = "whsec_steady-secret"
	// pollerRate is the poller's rate limit, at which it polls.
	pollerRate = 20
	// pollerHistory is how many Failed events the poller's partner holds.
	pollerHistory = 1_000_000
)

// TestPostgreSQLBusyTenantLeavesAnotherAlone is issue 27's isolation case on PostgreSQL,
// through the receiver's HTTP API: namespace `quiet`'s partner sends 20 events a second
// on a schedule while, in namespace `loud`,
//  1. a partner sends with 256 concurrent connections as fast as it is answered, then
//  2. a partner polls GET /api/webhooks/events?status=Failed at its rate limit over
//     1,000,000 stored events.
//
// It asserts that the quiet partner gets no 5xx and that every one of its events is
// stored, and prints its latency from each send's due time (docs/performance.md quotes
// it); it asserts no timing.
func TestPostgreSQLBusyTenantLeavesAnotherAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a million events")
	}
	dsn := pgtest.FreshSchema(t)
	rcv := startTestReceiver(t, twoTenantTable(), func(o *Options) { o.DatabaseURL = dsn })
	seedFailedEvents(t, dsn, "loud/poller", "loud/orders", pollerHistory)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 300, MaxConnsPerHost: 300}, Timeout: 30 * time.Second}
	const phase = 10 * time.Second

	t.Run("a partner with 256 connections", func(t *testing.T) {
		stop := make(chan struct{})
		var flooded, floodErrors atomic.Int64
		var wg sync.WaitGroup
		for w := range 256 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					body := fmt.Appendf(nil, `{"id":"flood-%d-%d","type":"order.created"}`, w, i)
					req := newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/loud-orders", partnerHMACHeaders(floodKey, floodSecret, time.Now(), body), body)
					resp, err := client.Do(req)
					if err != nil || resp.StatusCode != http.StatusAccepted {
						floodErrors.Add(1)
					} else {
						flooded.Add(1)
					}
					if resp != nil {
						_ = resp.Body.Close()
					}
				}
			})
		}
		lat := sendOnSchedule(t, client, rcv.url, "flood", phase)
		close(stop)
		wg.Wait()
		t.Logf("the loud partner: %d accepted (%.0f/s), %d not accepted", flooded.Load(), float64(flooded.Load())/phase.Seconds(), floodErrors.Load())
		logLatency(t, "the quiet partner beside 256 connections", lat)
		if flooded.Load() == 0 {
			t.Fatal("the loud partner got nothing accepted: the case did not load the store")
		}
	})

	t.Run("a partner polling a million Failed events", func(t *testing.T) {
		stop := make(chan struct{})
		var polls, pollFailures atomic.Int64
		var pollLat []time.Duration
		var mu sync.Mutex
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(time.Second / pollerRate)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				started := time.Now()
				resp := do(t, client, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/events?status=Failed&limit=100", map[string]string{"x-api-key": pollerKey}, nil))
				mu.Lock()
				pollLat = append(pollLat, time.Since(started))
				mu.Unlock()
				if resp.status != http.StatusOK {
					pollFailures.Add(1)
					continue
				}
				if evs, _ := resp.body["events"].([]any); len(evs) != 100 {
					pollFailures.Add(1)
					continue
				}
				polls.Add(1)
			}
		})
		lat := sendOnSchedule(t, client, rcv.url, "poll", phase)
		close(stop)
		wg.Wait()
		logLatency(t, "the poller's pages of 100", pollLat)
		logLatency(t, "the quiet partner beside the poller", lat)
		if polls.Load() == 0 || pollFailures.Load() > 0 {
			t.Fatalf("the poller: %d full pages, %d failures; want every poll a full page of Failed events", polls.Load(), pollFailures.Load())
		}
	})
}

// sendOnSchedule sends the quiet partner's 20 events a second for d, each on its due
// time whatever the earlier answers' latency, and returns each one's latency from its
// due time. Any answer but 202 fails the test.
func sendOnSchedule(t *testing.T, client *http.Client, base, prefix string, d time.Duration) []time.Duration {
	t.Helper()
	const rate = 20
	n := int(d.Seconds() * rate)
	lat := make([]time.Duration, n)
	start := time.Now()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := range n {
		due := start.Add(time.Duration(i) * time.Second / rate)
		time.Sleep(time.Until(due))
		wg.Go(func() {
			body := fmt.Appendf(nil, `{"id":"steady-%s-%d","type":"order.created"}`, prefix, i)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/api/webhooks/quiet-orders", bytes.NewReader(body))
			if err != nil {
				failures.Add(1)
				return
			}
			for k, v := range partnerHMACHeaders(steadyKey, steadySecret, time.Now(), body) {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			lat[i] = time.Since(due)
			if err != nil {
				t.Errorf("quiet event %d: %v", i, err)
				failures.Add(1)
				return
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("quiet event %d: %d, want 202", i, resp.StatusCode)
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of the quiet partner's %d events were not accepted", failures.Load(), n)
	}
	return lat
}

func logLatency(t *testing.T, what string, lat []time.Duration) {
	t.Helper()
	if len(lat) == 0 {
		t.Logf("%s: no samples", what)
		return
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(10 * time.Microsecond)
	}
	t.Logf("%s: %d samples, p50 %v, p99 %v, max %v", what, len(s), at(.50), at(.99), s[len(s)-1].Round(10*time.Microsecond))
}

// twoTenantTable has namespace loud's flooding and polling partners and namespace
// quiet's steady one, each endpoint storing what it accepts.
func twoTenantTable() *routing.Table {
	cred := func(key, secret string) routing.Credential {
		return routing.Credential{APIKeySHA256: routing.HashAPIKey(key), SigningSecret: routing.SecretValue(secret)}
	}
	endpoint := func(ns, name string, partners ...string) routing.Endpoint {
		return routing.Endpoint{
			Namespace: ns, Name: name, Path: "/api/webhooks/" + ns + "-" + name, Partners: partners,
			Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(72 * time.Hour)},
			MaxBodyBytes: 1 << 20,
		}
	}
	return &routing.Table{
		Partners: []routing.Partner{
			{Namespace: "loud", Name: "flood", Credentials: []routing.Credential{cred(floodKey, floodSecret)}, RateLimit: &routing.RateLimit{RequestsPerSecond: 1_000_000, Burst: 1_000_000}},
			{Namespace: "loud", Name: "poller", Credentials: []routing.Credential{cred(pollerKey, "whsec_poller-secret")}, RateLimit: &routing.RateLimit{RequestsPerSecond: pollerRate, Burst: pollerRate}},
			{Namespace: "quiet", Name: "steady", Credentials: []routing.Credential{cred(steadyKey, steadySecret)}, RateLimit: &routing.RateLimit{RequestsPerSecond: 100, Burst: 100}},
		},
		Endpoints: []routing.Endpoint{endpoint("loud", "orders", "flood", "poller"), endpoint("quiet", "orders", "steady")},
	}
}

// seedFailedEvents writes n Failed events of partnerKey straight into the database, in
// one statement (the receiver's own ingest of a million events would take minutes), and
// analyses the table as autovacuum would after such a load.
func seedFailedEvents(t *testing.T, dsn, partnerKey, endpointKey string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	started := time.Now()
	ns, name, _ := strings.Cut(partnerKey, "/")
	ens, ename, _ := strings.Cut(endpointKey, "/")
	if _, err := conn.Exec(ctx, `INSERT INTO events (uuid, partner_key, endpoint_key, event_id, type, partner_namespace, partner,
			endpoint_namespace, endpoint, received_at, phase, attempts, last_response_code, last_error, version, size_bytes, payload_bytes)
		SELECT 'seed-' || lpad(i::text, 8, '0'), $1, $2, 'old-' || i, 'order.created', $3, $4, $5, $6,
			now() - interval '1 hour' + i * interval '1 millisecond', 'Failed', 12, 500, 'HTTP 500', 2, 40, 40
		FROM generate_series(1, $7::int) AS i`, partnerKey, endpointKey, ns, name, ens, ename, n); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE events"); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d Failed events in %v", n, time.Since(started).Round(time.Millisecond))
}
