package receiver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
)

// TestNonUTF8IdsAndTypesRefused: an event id, type, sub-topic or tenant that is not
// valid UTF-8 as sent, from a header or from the body (raw bytes, or a \u escape of a
// lone surrogate), is 400 with a message naming the field, before anything is stored:
// PostgreSQL refuses such text, which made the partner's every retry a 503, and decoding
// would have made different ids equal. Valid UTF-8 beyond ASCII is accepted.
func TestNonUTF8IdsAndTypesRefused(t *testing.T) {
	f := newFixture(t)
	var nested routing.Endpoint
	for _, e := range f.table.Endpoints {
		if e.Name == "stored" {
			nested = e
		}
	}
	nested.Name, nested.Path = "nested", "/api/webhooks/nested"
	nested.Idempotency.JSONPath = "data.ref"
	nested.SubType = &routing.ValueSource{JSONPath: "data.sub"}
	nested.Tenant = &routing.ValueSource{Header: "X-Tenant"}
	f.table.Endpoints = append(f.table.Endpoints, nested)
	rcv := startTestReceiver(t, f.table, nil)
	now := time.Now()

	partner := func(extra map[string]string) func([]byte) map[string]string {
		return func(body []byte) map[string]string {
			h := partnerHMACHeaders(acmeKey, acmeSecret, now, body)
			for k, v := range extra {
				h[k] = v
			}
			return h
		}
	}
	github := func(delivery, event string) func([]byte) map[string]string {
		return func(body []byte) map[string]string {
			return map[string]string{"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + hexMAC(endpointSecret, string(body)),
				"X-GitHub-Delivery": delivery, "X-GitHub-Event": event}
		}
	}
	standard := func(id string) func([]byte) map[string]string {
		return func(body []byte) map[string]string { return standardHeaders(standardSecret, id, now, body) }
	}
	cases := []struct {
		name       string
		path       string
		body       string
		headers    func([]byte) map[string]string
		wantStatus int
		wantReason string // the audit reason, and the start of the message's field
		wantField  string // what the message names
	}{
		{"body id, raw byte 0xff", "/api/webhooks/stored", "{\"id\":\"evt_\xff1\",\"type\":\"order.created\"}", partner(nil),
			400, "invalid_event_id", "event id (body field id)"},
		{"body id, another raw byte that decodes the same", "/api/webhooks/stored", "{\"id\":\"evt_\xfe1\",\"type\":\"order.created\"}", partner(nil),
			400, "invalid_event_id", "event id (body field id)"},
		{"body id, truncated two-byte sequence", "/api/webhooks/stored", "{\"id\":\"evt_\xc3\",\"type\":\"order.created\"}", partner(nil),
			400, "invalid_event_id", "event id (body field id)"},
		{"body id, lone high surrogate escape", "/api/webhooks/stored", `{"id":"evt_\ud800","type":"order.created"}`, partner(nil),
			400, "invalid_event_id", "event id (body field id)"},
		{"body id, lone low surrogate escape", "/api/webhooks/stored", `{"id":"evt_\udc00x","type":"order.created"}`, partner(nil),
			400, "invalid_event_id", "event id (body field id)"},
		{"body id, high surrogate then another escape", "/api/webhooks/stored", `{"id":"evt_\ud83d\u0041","type":"order.created"}`, partner(nil),
			400, "invalid_event_id", "event id (body field id)"},
		{"header id Webhook-Id, body without id", "/api/webhooks/stored", `{"type":"order.created"}`, partner(map[string]string{"webhook-id": "evt_\xff"}),
			400, "invalid_event_id", "event id (header Webhook-Id)"},
		{"header id X-Pps-Webhook-Id", "/api/webhooks/stored", `{"type":"order.created"}`, partner(map[string]string{"X-Pps-Webhook-Id": "evt_\x80\x80"}),
			400, "invalid_event_id", "event id (header X-Pps-Webhook-Id)"},
		{"idempotency.jsonPath id", "/api/webhooks/nested", "{\"type\":\"order.created\",\"data\":{\"ref\":\"r\xff\"}}", partner(nil),
			400, "invalid_event_id", "event id (body field data.ref)"},
		{"body type, raw bytes", "/api/webhooks/stored", "{\"id\":\"evt_t1\",\"type\":\"order.\xe9t\xe9\"}", partner(nil),
			400, "invalid_event_type", "event type (body field type)"},
		{"header type X-Pps-Topic", "/api/webhooks/stored", `{"id":"evt_t2"}`, partner(map[string]string{"X-Pps-Topic": "order.\xff"}),
			400, "invalid_event_type", "event type (header X-Pps-Topic)"},
		{"GitHub delivery id", "/api/webhooks/github", `{"ref":"a"}`, github("gh-\xff", "push"),
			400, "invalid_event_id", "event id (header X-GitHub-Delivery)"},
		{"GitHub event type", "/api/webhooks/github", `{"ref":"b"}`, github("gh-utf8-2", "pu\xffsh"),
			400, "invalid_event_type", "event type (header X-GitHub-Event)"},
		{"Standard Webhooks webhook-id", "/api/webhooks/standard", `{"type":"x"}`, standard("msg_\xff"),
			400, "invalid_event_id", "event id (header Webhook-Id)"},
		{"sub-topic header", "/api/webhooks/stored", `{"id":"evt_s1","type":"order.created"}`, partner(map[string]string{"X-Pps-Sub-Topic": "eu-\xff"}),
			400, "invalid_sub_topic", "sub-topic"},
		{"sub-topic jsonPath", "/api/webhooks/nested", "{\"type\":\"order.created\",\"data\":{\"ref\":\"r1\",\"sub\":\"s\xff\"}}", partner(nil),
			400, "invalid_sub_topic", "sub-topic"},
		{"tenant header", "/api/webhooks/nested", `{"type":"order.created","data":{"ref":"r2"}}`, partner(map[string]string{"X-Tenant": "t\xff"}),
			400, "invalid_tenant", "tenant"},

		// Valid UTF-8 beyond ASCII is accepted, escaped or not.
		{"body id, UTF-8 and a surrogate pair", "/api/webhooks/stored", `{"id":"évt_\ud83d\ude00","type":"order.created"}`, partner(nil), 202, "", ""},
		{"header id, UTF-8", "/api/webhooks/stored", `{"type":"order.created"}`, partner(map[string]string{"webhook-id": "évt_ü"}), 202, "", ""},
		{"GitHub, UTF-8 headers", "/api/webhooks/github", `{"ref":"c"}`, github("gh-ü", "pûsh"), 202, "", ""},
		{"nested, UTF-8 everywhere", "/api/webhooks/nested", `{"type":"order.created","data":{"ref":"r✓","sub":"s✓"}}`, partner(map[string]string{"X-Tenant": "t✓"}), 202, "", ""},
	}
	accepted := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(c.body)
			r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+c.path, c.headers(body), body))
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, c.wantStatus, r.raw)
			}
			if c.wantStatus != 400 {
				accepted++
				return
			}
			msg, _ := r.body["message"].(string)
			if r.body["error"] != "Bad request" || !strings.Contains(msg, c.wantField) || !strings.Contains(msg, "UTF-8") {
				t.Errorf("body %s, want error \"Bad request\" and a message naming %q and UTF-8", r.raw, c.wantField)
			}
			if !auditReason(rcv, r.header.Get("X-Request-Id"), c.wantReason) {
				t.Errorf("the audit record lacks reason %q:\n%s", c.wantReason, rcv.audit.String())
			}
		})
	}

	// Nothing refused reached the store: the partner's log holds the accepted events only.
	list := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/events?limit=100", map[string]string{"x-api-key": acmeKey}, nil))
	if events, _ := list.body["events"].([]any); list.status != 200 || len(events) != accepted {
		t.Errorf("event log %d with %d events, want the %d accepted: %s", list.status, len(events), accepted, list.raw)
	}
	// The partner's queries refuse such text too, rather than passing it to the store.
	for _, q := range []struct{ path, reason string }{
		{"/api/webhooks/status?eventId=evt_%FF", "missing_event_id"},
		{"/api/webhooks/events?type=order.%FF", "invalid_query"},
		{"/api/webhooks/events?cursor=%C3", "invalid_query"},
	} {
		r := do(t, nil, newRequest(t, http.MethodGet, rcv.url+q.path, map[string]string{"x-api-key": acmeKey}, nil))
		if msg, _ := r.body["message"].(string); r.status != 400 || r.body["error"] != "Bad request" || !strings.Contains(msg, "UTF-8") {
			t.Errorf("GET %s: %d %s, want 400 saying UTF-8", q.path, r.status, r.raw)
		} else if !auditReason(rcv, r.header.Get("X-Request-Id"), q.reason) {
			t.Errorf("GET %s: the audit record lacks reason %q", q.path, q.reason)
		}
	}
}
