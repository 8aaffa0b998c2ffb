package webhookevents_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/labels"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/postgres"
	"github.com/hookgate/hookgate/receiver/store/postgres/pgtest"
)

// storedEvents is the history the list benchmark reads over: the million.
const storedEvents = 1_000_000

// BenchmarkListPageAtAMillionEvents measures one page of 500 WebhookEvents (the
// storage's List, as kubectl's first page asks for it) over a million stored events of
// one namespace, on the embedded store and on PostgreSQL (with
// HOOKGATE_TEST_DATABASE_URL): a namespace's newest page, a partner's, and a phase's that
// holds a tenth of the events. It reports p50 and p99 per page. Seeding takes about a
// minute per store; run it with make bench-store.
func BenchmarkListPageAtAMillionEvents(b *testing.B) {
	b.Run("pebble", func(b *testing.B) {
		st, err := store.OpenEmbedded(b.TempDir(), store.EmbeddedOptions{Engine: store.EnginePebble, Log: logr.Discard()})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		seedEmbedded(b, st)
		benchPages(b, st)
	})
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv("HOOKGATE_TEST_DATABASE_URL") == "" {
			b.Skip("HOOKGATE_TEST_DATABASE_URL is not set: no PostgreSQL to measure")
		}
		dsn := pgtest.FreshSchema(b)
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		seedPostgres(b, dsn)
		benchPages(b, st)
	})
}

func benchPages(b *testing.B, st webhookevents.Store) {
	rest := webhookevents.New(webhookevents.Options{Store: st, Log: logr.Discard()})
	ctx := genericapirequest.WithNamespace(context.Background(), "bench")
	for _, tc := range []struct{ name, selector string }{
		{"namespace", ""},
		{"partner", "hookgate.io/partner=acme"},
		{"phase", "hookgate.io/phase=Failed"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sel, err := labels.Parse(tc.selector)
			if err != nil {
				b.Fatal(err)
			}
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				obj, err := rest.List(ctx, &metainternalversion.ListOptions{Limit: 500, LabelSelector: sel})
				if err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				if n := len(obj.(*eventsv1alpha1.WebhookEventList).Items); n != 500 {
					b.Fatalf("a page of %d events, want 500", n)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// seedEmbedded ingests the history through the store's own group commit, 64 at a time:
// a tenth Failed, the rest Delivered; partners acme and globex half each.
func seedEmbedded(b *testing.B, st store.Store) {
	b.Helper()
	started := time.Now()
	base := time.Now().Add(-time.Hour)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= storedEvents {
					return
				}
				at := base.Add(time.Duration(i) * time.Microsecond)
				u := uuid.Must(uuid.NewV7())
				phase, partner := store.PhaseDelivered, "acme"
				if i%10 == 0 {
					phase = store.PhaseFailed
				}
				if i%2 == 1 {
					partner = "globex"
				}
				if _, err := st.Ingest(context.Background(), store.Ingest{Event: store.Event{UUID: u.String(), EventID: fmt.Sprint("e", i), Type: "order.created",
					PartnerNamespace: "bench", Partner: partner, EndpointNamespace: "bench", Endpoint: "orders", ReceivedAt: at, Phase: phase, SizeBytes: 2},
					Payload: []byte("{}")}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.Logf("seeded %d events in the embedded store in %s", storedEvents, time.Since(started).Round(time.Second))
}

// seedPostgres writes the history in one statement, as the PostgreSQL isolation test does.
func seedPostgres(b *testing.B, dsn string) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	started := time.Now()
	if _, err := conn.Exec(ctx, `INSERT INTO events (uuid, partner_key, endpoint_key, event_id, type, partner_namespace, partner,
			endpoint_namespace, endpoint, received_at, phase, attempts, last_response_code, last_error, version, size_bytes, payload_bytes)
		SELECT 'seed-' || lpad(i::text, 8, '0'), 'bench/' || p, 'bench/orders', 'e' || i, 'order.created', 'bench', p, 'bench', 'orders',
			now() - interval '1 hour' + i * interval '1 millisecond', CASE WHEN i % 10 = 0 THEN 'Failed' ELSE 'Delivered' END, 1, 200, '', 2, 2, 2
		FROM generate_series(1, $1::int) AS i, LATERAL (SELECT CASE WHEN i % 2 = 1 THEN 'globex' ELSE 'acme' END AS p) AS partner`, storedEvents); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE events"); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d events in PostgreSQL in %s", storedEvents, time.Since(started).Round(time.Second))
}
