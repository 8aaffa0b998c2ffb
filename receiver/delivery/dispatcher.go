package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/store"
)

// Defaults of Options, and of the receiver's --delivery-workers flag.
const (
	DefaultWorkers        = 128
	DefaultPerDestination = 32
	DefaultPerNamespace   = 64
	// MaxTimeout bounds one attempt whatever the routing table says (the API allows 60s).
	MaxTimeout = 60 * time.Second
	// DefaultLease is how long a claimed delivery stays this dispatcher's without a
	// renewal: how long another replica waits before it takes over the deliveries of one
	// that died. Leases are renewed at a third of it while attempts run.
	DefaultLease = 30 * time.Second
)

// Options configure a Dispatcher.
type Options struct {
	Store  store.Store
	Holder *routing.Holder
	Log    logr.Logger
	// Workers bounds concurrent deliveries overall. PerDestination bounds them per
	// destination host (scheme, host and port: URLs that differ only in path or query
	// share it), PerNamespace per tenant namespace, so that neither one slow host nor one
	// tenant's many destinations can take every worker.
	Workers        int
	PerDestination int
	PerNamespace   int
	// PollInterval is how often the queues are scanned when nothing wakes the dispatcher.
	PollInterval time.Duration
	// Egress checks every destination address at connect time (nil: egress.Default(),
	// no allow list). The receiver shares one guard with its JWKS client.
	Egress  *egress.Guard
	Metrics *Metrics
	// OnCircuit, when set, hears a destination's circuit open or close (queue key =
	// endpoint key).
	OnCircuit func(queue string, open bool)
	// Owner names this dispatcher's claims in the store; it must be unique per process
	// (default: host name, process id and a random suffix), so that a restarted replica
	// never mistakes the claims of its previous life for its own.
	Owner string
	// Lease is how long a claim holds without renewal (DefaultLease).
	Lease time.Duration
	// RemovedGrace is how long a destination, or its endpoint, may be missing from the
	// routing table before its due deliveries are finished as Failed (DefaultRemovedGrace).
	RemovedGrace time.Duration
	// PublicURL is the receiver's public URL, under which each namespace's JWT issuer
	// lives (signing.IssuerURL) and serves that namespace's keys.
	PublicURL string
	Now       func() time.Time
	Jitter    func(time.Duration) time.Duration
}

// Dispatcher feeds due deliveries to a bounded pool of workers, going round the
// destinations that may take one now: a paused endpoint, a destination at its cap or with
// an open circuit is passed over as a whole, so no backlog is ever in another's way.
type Dispatcher struct {
	opts     Options
	clients  clients // dial.go: one shared client per destination kind (egress)
	signer   *signer
	wake     chan struct{}
	circuits *circuits

	mu           sync.Mutex
	inFlight     map[store.DeliveryRef]bool
	busy         int
	perHost      map[string]int
	perNamespace map[string]int
	perQueue     map[string]int
	rotation     int
	lastDepth    time.Time
	// orphans is touched by the scan loop only.
	orphans orphans
}

// NewDispatcher returns a dispatcher; Start runs it.
func NewDispatcher(opts Options) *Dispatcher {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.PerDestination <= 0 {
		opts.PerDestination = DefaultPerDestination
	}
	if opts.PerNamespace <= 0 {
		opts.PerNamespace = DefaultPerNamespace
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
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.RemovedGrace <= 0 {
		opts.RemovedGrace = DefaultRemovedGrace
	}
	if opts.Owner == "" {
		opts.Owner = DefaultOwner("")
	}
	d := &Dispatcher{
		opts:         opts,
		clients:      newClients(opts.Egress),
		signer:       newSigner(opts.PublicURL),
		wake:         make(chan struct{}, 1),
		inFlight:     map[store.DeliveryRef]bool{},
		perHost:      map[string]int{},
		perNamespace: map[string]int{},
		perQueue:     map[string]int{},
	}
	d.circuits = newCircuits(func(queue string, open bool) {
		if open {
			d.opts.Log.Info("destination circuit opened: its deliveries wait, a probe follows after the cool-down", "endpoint", queue)
		} else {
			d.opts.Log.Info("destination circuit closed: deliveries resume", "endpoint", queue)
		}
		d.opts.Metrics.observeCircuit(queue, open)
		if d.opts.OnCircuit != nil {
			d.opts.OnCircuit(queue, open)
		}
	})
	return d
}

// Wake asks for a scan of the queues now (after an ingest or a requeue).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// OpenCircuits lists the endpoints whose destination circuits are open.
func (d *Dispatcher) OpenCircuits() []string { return d.circuits.open() }

// Start delivers until ctx ends; attempts in flight then finish or are cut off, and
// deliveries without a recorded outcome are released, so that another replica (or this
// one after a restart) sends them again.
func (d *Dispatcher) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { d.renewLeases(ctx) })
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

