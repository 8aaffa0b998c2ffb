package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/verify"
)

// Defaults of Options, and of the receiver's --delivery-workers flag.
const (
	DefaultWorkers        = 128
	DefaultPerDestination = 32
)

// Options configure a Dispatcher.
type Options struct {
	Store  store.Store
	Holder *routing.Holder
	Log    logr.Logger
	// Workers bounds concurrent deliveries overall; PerDestination bounds them per
	// destination, so that one slow destination cannot take every worker.
	Workers        int
	PerDestination int
	// PollInterval is how often the due index is scanned when nothing wakes the dispatcher.
	PollInterval   time.Duration
	AllowLinkLocal bool
	Metrics        *Metrics
	Now            func() time.Time
	Jitter         func(time.Duration) time.Duration
}

// Dispatcher feeds due events to a bounded pool of delivery workers.
type Dispatcher struct {
	opts   Options
	client *http.Client
	wake   chan struct{}

	mu       sync.Mutex
	inFlight map[string]bool
	perDest  map[string]int
	slots    chan struct{}
}

// NewDispatcher returns a dispatcher; Start runs it.
func NewDispatcher(opts Options) *Dispatcher {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.PerDestination <= 0 {
		opts.PerDestination = DefaultPerDestination
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Jitter == nil {
		opts.Jitter = fullJitter
	}
	return &Dispatcher{
		opts: opts,
		client: &http.Client{
			Transport: newTransport(opts.AllowLinkLocal),
			// Redirects are answers, not invitations: a 3xx fails the attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake:     make(chan struct{}, 1),
		inFlight: map[string]bool{},
		perDest:  map[string]int{},
		slots:    make(chan struct{}, opts.Workers),
	}
}

// Wake asks for a scan of the due index now (after an ingest or a requeue).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start delivers until ctx ends; attempts in flight then finish or are cut off, and
// events without a recorded outcome stay due, so they are sent again after a restart.
func (d *Dispatcher) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ticker := time.NewTicker(d.opts.PollInterval)
	defer ticker.Stop()
	for {
		d.dispatch(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-d.wake:
		}
	}
}

func (d *Dispatcher) dispatch(ctx context.Context, wg *sync.WaitGroup) {
	table := d.opts.Holder.Current()
	if table == nil {
		return
	}
	now := d.opts.Now()
	due, err := d.opts.Store.Due(ctx, now, 4*d.opts.Workers)
	if err != nil {
		d.opts.Log.Error(err, "reading due deliveries")
		return
	}
	d.opts.Metrics.observeQueue(due, now)
	for i := range due {
		ev := due[i]
		ep, ok := endpointOf(table, &ev)
		if !ok || ep.Paused || ep.Destination == nil {
			continue // paused, or its endpoint is not served now: it waits
		}
		dest := ep.Destination.URL
		if !d.claim(ev.UUID, dest) {
			continue
		}
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			d.release(ev.UUID, dest)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-d.slots; d.release(ev.UUID, dest); d.Wake() }()
			d.deliver(ctx, &ev, ep)
		}()
	}
}

func endpointOf(t *routing.Table, ev *store.Event) (*routing.Endpoint, bool) {
	return t.Endpoint(ev.EndpointNamespace, ev.Endpoint)
}

func (d *Dispatcher) claim(uuid, dest string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[uuid] || d.perDest[dest] >= d.opts.PerDestination {
		return false
	}
	d.inFlight[uuid] = true
	d.perDest[dest]++
	return true
}

func (d *Dispatcher) release(uuid, dest string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inFlight, uuid)
	if d.perDest[dest]--; d.perDest[dest] <= 0 {
		delete(d.perDest, dest)
	}
}

// deliver makes one attempt and records it.
func (d *Dispatcher) deliver(ctx context.Context, ev *store.Event, ep *routing.Endpoint) {
	// The due list was read before the claim: an attempt that finished in between must
	// not be repeated, so the event is read again now that it is ours.
	fresh, err := d.opts.Store.Get(ctx, ev.UUID)
	if err != nil || fresh.Version != ev.Version {
		return
	}
	payload, err := d.opts.Store.Payload(ctx, ev.UUID)
	if err != nil {
		d.opts.Log.Error(err, "reading a payload to deliver", "uuid", ev.UUID)
		return
	}
	number := ev.Attempts + 1
	started := d.opts.Now()
	r := d.send(ctx, ev, ep, payload, number, started)
	if ctx.Err() != nil && r.err != nil {
		return // shutting down: not an attempt the destination saw through
	}
	took := d.opts.Now().Sub(started)
	outcome := decide(r, number-ev.AttemptBase, ep.Retry, d.opts.Now(), d.opts.Jitter)
	attempt := store.Attempt{Number: number, StartedAt: started, Duration: took, ResponseCode: int32(r.code), Error: describe(r)} //nolint:gosec // HTTP codes fit
	// The outcome is recorded even while shutting down, so that a delivered event is not
	// delivered again.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := d.opts.Store.RecordAttempt(recordCtx, ev.UUID, attempt, outcome); err != nil {
		d.opts.Log.Error(err, "recording a delivery attempt", "uuid", ev.UUID)
	}
	d.opts.Metrics.observeAttempt(routing.Key(ep.Namespace, ep.Name), outcome.Phase, took, ev.ReceivedAt, d.opts.Now())
}

func (d *Dispatcher) send(ctx context.Context, ev *store.Event, ep *routing.Endpoint, payload []byte, number int32, now time.Time) result {
	dest := ep.Destination
	timeout := dest.Timeout.Std()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	attemptCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, dest.URL, bytes.NewReader(payload))
	if err != nil {
		return result{err: &permanentError{msg: "destination URL is invalid"}}
	}
	for k, v := range dest.Headers {
		req.Header.Set(k, v)
	}
	contentType := ev.ContentType
	if contentType == "" {
		contentType = "application/json"
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "hookgate")
	ts := now.Unix()
	req.Header.Set("webhook-id", ev.UUID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if dest.SigningSecret != "" {
		key, err := verify.DecodeStandardSecret(dest.SigningSecret)
		if err != nil {
			return result{err: &permanentError{msg: "the endpoint's signing secret is not usable"}}
		}
		req.Header.Set("webhook-signature", verify.StandardWebhooksSign(key, ev.UUID, ts, payload))
	}
	req.Header.Set("X-Hookgate-Partner", ev.Partner)
	req.Header.Set("X-Hookgate-Event-Type", ev.Type)
	req.Header.Set("X-Hookgate-Event-Id", ev.EventID)
	req.Header.Set("X-Hookgate-Attempt", strconv.Itoa(int(number)))
	resp, err := d.client.Do(req)
	if err != nil {
		var permanent *permanentError
		if errors.As(err, &permanent) {
			return result{err: permanent}
		}
		return result{err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return result{code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), d.opts.Now())}
}
