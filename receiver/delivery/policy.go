// Package delivery forwards stored events to their destinations: at least once, with
// exponential backoff and full jitter, and records every attempt in the store.
package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
)

// result is what one attempt saw.
type result struct {
	code       int
	err        error
	retryAfter time.Duration // from a Retry-After header, 0 if none
}

// decide turns an attempt's result into the event's next phase (docs/architecture.md): 2xx
// Delivered; 429, 5xx, timeouts and connection errors retried with exponential backoff
// and full jitter (Retry-After honoured, clamped to maxBackoff) until maxAttempts; any
// other answer Failed at once.
func decide(r result, attemptInBudget int32, policy routing.Retry, now time.Time, jitter func(time.Duration) time.Duration) store.Outcome {
	switch {
	case r.err == nil && r.code >= 200 && r.code < 300:
		return store.Outcome{Phase: store.PhaseDelivered}
	case !retryable(r):
		return store.Outcome{Phase: store.PhaseFailed}
	case attemptInBudget >= max(policy.MaxAttempts, 1):
		return store.Outcome{Phase: store.PhaseFailed}
	}
	delay := backoff(attemptInBudget, policy, jitter)
	if r.retryAfter > 0 {
		delay = min(r.retryAfter, policy.MaxBackoff.Std())
	}
	return store.Outcome{Phase: store.PhaseRetrying, NextAttemptAt: now.Add(delay)}
}

func retryable(r result) bool {
	if r.err != nil {
		var permanent *permanentError
		return !errors.As(r.err, &permanent)
	}
	return r.code == http.StatusTooManyRequests || r.code >= 500
}

// backoff is full jitter over min(maxBackoff, initial × 2^(n-1)) after the n-th attempt.
func backoff(n int32, policy routing.Retry, jitter func(time.Duration) time.Duration) time.Duration {
	ceiling := policy.InitialBackoff.Std()
	for i := int32(1); i < n && ceiling < policy.MaxBackoff.Std(); i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, policy.MaxBackoff.Std())
	if ceiling <= 0 {
		return 0
	}
	return jitter(ceiling)
}

// fullJitter draws uniformly from [0, ceiling].
func fullJitter(ceiling time.Duration) time.Duration {
	return time.Duration(rand.Int64N(int64(ceiling) + 1)) //nolint:gosec // jitter needs no cryptographic randomness
}

// parseRetryAfter reads seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// permanentError is a failure that no retry can mend (a refused destination address).
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }

// describe renders an attempt's error for status.lastError: short, no secrets, no payload.
func describe(r result) string {
	if r.err == nil {
		if r.code >= 200 && r.code < 300 {
			return ""
		}
		return fmt.Sprintf("destination answered %d %s", r.code, http.StatusText(r.code))
	}
	var netErr net.Error
	switch {
	case errors.As(r.err, &netErr) && netErr.Timeout():
		return "timed out waiting for the destination"
	case isConnRefused(r.err):
		return "connection refused by the destination"
	}
	var permanent *permanentError
	if errors.As(r.err, &permanent) {
		return permanent.msg
	}
	msg := r.err.Error()
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}
