package receiver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPartnerAPI: a partner sees its key and endpoints, one of its events with every
// attempt and its payload, and retries a Failed event (a new attempt follows); another
// partner's key sees none of it; a retry of an event that is not Failed is 409.
func TestPartnerAPI(t *testing.T) {
	var hits atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusBadRequest) // final at once: the event is Failed
	}))
	defer failing.Close()
	f := newFixture(t)
	f.forward("failing", failing.URL+"/hooks")
	rcv := startTestReceiver(t, f.table, nil)
	get := func(key, path string) response {
		t.Helper()
		return do(t, nil, newRequest(t, http.MethodGet, rcv.url+path, map[string]string{"x-api-key": key}, nil))
	}

	me := get(acmeKey, "/api/webhooks/me")
	if me.status != http.StatusOK || me.body["partner"] != "acme" || me.body["keyPrefix"] != acmeKey[:8] || me.body["keyGraceEndsAt"] != nil {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	if eps, _ := me.body["endpoints"].([]any); len(eps) < 3 {
		t.Fatalf("me lists %d endpoints: %s", len(eps), me.raw)
	}
	if me.body["previousKeyValidUntil"] == nil {
		t.Errorf("me: %s; want previousKeyValidUntil (acme has a previous key in its grace period)", me.raw)
	}
	if grace := get(acmeGraceKey, "/api/webhooks/me"); grace.body["keyGraceEndsAt"] == nil {
		t.Errorf("me with the previous key: %s; want keyGraceEndsAt", grace.raw)
	}

	body := []byte(`{"id":"evt_api_1","type":"order.created","note":"<img src=x onerror=alert(1)>"}`)
	sent := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/failing", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
	if sent.status != http.StatusAccepted {
		t.Fatalf("ingest: %d %s", sent.status, sent.raw)
	}
	uuid := sent.body["uuid"].(string)
	waitStatus(t, rcv, "evt_api_1", "Failed")

	detail := get(acmeKey, "/api/webhooks/events/"+uuid)
	log, _ := detail.body["attemptLog"].([]any)
	if detail.status != http.StatusOK || len(log) != 1 || log[0].(map[string]any)["responseCode"] != float64(400) {
		t.Fatalf("event detail: %d %s", detail.status, detail.raw)
	}
	payload, _ := json.Marshal(detail.body["payload"])
	var want, got any
	_ = json.Unmarshal(body, &want)
	_ = json.Unmarshal(payload, &got)
	if !jsonEqual(want, got) {
		t.Fatalf("payload %s, want %s", payload, body)
	}
	if byID := get(acmeKey, "/api/webhooks/events/evt_api_1"); byID.status != http.StatusOK || byID.body["uuid"] != uuid {
		t.Errorf("by event id: %d %s", byID.status, byID.raw)
	}

	for _, path := range []string{"/api/webhooks/events/" + uuid, "/api/webhooks/status?eventId=evt_api_1"} {
		if other := get(foreignKey, path); other.status != http.StatusNotFound {
			t.Errorf("another partner's key on %s: %d %s", path, other.status, other.raw)
		}
	}
	if other := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/events/"+uuid+"/retry", map[string]string{"x-api-key": foreignKey}, nil)); other.status != http.StatusNotFound {
		t.Errorf("another partner's retry: %d %s", other.status, other.raw)
	}

	retry := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/events/"+uuid+"/retry", map[string]string{"x-api-key": acmeKey}, nil))
	if retry.status != http.StatusAccepted || retry.body["status"] != "Queued" {
		t.Fatalf("retry: %d %s", retry.status, retry.raw)
	}
	waitStatus(t, rcv, "evt_api_1", "Failed")
	if n := hits.Load(); n != 2 {
		t.Fatalf("the destination saw %d attempts, want 2 after the retry", n)
	}
	if again := get(acmeKey, "/api/webhooks/events/"+uuid); len(again.body["attemptLog"].([]any)) != 2 {
		t.Fatalf("attempts after the retry: %s", again.raw)
	}
	if !bytes.Contains([]byte(rcv.audit.String()), []byte(`"route":"event-retry"`)) {
		t.Error("the retry is not in the audit log")
	}

	stored := []byte(`{"id":"evt_api_2","type":"order.created"}`)
	kept := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), stored), stored))
	if c := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/events/"+kept.body["uuid"].(string)+"/retry", map[string]string{"x-api-key": acmeKey}, nil)); c.status != http.StatusConflict {
		t.Errorf("retry of a Stored event: %d %s, want 409", c.status, c.raw)
	}
	if c := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/events/"+uuid+"/retry", map[string]string{"x-api-key": acmeKey}, nil)); c.status != http.StatusMethodNotAllowed {
		t.Errorf("GET retry: %d, want 405", c.status)
	}
	if c := get("", "/api/webhooks/me"); c.status != http.StatusUnauthorized {
		t.Errorf("me without a key: %d, want 401", c.status)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestOpenAPIDocument: the receiver serves docs/openapi.json as it is in the repository,
// and answers every path it names (none is an unknown path).
func TestOpenAPIDocument(t *testing.T) {
	docs, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, openAPI) {
		t.Fatal("docs/openapi.json and receiver/openapi.json differ: copy receiver/openapi.json to docs/")
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil || doc.OpenAPI == "" || len(doc.Paths) == 0 {
		t.Fatalf("not an OpenAPI document: %v", err)
	}
	rcv := startTestReceiver(t, newFixture(t).table, nil)
	served := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/openapi.json", nil, nil))
	if served.status != http.StatusOK || !bytes.Equal([]byte(served.raw), openAPI) {
		t.Fatalf("served: %d", served.status)
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			url := rcv.url + path
			if path == "/api/webhooks/status" {
				url += "?eventId=x"
			}
			resp := do(t, nil, newRequest(t, map[string]string{"get": http.MethodGet, "post": http.MethodPost}[method], url, map[string]string{"x-api-key": acmeKey}, nil))
			msg, _ := resp.body["message"].(string)
			if resp.status == http.StatusMethodNotAllowed || strings.Contains(msg, "no webhook endpoint at this path") || strings.HasPrefix(msg, "use /api/webhooks/events/") {
				t.Errorf("%s %s is not served: %d %s", method, path, resp.status, resp.raw)
			}
		}
	}
}

