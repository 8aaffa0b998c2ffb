package receiver

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/filter"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"order.created","event":{"type":"x"}}`), "evt")
	f.Add([]byte(`[1,2]`), "")
	f.Add([]byte(`{"id":12345678901234567890}{}`), "")
	f.Add([]byte(`{"id":"evt_\ud83d\ude00","type":"order.\udc00","data":{"id":"\ud800\u0041"}}`), "order.\xff")
	f.Add([]byte("{\"id\":\"\xff\",\"data\":{\"id\":\"\xc3\"}}"), "order.ok")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		for _, typ := range hookgatev1alpha1.VerificationTypes {
			scheme, _ := verify.Lookup(typ)
			ep := &routing.Endpoint{Verification: routing.Verification{Type: typ}, EventTypes: []string{"order.*"},
				Idempotency: routing.Idempotency{JSONPath: "data.id"}}
			h := http.Header{}
			h.Set("X-Pps-Topic", header)
			ev, rej := parseEvent(ep, scheme, h, body)
			if rej == nil && (len(ev.id) > maxEventIDLength || !filter.MatchesPattern(ep.EventTypes, ev.typ) || !utf8.ValidString(ev.id) || !utf8.ValidString(ev.typ)) {
				t.Fatalf("accepted id %q type %q", ev.id, ev.typ)
			}
		}
	})
}

func FuzzClientIP(f *testing.F) {
	f.Add("127.0.0.2:1234", "203.0.113.1, 10.0.0.1", "127.0.0.0/8,10.0.0.0/8")
	f.Add("[::1]:80", "[2001:db8::1], garbage", "::1")
	f.Fuzz(func(t *testing.T, remote, xff, trusted string) {
		proxies, err := ParseTrustedProxies(trusted)
		if err != nil {
			return
		}
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		ip := clientIP(r, proxies)
		// An untrusted peer is always its own client address.
		if peer := parseAddr(remote); !isTrusted(peer, proxies) && ip != peer {
			t.Fatalf("untrusted peer %v became %v through X-Forwarded-For", peer, ip)
		}
	})
}

func FuzzContentType(f *testing.F) {
	f.Add("application/json; charset=utf-8")
	f.Add("application/vnd.api+json")
	f.Add("text/json")
	f.Fuzz(func(t *testing.T, ct string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", ct)
		_ = checkContentType(r)
	})
}

func FuzzRoutingFile(f *testing.F) {
	f.Add([]byte(`{"partners":[{"ns":"a","name":"b","creds":[{"keySHA256":"x","signingSecret":"y"}]}],"endpoints":[{"ns":"a","name":"e","path":"/api/webhooks/e","verification":{"type":"PartnerHMAC","tolerance":"5m0s"},"idempotency":{"window":"1h"},"retry":{"initialBackoff":"1s","maxBackoff":"1h"},"maxBodyBytes":10}]}`))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		table, err := routing.DecodeFile(data)
		if err != nil {
			return
		}
		rt := compileRoutes(table, verify.Env{})
		for _, e := range table.Endpoints {
			if _, ok := rt.table.EndpointByPath(e.Path); !ok {
				t.Fatalf("endpoint %q not routable", e.Path)
			}
		}
		_, _, _ = table.PartnerByAPIKey("k", time.Now())
	})
}
