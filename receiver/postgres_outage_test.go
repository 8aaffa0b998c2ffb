package receiver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/testproxy"
	"github.com/hookgate/hookgate/receiver/store/postgres/pgtest"
)

// outageSend is one request of the outage test and its answer.
type outageSend struct {
	sent, answered time.Time
	status         int
	uuid           string
}

// TestPostgreSQLOutage: two receivers on one database lose it for 20 s under load (every
// connection dropped, new ones refused: a stopped server as its clients see it). Requests
// get 503 with Retry-After and never a 2xx without a commit; the receivers recover by
// themselves; every acknowledged event is delivered.
func TestPostgreSQLOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s outage")
	}
	dsn := pgtest.FreshSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testproxy.New(t, u.Host)
	u.Host = proxy.Addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()

	var mu sync.Mutex
	delivered := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		delivered[r.Header.Get("webhook-id")]++
		mu.Unlock()
	}))
	defer sink.Close()

	f := newFixture(t)
	f.forward("forwarded", sink.URL+"/hooks")
	onDatabase := func(o *Options) { o.DatabaseURL = u.String() }
	receivers := []*testReceiver{startTestReceiver(t, f.table, onDatabase), startTestReceiver(t, f.table, onDatabase)}

	const clients = 4
	var (
		sendsMu sync.Mutex
		sends   []outageSend
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for c := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rcv := receivers[(c+i)%len(receivers)]
				body := fmt.Appendf(nil, `{"id":"evt_outage_%d_%d","type":"order.created"}`, c, i)
				req := newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/forwarded", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body)
				s := outageSend{sent: time.Now()}
				resp := doQuietly(client, req)
				s.answered, s.status = time.Now(), resp.status
				if uuid, ok := resp.body["uuid"].(string); ok {
					s.uuid = uuid
				}
				if resp.status == http.StatusServiceUnavailable && resp.header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After: %s", resp.raw)
				}
				sendsMu.Lock()
				sends = append(sends, s)
				sendsMu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(3 * time.Second)
	// The outage starts once every connection is gone: a request sent after that has no
	// database to commit to.
	proxy.Cut()
	cutAt := time.Now()
	time.Sleep(20 * time.Second)
	proxy.Restore(t)
	restoredAt := time.Now()
	// Load goes on until each receiver has acknowledged again, then 3 s more.
	recovered := time.Time{}
	for deadline := time.Now().Add(60 * time.Second); recovered.IsZero() && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		sendsMu.Lock()
		for _, s := range sends {
			if s.sent.After(restoredAt) && s.status == http.StatusAccepted {
				recovered = s.answered
			}
		}
		sendsMu.Unlock()
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	if recovered.IsZero() {
		t.Fatal("no event was accepted within 60 s of the database coming back")
	}

	var before, during, after, unavailable int
	acknowledged := map[string]bool{}
	for _, s := range sends {
		switch s.status {
		case http.StatusAccepted, http.StatusOK:
			acknowledged[s.uuid] = true
		case http.StatusServiceUnavailable:
			unavailable++
		default:
			t.Errorf("answer %d at %s", s.status, s.answered.Sub(cutAt))
		}
		switch {
		case s.answered.Before(cutAt):
			before++
		case s.sent.After(cutAt) && s.answered.Before(restoredAt):
			during++
			if s.status < 300 {
				t.Errorf("a %d at %s into the outage, with no database to commit to", s.status, s.sent.Sub(cutAt))
			}
		case s.sent.After(restoredAt):
			after++
		}
	}
	t.Logf("%d requests: %d before the cut, %d during it (all refused), %d after it; %d answered 503; first 202 %s after the database returned",
		len(sends), before, during, after, unavailable, recovered.Sub(restoredAt).Round(time.Millisecond))
	if during == 0 || before == 0 {
		t.Fatalf("the load did not span the outage: %d before, %d during", before, during)
	}

	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for uuid := range acknowledged {
			if delivered[uuid] == 0 {
				missing++
			}
		}
		repeated := 0
		for _, n := range delivered {
			repeated += n - 1
		}
		mu.Unlock()
		if missing == 0 {
			t.Logf("all %d acknowledged events delivered; %d deliveries repeated", len(acknowledged), repeated)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never reached the destination", missing, len(acknowledged))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// doQuietly is do without failing the test on a transport error (a 0 status).
func doQuietly(client *http.Client, req *http.Request) response {
	resp, err := client.Do(req)
	if err != nil {
		return response{raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// forward adds an endpoint like "stored" whose events go to url, retried quickly.
func (f *fixture) forward(name, url string) {
	for _, e := range f.table.Endpoints {
		if e.Name != "stored" {
			continue
		}
		e.Name, e.Path = name, "/api/webhooks/"+name
		e.Retry = routing.Retry{MaxAttempts: 20, InitialBackoff: routing.Duration(100 * time.Millisecond), MaxBackoff: routing.Duration(time.Second)}
		e.Destination = &routing.Destination{URL: url, Timeout: routing.Duration(5 * time.Second)}
		f.table.Endpoints = append(f.table.Endpoints, e)
		return
	}
	panic("the fixture has no endpoint stored")
}
