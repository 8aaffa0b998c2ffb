package receiver

import (
	"context"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/verify"
)

// pruneInterval is how often finished events and expired dedup keys are removed.
const pruneInterval = time.Minute

// pruneLoop removes finished events once their endpoint's retention has passed. On a
// shared store it runs on the status Lease's holder only (statuslease.go).
func (s *Server) pruneLoop(ctx context.Context, retention time.Duration) error {
	ticker := time.NewTicker(pruneInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		now := s.now()
		if err := s.store.PruneDailyCounts(ctx, store.DayOf(now.Add(-usageRetention))); err != nil {
			s.log.Error(err, "pruning the partners' daily request counts")
		}
		if n, err := s.store.Prune(ctx, pruneCutoff(s.routes.holder.Current(), retention, now), now); err != nil {
			s.log.Error(err, "pruning the store")
		} else if n > 0 {
			s.log.Info("pruned finished events", "count", n, "retention", retention.String())
		}
	}
}

// usageLoop reports each partner's stored bytes, on every replica.
func (s *Server) usageLoop(ctx context.Context) error {
	ticker := time.NewTicker(pruneInterval)
	defer ticker.Stop()
	for {
		s.observeUsage(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// pruneCutoff keeps each endpoint's finished events for the store retention or, when
// longer, its dedup window: a duplicate is answered with its original, which must still
// be there. An endpoint's long window holds back only its own events, never others'.
func pruneCutoff(t *routing.Table, retention time.Duration, now time.Time) store.Cutoff {
	cutoff := store.Cutoff{Default: now.Add(-retention)}
	if t == nil {
		return cutoff
	}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		if w := dedupWindow(e); w > retention {
			if cutoff.ByEndpoint == nil {
				cutoff.ByEndpoint = map[string]time.Time{}
			}
			cutoff.ByEndpoint[routing.Key(e.Namespace, e.Name)] = now.Add(-w)
		}
	}
	return cutoff
}

// dedupWindow is how long an endpoint's dedup keys live: its window, or the replay floor
// for schemes whose signature carries no timestamp (replay.go).
func dedupWindow(e *routing.Endpoint) time.Duration {
	w := e.Idempotency.Window.Std()
	if scheme, ok := verify.Lookup(e.Verification.Type); ok && replayable(scheme, e) {
		w = max(w, replayWindowFloor)
	}
	return w
}

func (s *Server) observeUsage(ctx context.Context) {
	usage, err := s.store.Usage(ctx)
	if err != nil {
		s.log.Error(err, "reading the partners' stored bytes")
		return
	}
	s.metrics.ObserveUsage(usage)
}
