package receiver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// TestPipelineOutcomes sends one request per outcome of the HTTP contract (docs/reference.md) to a real receiver over
// real HTTP and checks the status code and the JSON body.
func TestPipelineOutcomes(t *testing.T) {
	f := newFixture(t)
	rcv := startTestReceiver(t, f.table, func(o *Options) {
		// 127.0.0.2 plays a trusted load balancer.
		o.TrustedProxies, _ = ParseTrustedProxies("127.0.0.2/32")
	})
	now := time.Now()
	event := func(id, typ string) []byte {
		return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"data":{"orderId":"ORD-456","amount":99.99}}`, id, typ))
	}
	signed := func(key, secret string, ts time.Time) func([]byte) map[string]string {
		return func(body []byte) map[string]string { return partnerHMACHeaders(key, secret, ts, body) }
	}
	withHeader := func(base func([]byte) map[string]string, k, v string) func([]byte) map[string]string {
		return func(body []byte) map[string]string {
			h := base(body)
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
			return h
		}
	}
	json := map[string]string{"Content-Type": "application/json"}
	plus := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range json {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	var firstUUID string

	type tc struct {
		name       string
		method     string
		path       string
		body       []byte
		headers    func(body []byte) map[string]string
		client     *http.Client
		wantStatus int
		wantError  string // error title of a rejection
		check      func(t *testing.T, r response)
	}
	cases := []tc{
		// Each verification type accepted.
		{name: "PartnerHMAC accepted and queued", path: "/api/webhooks/events", body: event("evt_123", "order.created"),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 202, check: func(t *testing.T, r response) {
				if r.body["status"] != "Queued" || r.body["eventId"] != "evt_123" || r.body["uuid"] == "" {
					t.Errorf("body %s", r.raw)
				}
				firstUUID, _ = r.body["uuid"].(string)
			}},
		{name: "PartnerHMAC without destination is Stored", path: "/api/webhooks/stored", body: event("evt_s1", "anything"),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 202, check: func(t *testing.T, r response) {
				if r.body["status"] != "Stored" {
					t.Errorf("status %v, want Stored", r.body["status"])
				}
			}},
		{name: "APIKey accepted", path: "/api/webhooks/apikey", body: event("evt_k1", "x"),
			headers: func([]byte) map[string]string { return plus(map[string]string{"X-API-Key": acmeKey}) }, wantStatus: 202},
		{name: "StandardWebhooks accepted (v2 entry skipped)", path: "/api/webhooks/standard", body: []byte(`{"type":"invoice.paid"}`),
			headers: func(b []byte) map[string]string { return standardHeaders(standardSecret, "msg_1", now, b) }, wantStatus: 202,
			check: func(t *testing.T, r response) {
				if r.body["eventId"] != "msg_1" {
					t.Errorf("event id from webhook-id: %s", r.raw)
				}
			}},
		{name: "generic HMAC accepted", path: "/api/webhooks/hmac", body: event("evt_h1", "x"),
			headers: func(b []byte) map[string]string {
				return plus(map[string]string{"X-Ts": unix(now), "X-Sig": "sha256=" + hexMAC(endpointSecret, unix(now), ".", string(b))})
			}, wantStatus: 202},
		{name: "Stripe accepted (second v1 matches)", path: "/api/webhooks/stripe", body: event("evt_stripe_1", "charge.succeeded"),
			headers: func(b []byte) map[string]string {
				return plus(map[string]string{"Stripe-Signature": "t=" + unix(now) + ",v1=" + strings.Repeat("0", 64) + ",v1=" + hexMAC(endpointSecret, unix(now), ".", string(b))})
			}, wantStatus: 202},
		{name: "GitHub accepted", path: "/api/webhooks/github", body: []byte(`{"ref":"refs/heads/main"}`),
			headers: func(b []byte) map[string]string {
				return plus(map[string]string{"X-Hub-Signature-256": "sha256=" + hexMAC(endpointSecret, string(b)), "X-GitHub-Delivery": "gh-1", "X-GitHub-Event": "push"})
			}, wantStatus: 202, check: func(t *testing.T, r response) {
				if r.body["eventId"] != "gh-1" {
					t.Errorf("event id from X-GitHub-Delivery: %s", r.raw)
				}
			}},
		{name: "Slack accepted", path: "/api/webhooks/slack", body: []byte(`{"event_id":"Ev1","event":{"type":"message"}}`),
			headers: func(b []byte) map[string]string {
				return plus(map[string]string{"X-Slack-Request-Timestamp": unix(now), "X-Slack-Signature": "v0=" + hexMAC(endpointSecret, "v0:", unix(now), ":", string(b))})
			}, wantStatus: 202},
		{name: "Shopify accepted", path: "/api/webhooks/shopify", body: []byte(`{"id":1}`),
			headers: func(b []byte) map[string]string {
				mac, _ := hexToBase64(hexMAC(endpointSecret, string(b)))
				return plus(map[string]string{"X-Shopify-Hmac-Sha256": mac, "X-Shopify-Webhook-Id": "shop-1", "X-Shopify-Topic": "orders/create"})
			}, wantStatus: 202},
		{name: "RSASignature accepted", path: "/api/webhooks/rsa", body: event("evt_r1", "x"),
			headers: func(b []byte) map[string]string { return f.rsaHeaders(t, f.rsaKey, b) }, wantStatus: 202},
		{name: "JWT accepted", path: "/api/webhooks/jwt", body: event("evt_j1", "x"),
			headers: func([]byte) map[string]string { return f.jwtHeaders(t, validClaims(now)) }, wantStatus: 202},
		{name: "credentials in their grace period accepted", path: "/api/webhooks/stored", body: event("evt_g1", "x"),
			headers: signed(acmeGraceKey, acmeGraceSecret, now), wantStatus: 202},

		// 401: authentication.
		{name: "wrong secret", path: "/api/webhooks/events", body: event("evt_2", "order.created"),
			headers: signed(acmeKey, "whsec_wrong", now), wantStatus: 401, wantError: "Unauthorized"},
		{name: "tampered body", path: "/api/webhooks/events", body: event("evt_3", "order.created"),
			headers: func(b []byte) map[string]string {
				return partnerHMACHeaders(acmeKey, acmeSecret, now, []byte(strings.Replace(string(b), "99.99", "0.01", 1)))
			}, wantStatus: 401, wantError: "Unauthorized"},
		{name: "stale timestamp", path: "/api/webhooks/events", body: event("evt_4", "order.created"),
			headers: signed(acmeKey, acmeSecret, now.Add(-6*time.Minute)), wantStatus: 401, wantError: "Unauthorized"},
		{name: "future timestamp", path: "/api/webhooks/events", body: event("evt_5", "order.created"),
			headers: signed(acmeKey, acmeSecret, now.Add(6*time.Minute)), wantStatus: 401, wantError: "Unauthorized"},
		{name: "missing signature", path: "/api/webhooks/events", body: event("evt_6", "order.created"),
			headers: withHeader(signed(acmeKey, acmeSecret, now), "x-webhook-signature", ""), wantStatus: 401, wantError: "Unauthorized"},
		{name: "missing timestamp", path: "/api/webhooks/events", body: event("evt_6b", "order.created"),
			headers: withHeader(signed(acmeKey, acmeSecret, now), "x-timestamp", ""), wantStatus: 401, wantError: "Unauthorized"},
		{name: "missing API key", path: "/api/webhooks/events", body: event("evt_7", "order.created"),
			headers: withHeader(signed(acmeKey, acmeSecret, now), "x-api-key", ""), wantStatus: 401, wantError: "Unauthorized"},
		{name: "unknown key", path: "/api/webhooks/events", body: event("evt_8", "order.created"),
			headers: signed("hgk_nobody", acmeSecret, now), wantStatus: 401, wantError: "Unauthorized"},
		{name: "rotated-out key", path: "/api/webhooks/events", body: event("evt_9", "order.created"),
			headers: signed(acmeExpiredKey, acmeExpiredSec, now), wantStatus: 401, wantError: "Unauthorized"},
		{name: "rotated-out signing secret with the current key", path: "/api/webhooks/events", body: event("evt_10", "order.created"),
			headers: signed(acmeKey, acmeExpiredSec, now), wantStatus: 401, wantError: "Unauthorized"},
		{name: "suspended partner with a bad signature is still 401", path: "/api/webhooks/events", body: event("evt_11", "order.created"),
			headers: signed(globexKey, "whsec_wrong", now), wantStatus: 401, wantError: "Unauthorized"},
		{name: "StandardWebhooks wrong secret", path: "/api/webhooks/standard", body: []byte(`{}`),
			headers: func(b []byte) map[string]string {
				return standardHeaders("whsec_"+strings.Repeat("A", 32), "msg_2", now, b)
			}, wantStatus: 401, wantError: "Unauthorized"},
		{name: "Stripe stale", path: "/api/webhooks/stripe", body: []byte(`{"id":"evt_old"}`),
			headers: func(b []byte) map[string]string {
				old := now.Add(-10 * time.Minute)
				return plus(map[string]string{"Stripe-Signature": "t=" + unix(old) + ",v1=" + hexMAC(endpointSecret, unix(old), ".", string(b))})
			}, wantStatus: 401, wantError: "Unauthorized"},
		{name: "GitHub signature over another body", path: "/api/webhooks/github", body: []byte(`{"ref":"x"}`),
			headers: func([]byte) map[string]string {
				return plus(map[string]string{"X-Hub-Signature-256": "sha256=" + hexMAC(endpointSecret, "{}")})
			}, wantStatus: 401, wantError: "Unauthorized"},
		{name: "RSA signed by another key", path: "/api/webhooks/rsa", body: event("evt_r2", "x"),
			headers: func(b []byte) map[string]string { return f.rsaHeaders(t, f.jwtKey, b) }, wantStatus: 401, wantError: "Unauthorized"},
		{name: "JWT expired", path: "/api/webhooks/jwt", body: event("evt_j2", "x"),
			headers: func([]byte) map[string]string {
				c := validClaims(now)
				c.Expiry = jwt.NewNumericDate(now.Add(-10 * time.Minute))
				return f.jwtHeaders(t, c)
			}, wantStatus: 401, wantError: "Unauthorized"},
		{name: "JWT for another audience", path: "/api/webhooks/jwt", body: event("evt_j3", "x"),
			headers: func([]byte) map[string]string {
				c := validClaims(now)
				c.Audience = jwt.Audience{"someone-else"}
				return f.jwtHeaders(t, c)
			}, wantStatus: 401, wantError: "Unauthorized"},

		// 403: authorization.
		{name: "suspended partner", path: "/api/webhooks/events", body: event("evt_12", "order.created"),
			headers: signed(globexKey, globexSecret, now), wantStatus: 403, wantError: "Forbidden"},
		{name: "valid key of a partner not on a restricted endpoint", path: "/api/webhooks/restricted", body: event("evt_13", "x"),
			headers: signed(initechKey, initechSecret, now), wantStatus: 403, wantError: "Forbidden"},
		{name: "partner of another namespace", path: "/api/webhooks/events", body: event("evt_14", "order.created"),
			headers: signed(foreignKey, foreignSecret, now), wantStatus: 403, wantError: "Forbidden"},
		{name: "IP outside the allowlist", path: "/api/webhooks/stored", body: event("evt_15", "x"),
			headers: signed(initechKey, initechSecret, now), wantStatus: 403, wantError: "Forbidden"},
		{name: "spoofed X-Forwarded-For from an untrusted peer", path: "/api/webhooks/stored", body: event("evt_16", "x"),
			headers: withHeader(signed(initechKey, initechSecret, now), "X-Forwarded-For", "203.0.113.7"), wantStatus: 403, wantError: "Forbidden"},
		{name: "X-Forwarded-For from a trusted proxy", path: "/api/webhooks/stored", body: event("evt_17", "x"), client: clientFrom("127.0.0.2"),
			headers: withHeader(signed(initechKey, initechSecret, now), "X-Forwarded-For", "198.51.100.1, 203.0.113.7"), wantStatus: 202},

		// 404, 405, 413, 415, 400, 422.
		{name: "unknown path", path: "/api/webhooks/nowhere", body: event("evt_18", "x"), headers: signed(acmeKey, acmeSecret, now), wantStatus: 404, wantError: "Not found"},
		{name: "GET on an endpoint", method: http.MethodGet, path: "/api/webhooks/stored", headers: func([]byte) map[string]string { return nil },
			wantStatus: 405, wantError: "Method not allowed", check: func(t *testing.T, r response) {
				if r.header.Get("Allow") != "POST" {
					t.Errorf("Allow = %q", r.header.Get("Allow"))
				}
			}},
		{name: "oversize body", path: "/api/webhooks/events", body: event("evt_19", strings.Repeat("x", 5000)),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 413, wantError: "Payload too large"},
		{name: "wrong content type", path: "/api/webhooks/events", body: event("evt_20", "order.created"),
			headers: withHeader(signed(acmeKey, acmeSecret, now), "Content-Type", "text/plain"), wantStatus: 415, wantError: "Unsupported media type"},
		{name: "body is not JSON", path: "/api/webhooks/events", body: []byte(`{"id": "evt_21",`),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 400, wantError: "Bad request"},
		{name: "body is a JSON array", path: "/api/webhooks/events", body: []byte(`[{"id":"evt_22"}]`),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 400, wantError: "Bad request"},
		{name: "event type not allowed", path: "/api/webhooks/events", body: event("evt_23", "invoice.paid"),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 422, wantError: "Unprocessable event"},
		{name: "a 100 KB event type", path: "/api/webhooks/stored", body: event("evt_24", strings.Repeat("t", 100_000)),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 422, wantError: "Unprocessable event", check: func(t *testing.T, r response) {
				if len(r.raw) > 1024 || !strings.Contains(r.body["message"].(string), "256 bytes") {
					t.Errorf("the answer must name the limit and not echo the type: %d bytes %.200s", len(r.raw), r.raw)
				}
			}},
		{name: "event type of 256 bytes is fine", path: "/api/webhooks/stored", body: event("evt_25", strings.Repeat("t", 256)),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 202},
		{name: "event id with a newline", path: "/api/webhooks/stored", body: event("evt_26\r\nX-Injected: 1", "x"),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 400, wantError: "Bad request"},
		{name: "event type with a control character", path: "/api/webhooks/stored", body: event("evt_27", "order\u0000created"),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 400, wantError: "Bad request"},

		// 200: duplicate.
		{name: "duplicate returns the original uuid", path: "/api/webhooks/events", body: event("evt_123", "order.created"),
			headers: signed(acmeKey, acmeSecret, now), wantStatus: 200, check: func(t *testing.T, r response) {
				if r.body["uuid"] != firstUUID || r.body["duplicate"] != true || r.body["status"] != "Queued" {
					t.Errorf("duplicate answer %s, original uuid %s", r.raw, firstUUID)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			r := do(t, c.client, newRequest(t, method, rcv.url+c.path, c.headers(c.body), c.body))
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, c.wantStatus, r.raw)
			}
			if c.wantError != "" {
				if r.body["error"] != c.wantError || r.body["message"] == "" || r.body["message"] == nil {
					t.Errorf("error body %s, want error %q and a message", r.raw, c.wantError)
				}
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}

	t.Run("rate limit with Retry-After", func(t *testing.T) {
		var last response
		for i := range 4 {
			body := event(fmt.Sprintf("evt_rl_%d", i), "x")
			last = do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", partnerHMACHeaders(limitedKey, limitedSecret, time.Now(), body), body))
			if last.status == http.StatusTooManyRequests {
				break
			}
		}
		if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" || last.body["error"] != "Too many requests" {
			t.Fatalf("after a burst of 2 at 1/s: status %d Retry-After %q body %s", last.status, last.header.Get("Retry-After"), last.raw)
		}
	})
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	// Nothing secret reaches the audit log.
	audit := rcv.audit.String()
	for _, secret := range []string{acmeKey, acmeSecret, endpointSecret, standardSecret, "ORD-456"} {
		if strings.Contains(audit, secret) {
			t.Errorf("the audit log contains %q", secret)
		}
	}
	if !strings.Contains(audit, `"reason":"stale_timestamp"`) || !strings.Contains(audit, `"outcome":"duplicate"`) || !strings.Contains(audit, `"reason":"ip_denied"`) {
		t.Errorf("audit log lacks expected reasons:\n%s", audit)
	}
}

func hexToBase64(h string) (string, error) {
	b, err := hexDecode(h)
	if err != nil {
		return "", err
	}
	return b64(b), nil
}
