package receiver

import (
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// Defaults when a Partner sets no rate limit (docs/reference.md).
const (
	defaultRequestsPerSecond = hookgatev1alpha1.DefaultRequestsPerSecond
	defaultBurst             = hookgatev1alpha1.DefaultBurst
)

// rateLimiter keeps one token bucket per partner, following the partner's current limits.
type rateLimiter struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newRateLimiter() *rateLimiter { return &rateLimiter{buckets: map[string]*rate.Limiter{}} }

// take takes one token for the partner or says how long to wait.
func (l *rateLimiter) take(p *routing.Partner, now time.Time) *rejection {
	rps, burst := rate.Limit(defaultRequestsPerSecond), defaultBurst
	if p.RateLimit != nil {
		rps, burst = rate.Limit(p.RateLimit.RequestsPerSecond), int(p.RateLimit.Burst)
	}
	key := routing.Key(p.Namespace, p.Name)
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(rps, burst)
		l.buckets[key] = b
	} else if b.Limit() != rps || b.Burst() != burst {
		b.SetLimitAt(now, rps)
		b.SetBurstAt(now, burst)
	}
	l.mu.Unlock()
	if b.AllowN(now, 1) {
		return nil
	}
	wait := time.Duration(float64(time.Second) / float64(rps))
	if r := b.ReserveN(now, 1); r.OK() {
		wait = r.DelayFrom(now)
		r.CancelAt(now)
	}
	rej := reject(http.StatusTooManyRequests, "rate_limited", "Too many requests", "this partner's rate limit is exhausted; retry after the number of seconds in Retry-After")
	rej.retryAfter = max(1, int(math.Ceil(wait.Seconds())))
	return rej
}
