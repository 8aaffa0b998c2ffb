package receiver

import (
	"net/http"
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
