package receiver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// TestSeedExamples runs the partner-events-api seed page's shell recipe (bash, openssl,
// curl) and JavaScript example (node) against a running receiver.
func TestSeedExamples(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "curl", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the seed examples (.ci/run installs it): %v", tool, err)
		}
	}
	apiKey, secret := "hgk_"+randomB64(t, base64.RawURLEncoding), "whsec_"+randomB64(t, base64.StdEncoding)
	table := &routing.Table{
		Partners: []routing.Partner{{Namespace: "partners", Name: "acme", Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(apiKey), SigningSecret: routing.SecretValue(secret)}}}},
		Endpoints: []routing.Endpoint{{
			Namespace: "partners", Name: "events", Path: "/api/webhooks/events",
			Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(72 * time.Hour)},
			MaxBodyBytes: 1 << 20,
			Destination:  &routing.Destination{URL: "http://127.0.0.1:9/", Timeout: routing.Duration(time.Second)},
			Paused:       true, // the events stay Queued for the status checks
		}},
	}
	rcv := startTestReceiver(t, table, nil)
	fill := func(name string) string {
		raw, err := os.ReadFile(filepath.Join("testdata", "seed", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.NewReplacer("{{URL}}", rcv.url, "{{API_KEY}}", apiKey, "{{SECRET}}", secret).Replace(string(raw))
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s%s", name, args, err, out, stderr.String())
		}
		return string(out)
	}

	t.Run("shell recipe with openssl and curl", func(t *testing.T) {
		out := run("bash", fill("partner-events.sh"))
		t.Logf("curl printed: %s", out)
		var answer acceptedBody
		if err := json.Unmarshal([]byte(out), &answer); err != nil || answer.EventID != "evt_123" || answer.Status != "Queued" {
			t.Fatalf("the recipe's request was not accepted: %s", out)
		}
		assertAudited(t, rcv, answer.UUID, http.StatusAccepted)
		assertStatus(t, rcv, apiKey, "evt_123", answer.UUID)
	})
	t.Run("JavaScript example with node", func(t *testing.T) {
		out := run("node", fill("partner-events.js"))
		t.Logf("node printed: %s", out)
		m := regexp.MustCompile(`uuid: '([^']+)',\s+eventId: '([^']+)',\s+status: 'Queued'`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("the example's request was not accepted: %s", out)
		}
		assertAudited(t, rcv, m[1], http.StatusAccepted)
		assertStatus(t, rcv, apiKey, m[2], m[1])
	})
}

func randomB64(t *testing.T, enc *base64.Encoding) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString(b)
}

// assertAudited finds the audit line of the request that stored uuid, with its status.
func assertAudited(t *testing.T, rcv *testReceiver, uuid string, status int) {
	t.Helper()
	for _, line := range strings.Split(rcv.audit.String(), "\n") {
		var rec struct {
			Logger string `json:"logger"`
			UUID   string `json:"uuid"`
			Status int    `json:"status"`
			Route  string `json:"route"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.UUID == uuid && rec.Route == "event" {
			if rec.Status != status || rec.Logger != "audit" {
				t.Fatalf("audit line %s: status %d, want %d", line, rec.Status, status)
			}
			return
		}
	}
	t.Fatalf("no audit line for %s", uuid)
}

// assertStatus queries the status API as the partner.
func assertStatus(t *testing.T, rcv *testReceiver, apiKey, eventID, uuid string) {
	t.Helper()
	r := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/status?eventId="+url.QueryEscape(eventID), map[string]string{"x-api-key": apiKey}, nil))
	if r.status != http.StatusOK || r.body["uuid"] != uuid || r.body["eventId"] != eventID || r.body["status"] != "Queued" {
		t.Fatalf("status API: %d %s", r.status, r.raw)
	}
}
