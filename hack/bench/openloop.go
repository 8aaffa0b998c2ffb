package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// openLoopSenders bound the requests in flight of an open-loop run. A send whose turn
// comes while all are busy goes out late, and its latency counts from when it was due:
// an overloaded receiver shows as latency, not as a slower schedule.
const openLoopSenders = 512

// openLoopResult is what the partner side of an open-loop run saw.
type openLoopResult struct {
	scheduled, accepted, refused int64
	// acceptLatencies are the 202s' times from each send's due time.
	acceptLatencies []time.Duration
	window          time.Duration
}

// generateOpenLoop posts signed events at rate per second for window, on a schedule
// that does not wait for answers: event i is due at start + i/rate. Each event's due
// time goes into dueAt (by event id) before it is sent, for the sinks to measure from.
func generateOpenLoop(url, key, signingSecret, idPrefix string, payload, rate int, window time.Duration, dueAt *sync.Map) openLoopResult {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: openLoopSenders, MaxConnsPerHost: openLoopSenders}}
	total := int(float64(rate) * window.Seconds())
	type job struct {
		id  string
		due time.Time
	}
	jobs := make(chan job, min(total, 1<<20))
	var accepted, refused atomic.Int64
	lat := make([][]time.Duration, openLoopSenders)
	var wg sync.WaitGroup
	for w := range openLoopSenders {
		wg.Go(func() {
			for j := range jobs {
				if code, err := postEvent(client, url, key, signingSecret, j.id, payload); err != nil || code != http.StatusAccepted {
					refused.Add(1)
					continue
				}
				accepted.Add(1)
				lat[w] = append(lat[w], time.Since(j.due))
			}
		})
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / float64(rate))
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > time.Millisecond {
			time.Sleep(d)
		}
		id := fmt.Sprintf("evt_%s%d", idPrefix, i)
		dueAt.Store(id, due)
		jobs <- job{id: id, due: due}
	}
	close(jobs)
	wg.Wait()
	client.CloseIdleConnections()
	res := openLoopResult{scheduled: int64(total), accepted: accepted.Load(), refused: refused.Load(), window: window}
	for _, l := range lat {
		res.acceptLatencies = append(res.acceptLatencies, l...)
	}
	return res
}

// arrivals is what a sink saw of one open-loop run: each event's first delivery, timed
// from when the event was due to be sent. A redelivery (at-least-once) is not counted
// twice, and a delivery of an event from another run is not counted at all.
type arrivals struct {
	dueAt *sync.Map
	seen  sync.Map
	count atomic.Int64
	last  atomic.Int64 // unix nanoseconds of the latest first delivery
	mu    sync.Mutex
	lat   []time.Duration
}

func newArrivals(dueAt *sync.Map) *arrivals { return &arrivals{dueAt: dueAt} }

func (a *arrivals) observe(id string, now time.Time) {
	due, ok := a.dueAt.Load(id)
	if !ok {
		return
	}
	if _, dup := a.seen.LoadOrStore(id, struct{}{}); dup {
		return
	}
	a.mu.Lock()
	a.lat = append(a.lat, now.Sub(due.(time.Time)))
	a.mu.Unlock()
	a.count.Add(1)
	a.last.Store(now.UnixNano())
}

// settle waits until n events have arrived or none has for idle, at most limit.
func (a *arrivals) settle(n int64, idle, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, lastChange := a.count.Load(), time.Now()
	for a.count.Load() < n && time.Since(lastChange) < idle && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if c := a.count.Load(); c != last {
			last, lastChange = c, time.Now()
		}
	}
}

// percentilesOf are p50 and p99 of the arrivals' latencies, counting each of the
// accepted events that never arrived as slower than any that did.
func (a *arrivals) percentilesOf(accepted int64) (p50, p99 time.Duration, missing int64) {
	a.mu.Lock()
	lat := append([]time.Duration(nil), a.lat...)
	a.mu.Unlock()
	missing = max(0, accepted-int64(len(lat)))
	for range missing {
		lat = append(lat, time.Duration(1<<62))
	}
	return percentile(lat, .50), percentile(lat, .99), missing
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// signedEvent is an event body of about payload bytes with the given id.
func signedEvent(id string, payload int) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":"order.created","data":{"pad":%q}}`, id, strings.Repeat("x", max(0, payload-80)))
}

// signRequest adds the bench partner's API key and PartnerHMAC signature over
// timestamp.body.
func signRequest(req *http.Request, key, signingSecret string, body []byte) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(signingSecret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	req.Header.Set("x-timestamp", ts)
	req.Header.Set("x-webhook-signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
}

// postEvent sends one signed event and returns the answer's status, its body read.
func postEvent(client *http.Client, url, key, signingSecret, id string, payload int) (int, error) {
	body := signedEvent(id, payload)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	signRequest(req, key, signingSecret, body)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