// candidate is a queue the dispatcher may deliver from in this round.
type candidate struct {
	queue     store.Queue
	ep        *routing.Endpoint
	dest      *routing.Destination
	host      string
	namespace string
	pending   []store.Delivery // read ahead from the queue
	exhausted bool
}

// dispatchQuantum is how many due deliveries are read from one queue at a time.
const dispatchQuantum = 8

func (d *Dispatcher) dispatch(ctx context.Context, wg *sync.WaitGroup) {
	table := d.opts.Holder.Current()
	if table == nil {
		return
	}
	now := d.opts.Now()
	queues, err := d.opts.Store.DueQueues(ctx, now)
	if err != nil {
		d.opts.Log.Error(err, "reading the delivery queues")
		return
	}
	d.observeQueues(ctx, queues, now)
	var ready []*candidate
	var orphaned []string
	for _, q := range queues {
		ns, name, destName, err := store.ParseQueueKey(q.Key)
		if err != nil {
			continue
		}
		ep, ok := table.Endpoint(ns, name)
		if !ok {
			orphaned = append(orphaned, q.Key) // its endpoint is not served now: it waits, for a while
			continue
		}
		if ep.Paused {
			continue
		}
		dest := ep.DestinationNamed(destName)
		if dest == nil {
			orphaned = append(orphaned, q.Key) // the destination is not in the endpoint now
			continue
		}
		ready = append(ready, &candidate{queue: q, ep: ep, dest: dest, host: hostOf(dest.URL), namespace: ns})
	}
	for _, q := range d.orphans.sweep(orphaned, now, d.opts.RemovedGrace) {
		d.abandon(ctx, q, now)
	}
	if len(ready) == 0 {
		return
	}
	// Start each scan at a different destination, and take one delivery from each in
	// turn, so that every destination gets its share of free workers.
	d.mu.Lock()
	d.rotation++
	offset := d.rotation % len(ready)
	d.mu.Unlock()
	ready = append(ready[offset:], ready[:offset]...)
	// Claims this round took but did not start go back at the end, for any replica.
	defer d.releaseUnstarted(ctx, ready)
	for progress := true; progress && d.free() > 0; {
		progress = false
		for _, c := range ready {
			if d.free() == 0 || ctx.Err() != nil {
				return
			}
			dl, ok := d.next(ctx, c, now, len(ready))
			if !ok {
				continue
			}
			if !d.take(dl.Ref(), c) {
				c.pending = append([]store.Delivery{dl}, c.pending...)
				continue
			}
			if !d.circuits.admit(c.queue.Key, now) {
				d.done(dl.Ref(), c)
				c.pending = append([]store.Delivery{dl}, c.pending...)
				c.exhausted = true
				continue
			}
			progress = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { d.done(dl.Ref(), c); d.Wake() }()
				d.deliver(ctx, &dl, c)
			}()
		}
	}
}

// next is the candidate's next claimed delivery, claiming more when it has none: as
// many as it may start now (its caps, its circuit, its share of the free workers among
// the ready destinations), at most dispatchQuantum.
func (d *Dispatcher) next(ctx context.Context, c *candidate, now time.Time, ready int) (store.Delivery, bool) {
	if len(c.pending) == 0 && !c.exhausted {
		limit := d.room(c, now, ready)
		if limit == 0 {
			c.exhausted = true
			return store.Delivery{}, false
		}
		evs, err := d.opts.Store.Claim(ctx, c.queue.Key, d.opts.Owner, now, d.opts.Lease, limit)
		if err != nil {
			d.opts.Log.Error(err, "claiming deliveries", "endpoint", c.queue.Key)
		}
		c.pending = evs
		c.exhausted = len(evs) < limit
	}
	if len(c.pending) == 0 {
		return store.Delivery{}, false
	}
	dl := c.pending[0]
	c.pending = c.pending[1:]
	return dl, true
}

