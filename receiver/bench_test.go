package receiver

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/postgres"
	"github.com/hookgate/hookgate/receiver/store/postgres/pgtest"
)

// BenchmarkIngest measures the whole pipeline per request — route, limits, PartnerHMAC
// authentication, authorization, rate limit, parse, dedupe and a durable (fsync'd) store
// write — through the HTTP handler, without the network. The parallel variants show what
// group commit does with concurrent requests.
func BenchmarkIngest(b *testing.B) {
	for _, engine := range store.Engines {
		for _, payload := range []int{1 << 10, 64 << 10} {
			for _, parallel := range []int{1, 64} {
				b.Run(fmt.Sprintf("engine=%s/payload=%dKiB/concurrency=%d", engine, payload>>10, parallel), func(b *testing.B) {
					benchmarkIngest(b, engine, payload, parallel)
				})
			}
		}
	}
}

// BenchmarkIngestPostgres is BenchmarkIngest on the PostgreSQL store, at concurrency 64
// with pools of several sizes: every event is its own transaction, and concurrent
// transactions share WAL flushes (PostgreSQL's group commit), so the pool size decides how
// many events one flush can carry.
func BenchmarkIngestPostgres(b *testing.B) {
	for _, conns := range []int32{4, 16, 64} {
		b.Run(fmt.Sprintf("payload=1KiB/concurrency=64/pool=%d", conns), func(b *testing.B) {
			dsn := pgtest.FreshSchema(b)
			st, err := postgres.Open(b.Context(), dsn, postgres.Options{MaxConns: conns})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchmarkIngestOn(b, st, nil, 1<<10, 64)
		})
	}
}

func benchmarkIngest(b *testing.B, engine string, payloadBytes, parallel int) {
	var commits, batched atomic.Int64
	st, err := store.OpenEmbedded(b.TempDir(), store.EmbeddedOptions{Engine: engine, Log: logr.Discard(),
		Observe: func(_ time.Duration, n int) { commits.Add(1); batched.Add(int64(n)) }})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchmarkIngestOn(b, st, func() {
		if c := commits.Load(); c > 0 {
			b.ReportMetric(float64(batched.Load())/float64(c), "events/commit")
		}
	}, payloadBytes, parallel)
}

func benchmarkIngestOn(b *testing.B, st store.Store, report func(), payloadBytes, parallel int) {
	const apiKey, secret = "hgk_bench", "whsec_bench"
	table := crashTable(apiKey, secret)
	table.Endpoints[0].MaxBodyBytes = 1 << 20
	table.Finalize(nil)
	holder := routing.NewHolder()
	holder.Swap(table)
	srv := NewServer(Config{Store: st, Holder: holder, Log: logr.Discard()})
	handler := srv.Handler()
	pad := bytes.Repeat([]byte("x"), payloadBytes-60)
	var seq atomic.Int64
	b.SetBytes(int64(payloadBytes))
	b.ReportAllocs()
	b.ResetTimer()
	run := func() {
		body := []byte(fmt.Sprintf(`{"id":"evt_%d","type":"order.created","data":%q}`, seq.Add(1), pad))
		req := httptest.NewRequest(http.MethodPost, "/api/webhooks/events", bytes.NewReader(body))
		for k, v := range partnerHMACHeaders(apiKey, secret, time.Now(), body) {
			req.Header.Set(k, v)
		}
		req.RemoteAddr = "127.0.0.1:40000"
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	if parallel == 1 {
		for b.Loop() {
			run()
		}
	} else {
		// RunParallel starts parallelism × GOMAXPROCS goroutines.
		b.SetParallelism(max(1, parallel/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				run()
			}
		})
	}
	b.StopTimer()
	if report != nil {
		report()
	}
}
