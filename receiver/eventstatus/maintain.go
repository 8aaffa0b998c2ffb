package eventstatus

import (
	"context"
	"sort"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/receiver/store"
)

// maintain prunes WebhookEvents past the retention and caps each namespace, and queues
// redeliveries asked for on endpoints (every few seconds).
func (r *Reflector) maintain(ctx context.Context) {
	prune := time.NewTicker(r.opts.PruneInterval)
	defer prune.Stop()
	redeliver := time.NewTicker(2 * time.Second)
	defer redeliver.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			if err := r.prune(ctx); err != nil {
				r.opts.Log.V(1).Info("pruning WebhookEvents failed", "error", err.Error())
			}
		case <-redeliver.C:
			r.redeliverFailed(ctx)
		}
	}
}

// prune deletes WebhookEvents older than the retention, then, in any namespace over the
// cap, the oldest ones until it is at the cap: finished ones first, then unfinished ones
// (a namespace whose events are stuck must not grow without bound). Only the view
// shrinks: the store keeps the events and the status API still answers for them.
func (r *Reflector) prune(ctx context.Context) error {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(hookgatev1alpha1.GroupVersion.WithKind("WebhookEventList"))
	if err := r.opts.Client.List(ctx, &list); err != nil {
		return err
	}
	now := r.opts.Now()
	byNamespace := map[string][]*metav1.PartialObjectMetadata{}
	for i := range list.Items {
		o := &list.Items[i]
		if now.Sub(o.CreationTimestamp.Time) > r.opts.Retention {
			r.delete(ctx, o)
			continue
		}
		byNamespace[o.Namespace] = append(byNamespace[o.Namespace], o)
	}
	for ns, items := range byNamespace {
		excess := len(items) - r.opts.MaxPerNamespace
		if excess <= 0 {
			continue
		}
		for _, o := range overCap(items, excess) {
			r.delete(ctx, o)
		}
		r.opts.Log.V(1).Info("capped the WebhookEvents of a namespace", "namespace", ns, "deleted", excess, "cap", r.opts.MaxPerNamespace)
	}
	return nil
}

// overCap picks the excess WebhookEvents to drop: finished ones before unfinished ones,
// and within each the oldest events first.
func overCap(items []*metav1.PartialObjectMetadata, excess int) []*metav1.PartialObjectMetadata {
	sorted := append([]*metav1.PartialObjectMetadata(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if fa, fb := finished(a.Labels[hookgatev1alpha1.LabelPhase]), finished(b.Labels[hookgatev1alpha1.LabelPhase]); fa != fb {
			return fa
		}
		if ta, tb := eventTime(a), eventTime(b); !ta.Equal(tb) {
			return ta.Before(tb)
		}
		return a.Name < b.Name
	})
	return sorted[:min(excess, len(sorted))]
}

// eventTime is when the event was received: the time in its name, a UUIDv7 (to the
// millisecond, where creationTimestamp has seconds and is reset when a pruned
// WebhookEvent is written again), else its creationTimestamp.
func eventTime(o *metav1.PartialObjectMetadata) time.Time {
	if id, err := uuid.Parse(o.Name); err == nil && id.Version() == 7 {
		sec, nsec := id.Time().UnixTime()
		return time.Unix(sec, nsec)
	}
	return o.CreationTimestamp.Time
}

func finished(phase string) bool {
	return phase == store.PhaseDelivered || phase == store.PhaseFailed || phase == store.PhaseStored
}

func (r *Reflector) delete(ctx context.Context, o *metav1.PartialObjectMetadata) {
	if err := r.opts.Client.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
		r.opts.Log.V(1).Info("deleting a WebhookEvent failed", "name", o.Name, "error", err.Error())
	}
}

// redeliverFailed queues the Failed events of endpoints whose hookgate.io/redeliver-failed
// annotation has a value not handled yet.
func (r *Reflector) redeliverFailed(ctx context.Context) {
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