// room is how many deliveries of the candidate could start now.
func (d *Dispatcher) room(c *candidate, now time.Time, ready int) int {
	if !d.circuits.mayAdmit(c.queue.Key, now) {
		return 0
	}
	d.mu.Lock()
	free := d.opts.Workers - d.busy
	n := min(dispatchQuantum, free, d.opts.PerDestination-d.perHost[c.host], d.opts.PerNamespace-d.perNamespace[c.namespace])
	d.mu.Unlock()
	// A fair share of the free workers, rounded up, so that claims taken here are
	// started here rather than handed back at the end of the round.
	n = min(n, (free+ready-1)/max(ready, 1))
	if d.circuits.probing(c.queue.Key) {
		n = min(n, 1)
	}
	return max(n, 0)
}

// releaseUnstarted gives back the claims a round took but did not start.
func (d *Dispatcher) releaseUnstarted(ctx context.Context, ready []*candidate) {
	var refs []store.DeliveryRef
	for _, c := range ready {
		for _, dl := range c.pending {
			refs = append(refs, dl.Ref())
		}
		c.pending = nil
	}
	d.releaseClaims(ctx, refs)
}

// releaseClaims gives claims back, also while shutting down (that is when it matters:
// another replica takes them at once instead of after the lease).
func (d *Dispatcher) releaseClaims(ctx context.Context, refs []store.DeliveryRef) {
	if len(refs) == 0 {
		return
	}
	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.opts.Store.Release(releaseCtx, d.opts.Owner, refs); err != nil {
		d.opts.Log.Error(err, "releasing claimed deliveries; they are due again when their leases run out", "count", len(refs))
	}
}

// renewLeases keeps the claims of attempts in flight, at a third of the lease, until ctx
// ends. A lease lost anyway (the store was unreachable for a whole lease) means another
// replica may send the event too: at-least-once, and the log says so.
func (d *Dispatcher) renewLeases(ctx context.Context) {
	ticker := time.NewTicker(d.opts.Lease / 3)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		d.mu.Lock()
		refs := make([]store.DeliveryRef, 0, len(d.inFlight))
		for ref := range d.inFlight {
			refs = append(refs, ref)
		}
		d.mu.Unlock()
		if len(refs) == 0 {
			continue
		}
		lost, err := d.opts.Store.RenewLeases(ctx, d.opts.Owner, refs, d.opts.Now().Add(d.opts.Lease))
		if err != nil {
			d.opts.Log.Error(err, "renewing delivery leases", "count", len(refs))
			continue
		}
		if len(lost) > 0 {
			d.opts.Log.Info("delivery leases lost while attempts ran: another replica may deliver these events too", "count", len(lost))
		}
	}
}

func (d *Dispatcher) free() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opts.Workers - d.busy
}

// take gives a delivery a worker unless it is in flight already (its own expired lease
// claimed again) or its host or namespace is at its cap; a capped candidate is done for
// this scan.
func (d *Dispatcher) take(ref store.DeliveryRef, c *candidate) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[ref] {
		return false
	}
	if d.busy >= d.opts.Workers || d.perHost[c.host] >= d.opts.PerDestination || d.perNamespace[c.namespace] >= d.opts.PerNamespace {
		c.exhausted = true
		return false
	}
	d.inFlight[ref] = true
	d.busy++
	d.perHost[c.host]++
	d.perNamespace[c.namespace]++
	d.perQueue[c.queue.Key]++
	return true
}

// done gives back the worker of an attempt that ended or never started.
func (d *Dispatcher) done(ref store.DeliveryRef, c *candidate) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inFlight, ref)
	d.busy--
	if d.perHost[c.host]--; d.perHost[c.host] <= 0 {
		delete(d.perHost, c.host)
	}
	if d.perNamespace[c.namespace]--; d.perNamespace[c.namespace] <= 0 {
		delete(d.perNamespace, c.namespace)
	}
	if d.perQueue[c.queue.Key]--; d.perQueue[c.queue.Key] <= 0 {
		delete(d.perQueue, c.queue.Key)
	}
}

// hostOf is the cap key of a destination: scheme, host and port. URLs that differ only
// in path or query are one destination host.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + strings.ToLower(u.Host)
}

// observeQueues records the due queues; the depth, which costs a count, at most every
// few seconds.
func (d *Dispatcher) observeQueues(ctx context.Context, queues []store.Queue, now time.Time) {
	if d.opts.Metrics == nil {
		return
	}
	depth := -1
	d.mu.Lock()
	countDepth := now.Sub(d.lastDepth) >= 5*time.Second
	if countDepth {
		d.lastDepth = now
	}
	d.mu.Unlock()
	if countDepth {
		if n, err := d.opts.Store.QueueDepth(ctx); err == nil {
			depth = n
		}
	}
	d.opts.Metrics.observeQueues(queues, depth, now)
}

