package delivery

import (
	"context"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// DefaultRemovedGrace is how long a queue's destination, or its endpoint, may be missing
// from the routing table before its deliveries are finished as Failed, reason
// DestinationRemoved. Long enough that an endpoint that left the table for a while (a
// Secret it names deleted and made again, a namespace over its table budget) keeps its
// events; a redelivery (hookgate.io/redeliver-failed) queues them again anyway.
const DefaultRemovedGrace = time.Hour

// abandonBatch bounds the deliveries of one orphaned queue finished per scan.
const abandonBatch = 256

// orphans remembers since when each due queue's destination has been missing from the
// routing table. Only queues seen in the latest scan are kept, so the map is as large
// as the orphaned queues are many.
type orphans struct {
	since map[string]time.Time
}

// sweep records this scan's orphaned queues and returns those missing for longer than
// grace.
func (o *orphans) sweep(orphaned []string, now time.Time, grace time.Duration) []string {
	next := make(map[string]time.Time, len(orphaned))
	var expired []string
	for _, q := range orphaned {
		since, ok := o.since[q]
		if !ok {
			since = now
		}
		next[q] = since
		if now.Sub(since) >= grace {
			expired = append(expired, q)
		}
	}
	o.since = next
	return expired
}

// abandon finishes the due deliveries of a queue whose destination is gone. It claims
// them first, so that on a shared store each is finished by one replica, and a
// replica that still knows the destination (a rollout) is not overruled mid-attempt.
func (d *Dispatcher) abandon(ctx context.Context, queue string, now time.Time) {
	claimed, err := d.opts.Store.Claim(ctx, queue, d.opts.Owner, now, d.opts.Lease, abandonBatch)
	if err != nil {
		d.opts.Log.Error(err, "claiming the deliveries of a removed destination", "endpoint", queue)
		return
	}
	for i := range claimed {
		dl := &claimed[i]
		if _, err := d.opts.Store.Abandon(ctx, dl.UUID, dl.Destination, store.ReasonDestinationRemoved); err != nil {
			d.opts.Log.Error(err, "finishing a delivery of a removed destination", "uuid", dl.UUID, "destination", dl.Destination)
			d.releaseClaims(ctx, []store.DeliveryRef{dl.Ref()})
		}
	}
	if len(claimed) > 0 {
		d.opts.Log.Info("deliveries finished as Failed: their destination or endpoint left the routing table", "endpoint", queue, "count", len(claimed), "reason", store.ReasonDestinationRemoved)
		d.opts.Metrics.observeAbandoned(queue, len(claimed))
	}
}
