// Package eventstatus reflects the store's events into WebhookEvent resources, the
// bounded view that `kubectl get webhookevents` shows. It works from the store's list of
// events whose newest state is not written yet, so it coalesces (only the newest state is
// written), catches up after an API server outage or a restart, and never slows ingest.
package eventstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
	"github.com/hookgate/hookgate/receiver/store"
)

// Defaults of Options, and of the receiver's --event-retention and
// --max-events-per-namespace flags.
const (
	DefaultRetention       = 24 * time.Hour
	DefaultMaxPerNamespace = 5000
)

// Options configure a Reflector.
type Options struct {
	Client client.Client
	Store  store.Store
	Holder *routing.Holder
	Log    logr.Logger
	// Workers write concurrently; the client's QPS limits the rate towards the API server.
	Workers int
	// MaxInFlightPerNamespace bounds the concurrent writes into one namespace, so that
	// one namespace whose writes are slow leaves workers to the others (default
	// Workers/4, at least 1).
	MaxInFlightPerNamespace int
	// Interval between scans of the store when there was nothing to write.
	Interval time.Duration
	// Retention and MaxPerNamespace bound the WebhookEvents kept (docs/reference.md).
	Retention       time.Duration
	MaxPerNamespace int
	// PruneInterval is how often retention and the cap are applied (default 1 minute).
	PruneInterval time.Duration
	// Wake, when set, is called after a redelivery queued events.
	Wake     func()
	Registry prometheus.Registerer
	Now      func() time.Time
}

// Reflector writes WebhookEvents.
type Reflector struct {
	opts     Options
	instance string
	backlog  prometheus.Gauge
	lag      prometheus.Gauge
	writes   *prometheus.CounterVec
	refused  *prometheus.CounterVec

	mu            sync.Mutex
	lastEventSent map[string]time.Time // partner key -> lastEventAt written
	lastEventAt   map[string]time.Time // partner key -> newest receivedAt seen
	reported      map[string]time.Time // partner key -> lastEventAt value written
	refusalEvent  map[string]time.Time // partner key -> last WebhookEventRefused Event
}

// New returns a reflector; Start runs it.
func New(opts Options) *Reflector {
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	if opts.MaxInFlightPerNamespace <= 0 {
		opts.MaxInFlightPerNamespace = max(1, opts.Workers/4)
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxPerNamespace <= 0 {
		opts.MaxPerNamespace = DefaultMaxPerNamespace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = time.Minute
	}
	instance, _ := os.Hostname()
	if instance == "" || len(instance) > 128 {
		instance = "hookgate-receiver"
	}
	r := &Reflector{
		opts:     opts,
		instance: instance,
		backlog:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_reflector_backlog", Help: "Events whose newest state is not yet in a WebhookEvent (capped by one scan)."}),
		lag:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_reflector_lag_seconds", Help: "Age of the oldest event waiting to be reflected."}),
		writes:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hookgate_reflector_writes_total", Help: "WebhookEvent writes by result (ok, refused, error)."}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hookgate_reflector_refused_total",
			Help: "States of events the API server refused to take as a WebhookEvent for good (left out of the view), by namespace and reason."}, []string{"namespace", "reason"}),
		lastEventSent: map[string]time.Time{},
		lastEventAt:   map[string]time.Time{},
		reported:      map[string]time.Time{},
		refusalEvent:  map[string]time.Time{},
	}
	if opts.Registry != nil {
		opts.Registry.MustRegister(r.backlog, r.lag, r.writes, r.refused)
	}
	return r
}

const (
	// scanLimit is how many unreflected events a scan reads beyond those already queued,
	// being written or held back by a namespace's backoff; maxScanWindow bounds a scan.
	scanLimit     = 2000
	maxScanWindow = 10 * scanLimit
	// writeTimeout bounds one write (create, and patch when it exists).
	writeTimeout = 30 * time.Second
	// minBackoff and maxBackoff bound the backoff of a namespace (after a transient
	// error) and of every write (after a connection error or a store error).
	minBackoff = 250 * time.Millisecond
	maxBackoff = 5 * time.Second
	// goneFor is how long a namespace that is being deleted, or does not exist, is
	// taken to refuse every WebhookEvent without asking the API server again.
	goneFor = 10 * time.Second
	// A write slower than slowWrite, or a transient error, keeps the namespace to its
	// share of the workers (MaxInFlightPerNamespace) for slowFor.
	slowWrite = time.Second
	slowFor   = time.Minute
)