// deliver makes one attempt of a delivery and records it.
func (d *Dispatcher) deliver(ctx context.Context, dl *store.Delivery, c *candidate) {
	// The claim returned the event as it is: no other worker can change this delivery
	// while the lease holds.
	ev, ep, dest, queue := &dl.Event, c.ep, c.dest, c.queue.Key
	state := dl.State()
	if state == nil {
		d.releaseClaims(ctx, []store.DeliveryRef{dl.Ref()})
		return
	}
	payload := dl.Payload
	if !dl.HasPayload {
		var err error
		if payload, err = d.opts.Store.Payload(ctx, ev.UUID); err != nil {
			d.opts.Log.Error(err, "reading a payload to deliver", "uuid", ev.UUID)
			d.circuits.abandon(queue)
			d.releaseClaims(ctx, []store.DeliveryRef{dl.Ref()})
			return
		}
	}
	number := state.Attempts + 1
	started := d.opts.Now()
	r := d.send(ctx, ev, dest, payload, number, started)
	if ctx.Err() != nil && r.err != nil {
		d.circuits.abandon(queue)
		d.releaseClaims(ctx, []store.DeliveryRef{dl.Ref()})
		return // shutting down: not an attempt the destination saw through
	}
	d.circuits.record(queue, retryable(r), d.opts.Now())
	took := d.opts.Now().Sub(started)
	outcome := decide(r, number-state.AttemptBase, ep.RetryOf(dest), d.opts.Now(), d.opts.Jitter)
	attempt := store.Attempt{Destination: dl.Destination, Number: number, StartedAt: started, Duration: took, ResponseCode: int32(r.code), Error: describe(r)} //nolint:gosec // HTTP codes fit
	// egress: the full error, redacted, for the admin only (lastError holds its class).
	logAttempt(d.opts.Log, ev, ep, dest, attempt, r)
	// The outcome is recorded even while shutting down, so that a delivered event is not
	// delivered again.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := d.opts.Store.RecordAttempt(recordCtx, d.opts.Owner, ev.UUID, attempt, outcome); errors.Is(err, store.ErrClaimLost) {
		// The lease ran out (a stalled renewal, a paused process) and another worker pool
		// took the delivery over: its attempt is the one on record.
		d.opts.Log.Info("a delivery attempt's result was not recorded: the delivery was claimed again meanwhile", "uuid", ev.UUID, "destination", dl.Destination, "attempt", number)
	} else if err != nil {
		d.opts.Log.Error(err, "recording a delivery attempt", "uuid", ev.UUID, "destination", dl.Destination)
	}
	d.opts.Metrics.observeAttempt(routing.Key(ep.Namespace, ep.Name), dl.Destination, outcome.Phase, took, ev.ReceivedAt, d.opts.Now())
}

func (d *Dispatcher) send(ctx context.Context, ev *store.Event, dest *routing.Destination, payload []byte, number int32, now time.Time) result {
	timeout := min(dest.Timeout.Std(), MaxTimeout)
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	attemptCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if dest.Service && len(dest.Addresses) > 0 {
		attemptCtx = egress.WithServiceAddrs(attemptCtx, serviceAddrs(dest.Addresses))
	}
	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, dest.URL, bytes.NewReader(payload))
	if err != nil {
		return result{err: errInvalidDestination}
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
	req.Header.Set("webhook-id", ev.UUID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	metadataHeaders(req.Header, dest.MetadataPrefix, ev.Type, ev.SubType, ev.Tenant, ev.UUID, ev.ReceivedAt)
	if err := d.signer.sign(req, dest, ev.EndpointNamespace, ev.UUID, ev.Partner, now, payload); err != nil {
		return result{err: err}
	}
	req.Header.Set("X-Hookgate-Partner", ev.Partner)
	req.Header.Set("X-Hookgate-Event-Type", ev.Type)
	req.Header.Set("X-Hookgate-Event-Id", ev.EventID)
	req.Header.Set("X-Hookgate-Attempt", strconv.Itoa(int(number)))
	// egress: Service and url destinations use separate transports, each with its rules.
	resp, err := d.clients.forDestination(dest).Do(req)
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
