package receiver

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// Key usage for the partner API: each authenticated partner's event requests per UTC day
// by outcome (and reason, for rejections), counted in memory and added to the store in
// one batch every usageFlushEvery, never on the request path.
const (
	usageFlushEvery = 5 * time.Second
	// usageRetention is how long daily counts are kept; usageMaxDays bounds ?days=.
	usageRetention = 90 * 24 * time.Hour
	usageMaxDays   = 90
)

type dailyUsage struct {
	mu      sync.Mutex
	pending map[store.DailyCount]int64 // keyed with N = 0
}

func newDailyUsage() *dailyUsage { return &dailyUsage{pending: map[store.DailyCount]int64{}} }

func (u *dailyUsage) add(partner, outcome, reason string, now time.Time) {
	if outcome != outcomeRejected {
		reason = ""
	}
	k := store.DailyCount{PartnerKey: partner, Day: store.DayOf(now), Outcome: outcome, Reason: reason}
	u.mu.Lock()
	u.pending[k]++
	u.mu.Unlock()
}

// take empties the pending counts.
func (u *dailyUsage) take() []store.DailyCount {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]store.DailyCount, 0, len(u.pending))
	for k, n := range u.pending {
		k.N = n
		out = append(out, k)
	}
	clear(u.pending)
	return out
}

// pendingFor is what this replica counted for partner and has not written yet.
func (u *dailyUsage) pendingFor(partner string) []store.DailyCount {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []store.DailyCount
	for k, n := range u.pending {
		if k.PartnerKey == partner {
			k.N = n
			out = append(out, k)
		}
	}
	return out
}

// flush writes the pending counts; on failure they are counted again, not lost.
func (s *Server) flushUsage(ctx context.Context) {
	counts := s.usage.take()
	if err := s.store.AddDailyCounts(ctx, counts); err != nil {
		s.log.Error(err, "writing the partners' daily request counts; kept for the next try")
		s.usage.putBack(counts)
	}
}

// putBack returns counts that could not be written to the pending ones.
func (u *dailyUsage) putBack(counts []store.DailyCount) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range counts {
		n := c.N
		c.N = 0
		u.pending[c] += n
	}
}

// usageFlushLoop writes the counts until ctx ends, and once more then.
func (s *Server) usageFlushLoop(ctx context.Context) error {
	ticker := time.NewTicker(usageFlushEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.flushUsage(final)
			cancel()
			return nil
		case <-ticker.C:
			s.flushUsage(ctx)
		}
	}
}

// usageDay is one day of GET /api/webhooks/usage.
type usageDay struct {
	Day              string           `json:"day"`
	Accepted         int64            `json:"accepted"`
	Duplicate        int64            `json:"duplicate"`
	Rejected         int64            `json:"rejected"`
	RejectedByReason map[string]int64 `json:"rejectedByReason"`
}

// handleUsage serves a partner's requests per day for the last ?days= days (default 14).
func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	if _, _, _, rej := s.partnerRequest(r, rec, http.MethodGet); rej != nil {
		return rej
	}
	days := 14
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > usageMaxDays {
			return reject(http.StatusBadRequest, "invalid_query", "Bad request", "days must be between 1 and "+strconv.Itoa(usageMaxDays))
		}
		days = n
	}
	now := s.now().UTC()
	first := now.AddDate(0, 0, -(days - 1))
	counts, err := s.store.DailyCounts(r.Context(), rec.partner, store.DayOf(first))
	if err != nil {
		return storeUnavailable("the usage could not be read; retry after the time in Retry-After")
	}
	byDay := map[string]*usageDay{}
	out := make([]*usageDay, 0, days)
	for d := range days {
		day := &usageDay{Day: store.DayOf(first.AddDate(0, 0, d)), RejectedByReason: map[string]int64{}}
		byDay[day.Day] = day
		out = append(out, day)
	}
	for _, c := range append(counts, s.usage.pendingFor(rec.partner)...) {
		day := byDay[c.Day]
		if day == nil {
			continue
		}
		switch c.Outcome {
		case outcomeAccepted:
			day.Accepted += c.N
		case outcomeDuplicate:
			day.Duplicate += c.N
		case outcomeRejected:
			day.Rejected += c.N
			day.RejectedByReason[c.Reason] += c.N
		}
	}
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	writeJSON(w, http.StatusOK, map[string]any{"days": out})
	return nil
}
