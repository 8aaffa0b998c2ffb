// Package eventstatus follows the store's events for what the control plane shows of
// them besides the events API (which serves the events themselves): each Partner's
// status.lastEventAt, written at most once a minute per partner, and the redeliveries
// asked for on WebhookEndpoints (hookgate.io/redeliver-failed). One replica runs it: the
// embedded store's one pod, or the holder of the status Lease on PostgreSQL.
package eventstatus

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
)

// Options configure a Reporter.
type Options struct {
	Client client.Client
	Store  store.Store
	Holder *routing.Holder
	Log    logr.Logger
	// Interval between reads of the store's new event states (default 250 ms).
	Interval time.Duration
	// Wake, when set, is called after a redelivery queued events.
	Wake func()
	Now  func() time.Time
}

// Reporter writes what the control plane shows of the events.
type Reporter struct {
	opts Options

	mu            sync.Mutex
	lastEventSent map[string]time.Time // partner key -> when lastEventAt was written
	lastEventAt   map[string]time.Time // partner key -> newest receivedAt seen
	reported      map[string]time.Time // partner key -> lastEventAt value written
}

// New returns a reporter; Start runs it.
func New(opts Options) *Reporter {
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reporter{opts: opts, lastEventSent: map[string]time.Time{}, lastEventAt: map[string]time.Time{}, reported: map[string]time.Time{}}
}

// scanLimit bounds the new event states one read takes.
const scanLimit = 2000

// Start reports until ctx ends.
func (r *Reporter) Start(ctx context.Context) error {
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	redeliver := time.NewTicker(2 * time.Second)
	defer redeliver.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.follow(ctx)
			r.reportPartners(ctx)
		case <-redeliver.C:
			r.redeliverFailed(ctx)
		}
	}
}

// follow reads the event states not seen yet, notes each partner's newest event and
// marks them seen. A store error is retried at the next tick.
func (r *Reporter) follow(ctx context.Context) {
	for ctx.Err() == nil {
		events, err := r.opts.Store.Unreflected(ctx, scanLimit)
		if err != nil {
			r.opts.Log.V(1).Info("reading new event states failed; will retry", "error", err.Error())
			return
		}
		for i := range events {
			ev := &events[i]
			r.notePartnerEvent(ev)
			if err := r.opts.Store.MarkReflected(ctx, ev.UUID, ev.Version); err != nil {
				r.opts.Log.V(1).Info("marking an event state seen failed; will retry", "error", err.Error())
				return
			}
		}
		if len(events) < scanLimit {
			return
		}
	}
}

// notePartnerEvent remembers the partner's newest event for status.lastEventAt.
func (r *Reporter) notePartnerEvent(ev *store.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := ev.PartnerKey()
	if ev.ReceivedAt.After(r.lastEventAt[key]) {
		r.lastEventAt[key] = ev.ReceivedAt
	}
}

// reportPartners writes Partner status.lastEventAt, at most once a minute per partner.
func (r *Reporter) reportPartners(ctx context.Context) {
	now := r.opts.Now()
	r.mu.Lock()
	due := map[string]time.Time{}
	for key, at := range r.lastEventAt {
		if sent, ok := r.lastEventSent[key]; (!ok || now.Sub(sent) >= time.Minute) && at.After(r.reported[key]) {
			due[key] = at
		}
	}
	r.mu.Unlock()
	if r.opts.Holder.Current() == nil {
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

// redeliverFailed queues the Failed events of endpoints whose hookgate.io/redeliver-failed
// annotation has a value not handled yet.
func (r *Reporter) redeliverFailed(ctx context.Context) {
	t := r.opts.Holder.Current()
	if t == nil {
		return
	}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		token := e.Annotations[hookgatev1alpha1.AnnotationRedeliverFailed]
		if token == "" {
			continue
		}
		key := e.Namespace + "/" + e.Name
		name := "redeliver-failed/" + key
		if handled, err := r.opts.Store.Token(ctx, name); err != nil || handled == token {
			continue
		}
		destination := e.Annotations[hookgatev1alpha1.AnnotationRedeliverDestination]
		n, err := r.opts.Store.RequeueFailed(ctx, key, destination, r.opts.Now())
		if err != nil {
			r.opts.Log.Error(err, "queueing Failed events again", "endpoint", key)
			continue
		}
		if err := r.opts.Store.SetToken(ctx, name, token); err != nil {
			r.opts.Log.Error(err, "recording a handled redelivery", "endpoint", key)
		}
		r.opts.Log.Info("queued Failed events again", "endpoint", key, "destination", destination, "count", n)
		if r.opts.Wake != nil {
			r.opts.Wake()
		}
	}
}
