package store

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// envInt is a test size from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func tenantIngest(ns string, i int, at time.Time, phase string) Ingest {
	id := uuid.Must(uuid.NewV7()).String()
	eventID := fmt.Sprintf("%s-%d", ns, i)
	return Ingest{
		Event: Event{UUID: id, EventID: eventID, Type: "orders/placed", PartnerNamespace: ns, Partner: "acme",
			EndpointNamespace: ns, Endpoint: "orders", ReceivedAt: at, Phase: phase, ContentType: "application/json"},
		Payload:     fmt.Appendf(nil, `{"id":%q,"type":"orders/placed","data":{"amount":120}}`, eventID),
		DedupKey:    ns + "/acme\x00" + ns + "/orders\x00" + eventID,
		DedupWindow: 72 * time.Hour,
	}
}

// TestRedeliverFailedLeavesOtherTenantsIngestAlone: with 200,000 events of namespace big
// in the store, namespace busy redelivers its Failed events every second (what each new
// hookgate.io/redeliver-failed value does) for 30 s while namespace steady sends 200
// events a second on a schedule; every one of steady's events is stored, each of busy's
// redeliveries queues exactly its own Failed events, and steady's ingest latency is
// logged (HOOKGATE_ISOLATION_EVENTS and HOOKGATE_ISOLATION_SECONDS change the sizes).
func TestRedeliverFailedLeavesOtherTenantsIngestAlone(t *testing.T) {
	stored := envInt(t, "HOOKGATE_ISOLATION_EVENTS", 200_000)
	seconds := envInt(t, "HOOKGATE_ISOLATION_SECONDS", 30)
	const busyFailed, steadyRate = 100, 200
	s, err := OpenEmbedded(t.TempDir(), EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	now := time.Now()

	started := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < stored; i += 64 {
				if _, err := s.Ingest(ctx, tenantIngest("big", i, now.Add(-time.Hour), PhaseDelivered)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("stored %d events of namespace big in %s", stored, time.Since(started).Round(time.Millisecond))

	var busy []string
	for i := range busyFailed {
		res, err := s.Ingest(ctx, tenantIngest("busy", i, now.Add(-time.Minute), PhaseQueued))
		if err != nil {
			t.Fatal(err)
		}
		busy = append(busy, res.Event.UUID)
	}
	failAll := func() {
		for _, id := range busy {
			e, err := s.Get(ctx, id)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.RecordAttempt(ctx, "busy-worker", id, Attempt{Number: e.Attempts + 1, StartedAt: time.Now(), ResponseCode: 410}, Outcome{Phase: PhaseFailed}); err != nil {
				t.Error(err)
				return
			}
		}
	}
	failAll()

	var sent atomic.Int64
	// steady sends on a schedule, whatever the answers' latency, and each send's latency
	// counts from when it was due.
	measure := func(d time.Duration, redeliver bool) []time.Duration {
		runCtx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var mu sync.Mutex
		var latencies []time.Duration
		var sends sync.WaitGroup
		if redeliver {
			sends.Add(1)
			go func() {
				defer sends.Done()
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-runCtx.Done():
						return
					case <-tick.C:
					}
					n, err := s.RequeueFailed(context.WithoutCancel(runCtx), "busy/orders", "", time.Now())
					if err != nil || n != busyFailed {
						t.Errorf("RequeueFailed(busy/orders) = %d (%v), want busy's %d Failed events", n, err, busyFailed)
						return
					}
					failAll()
				}
			}()
		}
		interval := time.Second / steadyRate
		begin := time.Now()
		for i := 0; ; i++ {
			due := begin.Add(time.Duration(i) * interval)
			if wait := time.Until(due); wait > 0 {
				select {
				case <-runCtx.Done():
				case <-time.After(wait):
				}
			}
			if runCtx.Err() != nil {
				break
			}
			sends.Add(1)
			go func() {
				defer sends.Done()
				in := tenantIngest("steady", int(sent.Add(1)), time.Now(), PhaseStored)
				if _, err := s.Ingest(context.WithoutCancel(runCtx), in); err != nil {
					t.Errorf("steady's ingest: %v", err)
					return
				}
				mu.Lock()
				latencies = append(latencies, time.Since(due))
				mu.Unlock()
			}()
		}
		sends.Wait()
		slices.Sort(latencies)
		return latencies
	}
	quantile := func(l []time.Duration, q float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(float64(len(l))*q))].Round(10 * time.Microsecond)
	}
	quiet := measure(5*time.Second, false)
	loud := measure(time.Duration(seconds)*time.Second, true)
	if len(loud) < seconds*steadyRate/2 {
		t.Fatalf("steady stored %d events in %ds, want about %d", len(loud), seconds, seconds*steadyRate)
	}
	t.Logf("steady's ingest alone: %d events, p50 %s, p99 %s, max %s", len(quiet), quantile(quiet, 0.5), quantile(quiet, 0.99), quantile(quiet, 1))
	t.Logf("steady's ingest while busy redelivers every second: %d events, p50 %s, p99 %s, max %s", len(loud), quantile(loud, 0.5), quantile(loud, 0.99), quantile(loud, 1))
	if n, err := s.Count(); err != nil || n != stored+busyFailed+len(quiet)+len(loud) {
		t.Fatalf("store holds %d events (%v), want %d", n, err, stored+busyFailed+len(quiet)+len(loud))
	}
}
