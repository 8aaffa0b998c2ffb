package receiver

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/hookgate/hookgate/internal/routing"
)

func TestStatusAPI(t *testing.T) {
	f := newFixture(t)
	rcv := startTestReceiver(t, f.table, nil)
	body := []byte(`{"id":"evt_status","type":"order.created"}`)
	accepted := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/events", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
	if accepted.status != http.StatusAccepted {
		t.Fatalf("setup: %d %s", accepted.status, accepted.raw)
	}
	uuid := accepted.body["uuid"].(string)
	get := func(id, key string) response {
		h := map[string]string{}
		if key != "" {
			h["x-api-key"] = key
		}
		return do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/status?eventId="+id, h, nil))
	}
	cases := []struct {
		name, id, key string
		status        int
	}{
		{"by partner event id", "evt_status", acmeKey, 200},
		{"by uuid", uuid, acmeKey, 200},
		{"with a key in its grace period", "evt_status", acmeGraceKey, 200},
		{"no key", "evt_status", "", 401},
		{"unknown key", "evt_status", "hgk_nobody", 401},
		{"suspended partner", "evt_status", globexKey, 403},
		{"IP outside the partner's allowlist", "evt_status", initechKey, 403},
		{"another partner's event by id", "evt_status", limitedKey, 404},
		{"another partner's event by uuid", uuid, foreignKey, 404},
		{"unknown id", "evt_nothing", acmeKey, 404},
		{"no id", "", acmeKey, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := get(c.id, c.key)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.status == 200 {
				for _, field := range []string{"uuid", "eventId", "type", "status", "attempts", "receivedAt"} {
					if _, ok := r.body[field]; !ok {
						t.Errorf("answer lacks %s: %s", field, r.raw)
					}
				}
				if r.body["uuid"] != uuid || r.body["status"] != "Queued" {
					t.Errorf("answer %s", r.raw)
				}
			} else if r.body["error"] == nil || r.body["message"] == nil {
				t.Errorf("error body %s", r.raw)
			}
		})
	}
	t.Run("health and probes", func(t *testing.T) {
		if r := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/health", nil, nil)); r.status != 200 || r.body["status"] != "ok" {
			t.Errorf("/api/health %d %s", r.status, r.raw)
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := do(t, nil, newRequest(t, http.MethodGet, rcv.probeURL+p, nil, nil)); r.status != 200 {
				t.Errorf("%s %d %s", p, r.status, r.raw)
			}
		}
		r := do(t, nil, newRequest(t, http.MethodGet, rcv.probeURL+"/metrics", nil, nil))
		for _, metric := range []string{"hookgate_receiver_requests_total", "hookgate_receiver_request_duration_seconds", "hookgate_store_commit_duration_seconds", "hookgate_store_commit_batch_size", "hookgate_routing_table_serial"} {
			if !strings.Contains(r.raw, metric) {
				t.Errorf("/metrics lacks %s", metric)
			}
		}
	})
}

// TestServesCachedTableWhileAPIServerIsDown starts a receiver that must load its table
// from a cluster it cannot reach: it serves from the copy on disk.
func TestServesCachedTableWhileAPIServerIsDown(t *testing.T) {
	f := newFixture(t)
	f.table.Finalize(nil)
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_ = json.NewEncoder(zw).Encode(f.table)
	_ = zw.Close()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (routing.DiskCache{Path: filepath.Join(dataDir, "routing-table.json.gz")}).Save(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	rcv := startTestReceiver(t, f.table, func(o *Options) {
		o.RoutingFile = ""
		o.Namespace = "hookgate-system"
		o.DataDir = dataDir
		o.Identity = "receiver-0"
		// Nothing listens there: the API server is down.
		o.KubeConfig = &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}
	})
	body := []byte(`{"id":"evt_offline","type":"order.created"}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/events", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
		if r.status == http.StatusAccepted || r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the API server down the cached table is not served: %d %s", r.status, r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