// Start reflects until ctx ends.
//
// One loop owns the work: it scans the store for unreflected events, queues them per
// namespace, and hands them to the workers round-robin across namespaces, each namespace
// kept to MaxInFlightPerNamespace writes in flight while others wait (scheduler.go). A
// permanent refusal is recorded and that version skipped; a transient error backs off
// only that namespace (a connection error also pauses every write briefly); nothing waits
// for a whole batch. docs/architecture.md, "Status reflection", describes it.
func (r *Reflector) Start(ctx context.Context) error {
	go r.maintain(ctx)
	go r.reportLoop(ctx)

	work := make(chan *item)
	results := make(chan outcome, r.opts.Workers)
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				results <- r.process(ctx, it)
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
	}()

	type scanResult struct {
		events []store.Event
		err    error
		took   time.Duration
	}
	s := newScheduler(r.opts.Workers, r.opts.MaxInFlightPerNamespace)
	scans := make(chan scanResult, 1)
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	var (
		scanning              bool
		lastScan, notBefore   time.Time
		scanBackoff           time.Duration
		lastAdded, lastHeldBk int
	)
	for {
		now := time.Now()
		if !scanning && !now.Before(notBefore) &&
			(now.Sub(lastScan) >= r.opts.Interval || lastAdded > 0 && s.queuedCount == 0) {
			// Read past what is already queued, in flight or held back, so that the
			// events of other namespaces behind a big backlog are seen too.
			limit := min(maxScanWindow, scanLimit+s.queuedCount+len(s.inflight)+lastHeldBk)
			s.marked = map[string]uint64{}
			scanning, lastScan = true, now
			go func() {
				start := time.Now()
				events, err := r.opts.Store.Unreflected(ctx, limit)
				scans <- scanResult{events: events, err: err, took: time.Since(start)}
			}()
		}
		var out chan *item
		it := s.next(now)
		if it != nil {
			out = work
		}
		select {
		case <-ctx.Done():
			return nil
		case out <- it:
			s.take(it)
		case o := <-results:
			r.settle(s, o)
		case sr := <-scans:
			scanning = false
			now := time.Now()
			if sr.err != nil {
				scanBackoff = min(max(2*scanBackoff, minBackoff), maxBackoff)
				notBefore, lastAdded = now.Add(scanBackoff), 0
				r.opts.Log.V(1).Info("reading unreflected events failed; will retry", "error", sr.err.Error(), "retryIn", scanBackoff.String())
				continue
			}
			// Scanning costs at most a fifth of the time.
			scanBackoff, notBefore = 0, now.Add(min(4*sr.took, maxBackoff))
			r.observe(sr.events)
			lastAdded, lastHeldBk = s.offer(sr.events, now)
		case <-tick.C:
		}
	}
}

// observe sets the backlog and lag gauges from one scan.
func (r *Reflector) observe(events []store.Event) {
	r.backlog.Set(float64(len(events)))
	if len(events) == 0 {
		r.lag.Set(0)
		return
	}
	oldest := events[0].ReceivedAt
	for i := range events {
		if events[i].ReceivedAt.Before(oldest) {
			oldest = events[i].ReceivedAt
		}
	}
	r.lag.Set(r.opts.Now().Sub(oldest).Seconds())
}

// settle applies one write's outcome to the scheduler.
func (r *Reflector) settle(s *scheduler, o outcome) {
	now := time.Now()
	ns := o.ev.PartnerNamespace
	// A failure of the connection or the store is nobody's namespace's doing.
	if o.class == classNamespace || o.class == 0 && o.took > slowWrite {
		s.slow(o.ev, now)
	}
	switch o.class {
	case 0:
		s.succeeded(o.ev, now)
		if o.refused != nil && namespaceGone(o.refused.reason) {
			s.gone(ns, o.refused, now.Add(goneFor))
		}
	case classNamespace:
		if d, started := s.backoffNamespace(o.ev, now); started {
			r.opts.Log.V(1).Info("writing a WebhookEvent failed; backing off its namespace", "namespace", ns, "error", o.err.Error(), "retryIn", d.String())
		}
	case classConnection, classStore:
		s.backoffNamespace(o.ev, now)
		if d, started := s.backoffAll(now); started {
			r.opts.Log.V(1).Info("reflecting events failed; will retry", "error", o.err.Error(), "retryIn", d.String())
		}
	}
}

