package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkConcurrentIngest is the store alone under the headline load: 64 writers of
// 1 KiB events, 100 partners, each event with a new dedup key, every one fsync'd. It
// reports the process's CPU per event and, on Pebble, the bytes its compactions wrote
// per event (docs/performance.md).
func BenchmarkConcurrentIngest(b *testing.B) {
	for _, engine := range Engines {
		b.Run(engine, func(b *testing.B) {
			s, err := OpenEmbedded(b.TempDir(), EmbeddedOptions{Engine: engine})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := make([]byte, 1024)
			for i := range payload {
				payload[i] = 'a' + byte(i*7%26)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			var before, after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						eventID := uuid.NewString()
						partner := fmt.Sprintf("p%d", n%100)
						in := Ingest{
							Event: Event{UUID: uuid.Must(uuid.NewV7()).String(), EventID: eventID, Type: "order.created",
								PartnerNamespace: "ns", Partner: partner, EndpointNamespace: "ns", Endpoint: "orders",
								ReceivedAt: time.Now(), ContentType: "application/json", Phase: PhaseStored, SizeBytes: int64(len(payload))},
							Payload: payload, DedupKey: "ns/" + partner + "\x00ns/orders\x00" + eventID, DedupWindow: 24 * time.Hour,
						}
						if _, err := s.Ingest(b.Context(), in); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			if p, ok := s.eng.(*pebbleEngine); ok {
				m := p.db.Metrics()
				var compacted uint64
				for level := 1; level < len(m.Levels); level++ {
					compacted += m.Levels[level].TableBytesCompacted
				}
				b.ReportMetric(float64(compacted)/float64(b.N), "compacted-B/event")
			}
		})
	}
}
