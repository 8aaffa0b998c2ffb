package receiver

import (
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Clients whose requests keep failing authentication are slowed down by address before
// the receiver reads their bodies or checks their signatures: each client IP may fail
// authFailureRate times a second, with a burst of authFailureBurst; past that its
// requests get 429 with Retry-After until its bucket refills. Requests that authenticate
// take nothing from the bucket. Behind a load balancer, set --trusted-proxies, or every
// client shares the balancer's address.
//
// An IPv6 client is counted by its /64: a single host is usually given a whole /64 and
// can pick a fresh address in it for every request, so counting addresses would give it
// 2^64 buckets. IPv4 clients are counted by address.
const (
	authFailureRate  = 20
	authFailureBurst = 200
	// maxTrackedClients bounds the memory of the failure buckets.
	maxTrackedClients = 65536
)

type authFailureLimiter struct {
	mu      sync.Mutex
	buckets map[netip.Prefix]*rate.Limiter
}

func newAuthFailureLimiter() *authFailureLimiter {
	return &authFailureLimiter{buckets: map[netip.Prefix]*rate.Limiter{}}
}

// failureBucket is the bucket a client address counts against: its /64 for IPv6, the
// address itself for IPv4 (an IPv4-mapped IPv6 address is the IPv4 address).
func failureBucket(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		// No address (an unreadable peer): one bucket for all of them, as before.
		return netip.Prefix{}
	}
	return p
}

// check refuses a client that has used up its failures.
func (l *authFailureLimiter) check(ip netip.Addr, now time.Time) *rejection {
	l.mu.Lock()
	b := l.buckets[failureBucket(ip)]
	l.mu.Unlock()
	if b == nil || b.TokensAt(now) >= 1 {
		return nil
	}
	wait := time.Duration(math.Ceil((1 - b.TokensAt(now)) / authFailureRate * float64(time.Second)))
	rej := reject(http.StatusTooManyRequests, "too_many_auth_failures", "Too many requests",
		"too many requests from this address failed authentication; fix the credentials and retry after the number of seconds in Retry-After")
	rej.retryAfter = max(1, int(math.Ceil(wait.Seconds())))
	return rej
}

// failed counts one failed authentication of the client.
func (l *authFailureLimiter) failed(ip netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := failureBucket(ip)
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxTrackedClients {
			l.sweep(now)
		}
		b = rate.NewLimiter(authFailureRate, authFailureBurst)
		l.buckets[key] = b
	}
	b.AllowN(now, 1)
}

// sweep forgets clients whose buckets are full again, and, if that is not enough, any
// half of them: a client forgotten early only gets its burst back.
func (l *authFailureLimiter) sweep(now time.Time) {
	for key, b := range l.buckets {
		if b.TokensAt(now) >= authFailureBurst {
			delete(l.buckets, key)
		}
	}
	for key := range l.buckets {
		if len(l.buckets) < maxTrackedClients/2 {
			break
		}
		delete(l.buckets, key)
	}
}