// process writes one event (or records its refusal) and reports the outcome.
func (r *Reflector) process(ctx context.Context, it *item) outcome {
	ev := it.ev
	r.notePartnerEvent(ev)
	if it.gone != nil {
		// The namespace refused a moment ago for a reason that holds for every event.
		return r.refuse(ctx, ev, it.gone.reason, it.gone.message)
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	start := time.Now()
	err := r.write(wctx, ev)
	took := time.Since(start)
	cancel()
	var class errorClass
	var reason string
	if err != nil {
		class, reason = classify(err)
	}
	var o outcome
	switch {
	case err == nil:
		if err := r.opts.Store.MarkReflected(ctx, ev.UUID, ev.Version); err != nil {
			o = outcome{ev: ev, class: classStore, err: err}
			break
		}
		r.writes.WithLabelValues("ok").Inc()
		o = outcome{ev: ev}
	case class == classPermanent && ctx.Err() == nil:
		o = r.refuse(ctx, ev, reason, err.Error())
	default:
		if ctx.Err() != nil {
			class = classNamespace // shutting down
		}
		r.writes.WithLabelValues("error").Inc()
		o = outcome{ev: ev, class: class, err: err}
	}
	o.took = took
	return o
}

// write makes the WebhookEvent match the stored event in one request (a create, or a
// merge patch of its phase label and status).
func (r *Reflector) write(ctx context.Context, ev *store.Event) error {
	obj := r.object(ev)
	err := r.opts.Client.Create(ctx, obj)
	switch {
	case err == nil:
		return nil
	case apierrors.IsAlreadyExists(err):
		if err := r.patch(ctx, obj, ev); !apierrors.IsNotFound(err) {
			return err
		}
		return nil // pruned meanwhile: the view has dropped it
	}
	if class, reason := classify(err); class == classPermanent && !namespaceGone(reason) && ev.Version > 1 {
		// Admission runs before the API server looks for an existing object: a
		// ResourceQuota or a policy that refuses creates refuses a create of an existing
		// WebhookEvent too. A later state of an event may still patch it.
		perr := r.patch(ctx, obj, ev)
		switch {
		case perr == nil:
			return nil
		case !apierrors.IsNotFound(perr):
			return perr
		}
	}
	return err
}

func (r *Reflector) patch(ctx context.Context, obj *hookgatev1alpha1.WebhookEvent, ev *store.Event) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"labels": map[string]string{hookgatev1alpha1.LabelPhase: ev.Phase}},
		"status":   statusPatch(ev),
	})
	if err != nil {
		return err
	}
	return r.opts.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

// refuse records that the API server refused this state of the event for good: a
// metric, one log line, a Kubernetes Event on the Partner (at most one a minute per
// partner), and the version marked reflected so that it is not tried again. A later
// state of the event is tried again.
func (r *Reflector) refuse(ctx context.Context, ev *store.Event, reason, message string) outcome {
	message = truncate(message, 512)
	r.writes.WithLabelValues("refused").Inc()
	r.refused.WithLabelValues(ev.PartnerNamespace, reason).Inc()
	r.opts.Log.Info("the API server refused a WebhookEvent; this state of the event is left out of the view",
		"namespace", ev.PartnerNamespace, "partner", ev.Partner, "endpoint", ev.Endpoint, "uuid", ev.UUID,
		"version", ev.Version, "phase", ev.Phase, "reason", reason, "error", message)
	if !namespaceGone(reason) {
		r.recordRefusal(ctx, ev, reason, message)
	}
	if err := r.opts.Store.MarkReflected(ctx, ev.UUID, ev.Version); err != nil {
		return outcome{ev: ev, class: classStore, err: err}
	}
	return outcome{ev: ev, refused: &refusal{reason: reason, message: message}}
}

// EventReasonRefused is the reason of the Warning Event on a Partner whose WebhookEvent
// the API server refused.
const EventReasonRefused = "WebhookEventRefused"

