package receiver

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// TestAuthFailuresThrottleTheirClient: an address that keeps failing authentication gets
// 429 with Retry-After; a partner at another address is not affected.
func TestAuthFailuresThrottleTheirClient(t *testing.T) {
	f := newFixture(t)
	rcv := startTestReceiver(t, f.table, func(o *Options) {
		o.TrustedProxies, _ = ParseTrustedProxies("127.0.0.1/32,::1/128")
	})
	body := []byte(`{"id":"evt_guess","type":"order.created"}`)
	from := func(ip, key string) response {
		h := partnerHMACHeaders(key, acmeSecret, time.Now(), body)
		h["X-Forwarded-For"] = ip
		return do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", h, body))
	}
	throttled := 0
	for range authFailureBurst + 50 {
		r := from("203.0.113.9", "hgk_guessed")
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After: %s", r.raw)
			}
			throttled++
		default:
			t.Fatalf("unexpected %d %s", r.status, r.raw)
		}
	}
	if throttled < 40 {
		t.Fatalf("%d of %d guesses throttled after a burst of %d", throttled, authFailureBurst+50, authFailureBurst)
	}
	if r := from("198.51.100.7", acmeKey); r.status != http.StatusAccepted {
		t.Fatalf("a partner at another address: %d %s", r.status, r.raw)
	}
}

// TestAuthFailureBucketsIPv6By64: an IPv6 client can take any address of its /64, so
// the failures of one address throttle the whole /64 and no other; IPv4 clients keep a
// bucket per address.
func TestAuthFailureBucketsIPv6By64(t *testing.T) {
	cases := []struct {
		name, failing, other string
		shared               bool
	}{
		{"IPv6, same /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", true},
		{"IPv6, same /64, privacy address", "2001:db8:1:2:a1b2:c3d4:e5f6:789", "2001:db8:1:2::1", true},
		{"IPv6, neighbouring /64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"IPv6, same /48, other /64", "2001:db8:1:2::1", "2001:db8:1:ff00::1", false},
		{"IPv4, same address", "203.0.113.9", "203.0.113.9", true},
		{"IPv4, neighbouring address", "203.0.113.9", "203.0.113.10", false},
		{"IPv4-mapped IPv6 is the IPv4 address", "::ffff:203.0.113.9", "203.0.113.9", true},
		{"IPv4-mapped IPv6 is not its /64", "::ffff:203.0.113.9", "::ffff:203.0.113.10", false},
	}
	now := time.Unix(1_800_000_000, 0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newAuthFailureLimiter()
			failing, other := netip.MustParseAddr(c.failing), netip.MustParseAddr(c.other)
			for range authFailureBurst + 1 {
				l.failed(failing, now)
			}
			if l.check(failing, now) == nil {
				t.Fatalf("%s not throttled after %d failures", c.failing, authFailureBurst+1)
			}
			if got := l.check(other, now) != nil; got != c.shared {
				t.Errorf("%s throttled: %v, want %v (shares the bucket of %s: %v)", c.other, got, c.shared, c.failing, c.shared)
			}
		})
	}
}
