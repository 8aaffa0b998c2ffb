package receiver

import (
	"math"
	"net/http"
	"net/netip"
	"sync"
)

// bodyBudget bounds the request body bytes all requests may hold in memory at once. A
// request reserves its Content-Length (or its endpoint's limit when the length is not
// given) before its body is read and gives it back when it has been answered; past the
// budget it is answered 503 with Retry-After instead of growing the heap, so that many
// slow or large bodies cannot push the receiver towards its memory limit.
//
// Two shares keep the budget for the partners it is there for: requests not yet tied to a
// partner (schemes that authenticate from the body) may hold at most half of it, and one
// client address at most an eighth. A partner identified by its API key before its body
// is read is bounded by the whole budget and its own address's share only.
//
// The address's share bounds how much one client holds at once, not how large one body
// may be: a client holding nothing may take one body larger than its share (an 8 MiB
// share would otherwise refuse a 9 MiB body on an endpoint that accepts 32 MiB, for ever,
// with 503 and a Retry-After that can never come true). A body that can never fit, larger
// than the whole budget or than the unidentified half, is told so for good (413, see
// most) instead.
type bodyBudget struct {
	max int64

	mu           sync.Mutex
	used         int64
	unidentified int64
	byClient     map[netip.Addr]int64
}

func newBodyBudget(max int64) *bodyBudget {
	return &bodyBudget{max: max, byClient: map[netip.Addr]int64{}}
}

// reserve takes n bytes for a request from client, or reports that it may not now.
func (b *bodyBudget) reserve(n int64, client netip.Addr, identified bool) bool {
	if b == nil || b.max <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.byClient[client]
	if b.used+n > b.max || (held > 0 && held+n > b.max/8) || (!identified && b.unidentified+n > b.max/2) {
		return false
	}
	b.used += n
	b.byClient[client] += n
	if !identified {
		b.unidentified += n
	}
	return true
}

// most is the largest reservation that can ever succeed: past it, waiting does not help.
func (b *bodyBudget) most(identified bool) int64 {
	if b == nil || b.max <= 0 {
		return math.MaxInt64
	}
	if identified {
		return b.max
	}
	return b.max / 2
}

func (b *bodyBudget) release(n int64, client netip.Addr, identified bool) {
	if b == nil || b.max <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.byClient[client] -= n; b.byClient[client] <= 0 {
		delete(b.byClient, client)
	}
	if !identified {
		b.unidentified -= n
	}
}

// reserveDecoded takes n bytes for the values a destination filter decodes from a body
// already held, or reports that the budget has no room for them now (the filter then
// does not match). Only the whole budget bounds it: the partner is authenticated and
// within its rate limit by then.
func (b *bodyBudget) reserveDecoded(n int64) bool {
	if b == nil || b.max <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *bodyBudget) releaseDecoded(n int64) {
	if b == nil || b.max <= 0 || n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// tooLargeToHold answers a body that the budget could never hold, with the limit it is
// over, and that a body sent without Content-Length counts as the endpoint's limit.
func tooLargeToHold(most int64, declared bool) *rejection {
	what := "the body"
	if !declared {
		what = "a body without Content-Length, counted at this endpoint's limit,"
	}
	return reject(http.StatusRequestEntityTooLarge, "body_too_large", "Payload too large",
		what+" is larger than the receiver holds in memory for one request ("+formatBytes(most)+"); send at most "+formatBytes(most))
}

func busy() *rejection {
	rej := reject(http.StatusServiceUnavailable, "receiver_busy", "Service unavailable",
		"the receiver is holding as many request bodies as it may; retry after the time in Retry-After")
	rej.retryAfter = 1
	return rej
}