// recordRefusal writes a Warning Event on the Partner, at most one a minute per partner.
func (r *Reflector) recordRefusal(ctx context.Context, ev *store.Event, reason, message string) {
	now := r.opts.Now()
	key := ev.PartnerKey()
	r.mu.Lock()
	if last, ok := r.refusalEvent[key]; ok && now.Sub(last) < time.Minute {
		r.mu.Unlock()
		return
	}
	if len(r.refusalEvent) > 1000 {
		for k, at := range r.refusalEvent {
			if now.Sub(at) >= time.Minute {
				delete(r.refusalEvent, k)
			}
		}
	}
	r.refusalEvent[key] = now
	r.mu.Unlock()

	regarding := corev1.ObjectReference{APIVersion: hookgatev1alpha1.GroupVersion.String(), Kind: "Partner", Namespace: ev.PartnerNamespace, Name: ev.Partner}
	if t := r.opts.Holder.Current(); t != nil {
		if p, ok := t.Partner(ev.PartnerNamespace, ev.Partner); ok {
			regarding.UID = types.UID(p.UID)
		}
	}
	note := fmt.Sprintf("The API server refused the WebhookEvent %s (endpoint %s, phase %s): %s: %s. It is left out of `kubectl get webhookevents` until the event changes again; the status API still answers for it. Further refusals for this partner within a minute are counted in hookgate_reflector_refused_total.",
		ev.UUID, ev.Endpoint, ev.Phase, reason, message)
	e := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ev.PartnerNamespace, Name: hookgatev1alpha1.LabelValue(ev.Partner) + "." + strconv.FormatInt(now.UnixNano(), 16)},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: "hookgate.io/receiver",
		ReportingInstance:   r.instance,
		Action:              "Reflect",
		Reason:              EventReasonRefused,
		Regarding:           regarding,
		Note:                truncate(note, 1024),
		Type:                corev1.EventTypeWarning,
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.opts.Client.Create(ctx, e); err != nil {
		r.opts.Log.V(1).Info("recording a WebhookEventRefused Event failed", "partner", key, "error", err.Error())
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}

// object is the WebhookEvent for a stored event: the events API's view of it, owned by
// its Partner.
func (r *Reflector) object(ev *store.Event) *hookgatev1alpha1.WebhookEvent {
	obj := &hookgatev1alpha1.WebhookEvent{
		ObjectMeta: metav1.ObjectMeta{Name: ev.UUID, Namespace: ev.PartnerNamespace, Labels: webhookevents.Labels(ev)},
		Spec:       webhookevents.Spec(ev),
		Status:     webhookevents.Status(ev),
	}
	if t := r.opts.Holder.Current(); t != nil {
		if p, ok := t.Partner(ev.PartnerNamespace, ev.Partner); ok && p.UID != "" {
			obj.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: hookgatev1alpha1.GroupVersion.String(), Kind: "Partner", Name: p.Name, UID: types.UID(p.UID),
				BlockOwnerDeletion: ptr.To(false),
			}}
		}
	}
	return obj
}

// statusPatch is a JSON merge patch of the status: absent values are written as null so
// that they are cleared.
func statusPatch(ev *store.Event) map[string]any {
	t := func(v *metav1.Time) any {
		if v == nil {
			return nil
		}
		return *v
	}
	status := webhookevents.Status(ev)
	orNull := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	patch := map[string]any{
		"phase":            status.Phase,
		"attempts":         status.Attempts,
		"lastAttemptAt":    t(status.LastAttemptAt),
		"nextAttemptAt":    t(status.NextAttemptAt),
		"lastResponseCode": status.LastResponseCode,
		"lastError":        orNull(status.LastError),
		"deliveredAt":      t(status.DeliveredAt),
		"delivered":        orNull(status.Delivered),
		"deliveries":       nil,
	}
	if status.Deliveries != nil {
		// A merge patch replaces a list whole: every delivery, every time (their
		// omitempty fields leave absent values out rather than writing nulls).
		patch["deliveries"] = status.Deliveries
	}
	return patch
}

// notePartnerEvent remembers the partner's newest event for status.lastEventAt.
func (r *Reflector) notePartnerEvent(ev *store.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := ev.PartnerKey()
	if ev.ReceivedAt.After(r.lastEventAt[key]) {
		r.lastEventAt[key] = ev.ReceivedAt
	}
}

// reportLoop runs reportPartners until ctx ends.
func (r *Reflector) reportLoop(ctx context.Context) {
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.reportPartners(ctx)
		}
	}
}

// reportPartners writes Partner status.lastEventAt, at most once a minute per partner.
func (r *Reflector) reportPartners(ctx context.Context) {
	now := r.opts.Now()
	r.mu.Lock()
	due := map[string]time.Time{}
	for key, at := range r.lastEventAt {
		if sent, ok := r.lastEventSent[key]; (!ok || now.Sub(sent) >= time.Minute) && at.After(r.reported[key]) {
			due[key] = at
		}
	}
	r.mu.Unlock()
	t := r.opts.Holder.Current()
	if t == nil {
		return
	}
	for key, at := range due {
		ns, name, ok := strings.Cut(key, "/")
		if !ok {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"lastEventAt": metav1.NewTime(at)}})
		p := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := r.opts.Client.Status().Patch(ctx, p, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsNotFound(err) {
			r.opts.Log.V(1).Info("writing Partner lastEventAt failed", "partner", key, "error", err.Error())
			continue
		}
		r.mu.Lock()
		r.lastEventSent[key] = now
		r.reported[key] = at
		r.mu.Unlock()
	}
}