// TestPartnerAPIDocExamples runs each curl line of docs/partner-api.md against a real
// receiver that has the event evt_123: each must print a JSON answer that is not an error.
func TestPartnerAPIDocExamples(t *testing.T) {
	raw, err := os.ReadFile("../docs/partner-api.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	for _, l := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
		case strings.HasPrefix(l, "```"):
			in = false
		case in && strings.TrimSpace(l) != "":
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatal("docs/partner-api.md has no sh example")
	}
	rcv := startTestReceiver(t, newFixture(t).table, nil)
	body := []byte(`{"id":"evt_123","type":"order.created"}`)
	if r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body)); r.status != http.StatusAccepted {
		t.Fatalf("ingest: %d", r.status)
	}
	for _, l := range lines {
		cmd := exec.Command("bash", "-c", strings.ReplaceAll(l, "http://127.0.0.1:8080", rcv.url))
		cmd.Env = append(os.Environ(), "HOOKGATE_API_KEY="+acmeKey)
		out, err := cmd.Output()
		var answer map[string]any
		if err != nil || json.Unmarshal(out, &answer) != nil || answer["error"] != nil {
			t.Errorf("%s: %v\n%s", l, err, out)
		}
	}
}

// TestPartnerEventLog: GET /api/webhooks/events lists the partner's own events newest
// first with their delivery summaries, filtered by status and type, page by page; another
// partner's key sees none of them; a bad query is 400.
func TestPartnerEventLog(t *testing.T) {
	f := newFixture(t)
	rcv := startTestReceiver(t, f.table, nil)
	var uuids []string
	for i := range 5 {
		typ := "order.created"
		if i == 4 {
			typ = "order.refunded"
		}
		body := fmt.Appendf(nil, `{"id":"evt_log_%d","type":%q}`, i, typ)
		r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
		if r.status != http.StatusAccepted {
			t.Fatalf("ingest: %d %s", r.status, r.raw)
		}
		uuids = append(uuids, r.body["uuid"].(string))
	}
	list := func(key, query string) response {
		t.Helper()
		return do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/events"+query, map[string]string{"x-api-key": key}, nil))
	}
	ids := func(r response) []string {
		var out []string
		evs, _ := r.body["events"].([]any)
		for _, e := range evs {
			out = append(out, e.(map[string]any)["uuid"].(string))
		}
		return out
	}
	all := list(acmeKey, "")
	if got := ids(all); len(got) != 5 || got[0] != uuids[4] || got[4] != uuids[0] {
		t.Fatalf("the log: %s", all.raw)
	}
	var paged []string
	cursor := ""
	for range 5 {
		page := list(acmeKey, "?limit=2&cursor="+cursor)
		paged = append(paged, ids(page)...)
		next, _ := page.body["cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(paged) != 5 || paged[0] != uuids[4] {
		t.Fatalf("two at a time: %v", paged)
	}
	if got := ids(list(acmeKey, "?type=order.refunded&status=Stored")); len(got) != 1 || got[0] != uuids[4] {
		t.Fatalf("filtered: %v", got)
	}
	if other := list(foreignKey, ""); other.status != http.StatusOK || len(ids(other)) != 0 {
		t.Fatalf("another partner's log: %d %s", other.status, other.raw)
	}
	for _, q := range []string{"?status=Lost", "?limit=0", "?limit=1000", "?since=yesterday"} {
		if r := list(acmeKey, q); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", q, r.status, r.raw)
		}
	}
}

// TestPartnerUsage: the partner's requests per day, by outcome and rejection reason, from
// what was written and what this replica has not written yet; another partner's key
// sees its own zeros.
func TestPartnerUsage(t *testing.T) {
	rcv := startTestReceiver(t, newFixture(t).table, nil)
	body := []byte(`{"id":"evt_use_1","type":"order.created"}`)
	for range 2 { // accepted, then a duplicate
		do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
	}
	bad := partnerHMACHeaders(acmeKey, "wrong-secret", time.Now(), body)
	do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", bad, body))
	get := func(key, q string) response {
		return do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/usage"+q, map[string]string{"x-api-key": key}, nil))
	}
	check := func(when string) {
		t.Helper()
		r := get(acmeKey, "?days=3")
		days, _ := r.body["days"].([]any)
		if r.status != http.StatusOK || len(days) != 3 {
			t.Fatalf("%s: %d %s", when, r.status, r.raw)
		}
		today := days[2].(map[string]any)
		if today["accepted"] != float64(1) || today["duplicate"] != float64(1) || today["rejected"] != float64(1) || len(today["rejectedByReason"].(map[string]any)) != 1 {
			t.Fatalf("%s: today is %v", when, today)
		}
	}
	check("before the counts are written")
	time.Sleep(usageFlushEvery + time.Second)
	check("after they are written")
	other := get(foreignKey, "")
	days, _ := other.body["days"].([]any)
	if len(days) != 14 || days[13].(map[string]any)["accepted"] != float64(0) {
		t.Fatalf("another partner: %s", other.raw)
	}
	if r := get(acmeKey, "?days=91"); r.status != http.StatusBadRequest {
		t.Errorf("days=91: %d", r.status)
	}
}
