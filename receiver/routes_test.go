package receiver

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/internal/routing"
)

// TestRoutesCompiledOnceAfterASwap: when a new routing table is swapped in, the requests
// in flight wait for one compile of it instead of each compiling it, and every one of
// them is answered from the new table.
func TestRoutesCompiledOnceAfterASwap(t *testing.T) {
	cases := []struct {
		name     string
		requests int
		swaps    int
		path     string
		method   string
		want     int // status of every request, from the new table
	}{
		{"one request", 1, 1, "/api/webhooks/stored", http.MethodGet, http.StatusMethodNotAllowed},
		{"64 requests to an endpoint", 64, 1, "/api/webhooks/stored", http.MethodGet, http.StatusMethodNotAllowed},
		{"64 requests to an unknown path", 64, 1, "/api/webhooks/nowhere", http.MethodPost, http.StatusNotFound},
		{"three swaps, 32 requests after each", 32, 3, "/api/webhooks/jwt", http.MethodGet, http.StatusMethodNotAllowed},
	}
	base := newFixture(t).table
	base.Finalize(nil)
	base.EndpointByPath("") // builds the lookup index, as loading a table does
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			holder := routing.NewHolder()
			srv := NewServer(Config{Holder: holder, Log: logr.Discard()})
			var compiles atomic.Int32
			srv.routes.onCompile = func(*routing.Table) {
				compiles.Add(1)
				// A compile long enough that every request below arrives during it.
				time.Sleep(50 * time.Millisecond)
			}
			handler := srv.Handler()
			for swap := range c.swaps {
				table := new(routing.Table)
				*table = *base // another table as far as the cache can tell
				table.Serial += uint64(swap)
				holder.Swap(table)
				before := compiles.Load()
				var wg sync.WaitGroup
				start := make(chan struct{})
				statuses := make([]int, c.requests)
				for i := range c.requests {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						req := httptest.NewRequest(c.method, c.path, nil)
						req.Header.Set("Content-Type", "application/json")
						req.RemoteAddr = "198.51.100.1:40000"
						rec := httptest.NewRecorder()
						handler.ServeHTTP(rec, req)
						statuses[i] = rec.Code
					}()
				}
				close(start)
				wg.Wait()
				if got := compiles.Load() - before; got != 1 {
					t.Errorf("swap %d: %d requests compiled the table %d times, want 1", swap+1, c.requests, got)
				}
				for i, s := range statuses {
					if s != c.want {
						t.Fatalf("swap %d: request %d answered %d, want %d", swap+1, i, s, c.want)
					}
				}
				if rt := srv.routes.get(); rt.table != table {
					t.Errorf("swap %d: routes of serial %d served, want %d", swap+1, rt.table.Serial, table.Serial)
				}
			}
		})
	}
}
