// Package eventstatus reflects the store's events into WebhookEvent resources, the
// bounded view that `kubectl get webhookevents` shows. It works from the store's list of
// events whose newest state is not written yet, so it coalesces (only the newest state is
// written), catches up after an API server outage or a restart, and never slows ingest.
package eventstatus

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
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
	opts    Options
	backlog prometheus.Gauge
	lag     prometheus.Gauge
	writes  *prometheus.CounterVec

	mu            sync.Mutex
	lastEventSent map[string]time.Time // partner key -> lastEventAt written
	lastEventAt   map[string]time.Time // partner key -> newest receivedAt seen
	reported      map[string]time.Time // partner key -> lastEventAt value written
}

// New returns a reflector; Start runs it.
func New(opts Options) *Reflector {
	if opts.Workers <= 0 {
		opts.Workers = 32
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
	r := &Reflector{
		opts:          opts,
		backlog:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_reflector_backlog", Help: "Events whose newest state is not yet in a WebhookEvent (capped by one scan)."}),
		lag:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_reflector_lag_seconds", Help: "Age of the oldest event waiting to be reflected."}),
		writes:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hookgate_reflector_writes_total", Help: "WebhookEvent writes by result."}, []string{"result"}),
		lastEventSent: map[string]time.Time{},
		lastEventAt:   map[string]time.Time{},
		reported:      map[string]time.Time{},
	}
	if opts.Registry != nil {
		opts.Registry.MustRegister(r.backlog, r.lag, r.writes)
	}
	return r
}

const scanLimit = 2000

// Start reflects until ctx ends.
func (r *Reflector) Start(ctx context.Context) error {
	go r.maintain(ctx)
	backoff := time.Duration(0)
	for {
		wait := r.opts.Interval
		n, err := r.reflectOnce(ctx)
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 250*time.Millisecond), 5*time.Second)
			wait = backoff
			r.opts.Log.V(1).Info("reflecting events failed; will retry", "error", err.Error(), "retryIn", wait.String())
		case n > 0:
			backoff, wait = 0, 0
		default:
			backoff = 0
		}
		r.reportPartners(ctx)
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return nil
		}
	}
}

// reflectOnce writes one scan's worth of events and reports how many it wrote.
func (r *Reflector) reflectOnce(ctx context.Context) (int, error) {
	events, err := r.opts.Store.Unreflected(ctx, scanLimit)
	if err != nil {
		return 0, err
	}
	r.backlog.Set(float64(len(events)))
	if len(events) == 0 {
		r.lag.Set(0)
		return 0, nil
	}
	oldest := events[0].ReceivedAt
	for i := range events {
		if events[i].ReceivedAt.Before(oldest) {
			oldest = events[i].ReceivedAt
		}
	}
	r.lag.Set(r.opts.Now().Sub(oldest).Seconds())

	work := make(chan *store.Event)
	var wg sync.WaitGroup
	var written int
	var firstErr error
	var mu sync.Mutex
	for range r.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range work {
				err := r.write(ctx, ev)
				mu.Lock()
				if err != nil {
					r.writes.WithLabelValues("error").Inc()
					if firstErr == nil {
						firstErr = err
					}
				} else {
					r.writes.WithLabelValues("ok").Inc()
					written++
				}
				mu.Unlock()
			}
		}()
	}
	for i := range events {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break // the API server is failing: stop and back off
		}
		work <- &events[i]
	}
	close(work)
	wg.Wait()
	return written, firstErr
}

// write makes the WebhookEvent match the stored event in one request (a create, or a
// merge patch of its phase label and status), then marks that version done.
func (r *Reflector) write(ctx context.Context, ev *store.Event) error {
	r.notePartnerEvent(ev)
	obj := r.object(ev)
	err := r.opts.Client.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		patch, perr := json.Marshal(map[string]any{
			"metadata": map[string]any{"labels": map[string]string{hookgatev1alpha1.LabelPhase: ev.Phase}},
			"status":   statusPatch(ev),
		})
		if perr != nil {
			return perr
		}
		err = r.opts.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
		if apierrors.IsNotFound(err) {
			err = nil // pruned meanwhile
		}
	}
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err) && isNamespaceTerminating(err):
		// The namespace is gone: nothing to reflect into.
	case err != nil:
		return err
	}
	return r.opts.Store.MarkReflected(ctx, ev.UUID, ev.Version)
}

func isNamespaceTerminating(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, c := range status.Status().Details.Causes {
			if c.Type == "NamespaceTerminating" {
				return true
			}
		}
	}
	return false
}

// object is the WebhookEvent for a stored event: named by its uuid, owned by its Partner.
func (r *Reflector) object(ev *store.Event) *hookgatev1alpha1.WebhookEvent {
	obj := &hookgatev1alpha1.WebhookEvent{
		ObjectMeta: metav1.ObjectMeta{
			Name: ev.UUID, Namespace: ev.PartnerNamespace,
			Labels: map[string]string{
				hookgatev1alpha1.LabelPartner:  ev.Partner,
				hookgatev1alpha1.LabelEndpoint: ev.Endpoint,
				hookgatev1alpha1.LabelPhase:    ev.Phase,
			},
		},
		Spec: hookgatev1alpha1.WebhookEventSpec{
			Partner: ev.Partner, Endpoint: ev.Endpoint, EventID: ev.EventID, UUID: ev.UUID, Type: ev.Type,
			ReceivedAt: metav1.NewTime(ev.ReceivedAt), PayloadSHA256: ev.PayloadSHA256, SizeBytes: ev.SizeBytes,
		},
		Status: hookgatev1alpha1.WebhookEventStatus{
			Phase: hookgatev1alpha1.EventPhase(ev.Phase), Attempts: ev.Attempts, LastResponseCode: ev.LastResponseCode,
			LastError: ev.LastError, LastAttemptAt: metaTime(ev.LastAttemptAt), NextAttemptAt: metaTime(ev.NextAttemptAt),
			DeliveredAt: metaTime(ev.DeliveredAt),
		},
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

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return &metav1.Time{Time: *t}
}

// statusPatch is a JSON merge patch of the status: absent values are written as null so
// that they are cleared.
func statusPatch(ev *store.Event) map[string]any {
	t := func(v *time.Time) any {
		if v == nil {
			return nil
		}
		return metav1.NewTime(*v)
	}
	lastError := any(nil)
	if ev.LastError != "" {
		lastError = ev.LastError
	}
	return map[string]any{
		"phase":            ev.Phase,
		"attempts":         ev.Attempts,
		"lastAttemptAt":    t(ev.LastAttemptAt),
		"nextAttemptAt":    t(ev.NextAttemptAt),
		"lastResponseCode": ev.LastResponseCode,
		"lastError":        lastError,
		"deliveredAt":      t(ev.DeliveredAt),
	}
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
