package receiver

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRotationPairsEachKeyWithItsOwnSecret: during a rotation grace period both the new
// and the previous credentials work, but a key only with its own signing secret; a key
// with the other pair's secret is 401, as if the secret were wrong.
func TestRotationPairsEachKeyWithItsOwnSecret(t *testing.T) {
	f := newFixture(t)
	rcv := startTestReceiver(t, f.table, nil)
	cases := []struct {
		name, key, secret string
		wantStatus        int
		wantReason        string
	}{
		{"current key, current secret", acmeKey, acmeSecret, http.StatusAccepted, ""},
		{"previous key, previous secret", acmeGraceKey, acmeGraceSecret, http.StatusAccepted, ""},
		{"current key, previous secret", acmeKey, acmeGraceSecret, http.StatusUnauthorized, "invalid_signature"},
		{"previous key, current secret", acmeGraceKey, acmeSecret, http.StatusUnauthorized, "invalid_signature"},
		{"expired key, its own secret", acmeExpiredKey, acmeExpiredSec, http.StatusUnauthorized, "unknown_key"},
		{"previous key, expired secret", acmeGraceKey, acmeExpiredSec, http.StatusUnauthorized, "invalid_signature"},
		{"current key, another partner's secret", acmeKey, initechSecret, http.StatusUnauthorized, "invalid_signature"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(`{"id":"evt_pair_` + strconv.Itoa(i) + `","type":"order.created"}`)
			r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", partnerHMACHeaders(c.key, c.secret, time.Now(), body), body))
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, c.wantStatus, r.raw)
			}
			if c.wantStatus == http.StatusUnauthorized && (r.body["error"] != "Unauthorized" || r.body["message"] == "") {
				t.Errorf("error body %s, want {\"error\": \"Unauthorized\", \"message\": ...}", r.raw)
			}
			if c.wantReason != "" && !auditReason(rcv, r.header.Get("X-Request-Id"), c.wantReason) {
				t.Errorf("the audit record of %s lacks reason %q:\n%s", r.header.Get("X-Request-Id"), c.wantReason, rcv.audit.String())
			}
		})
	}
	for _, secret := range []string{acmeKey, acmeSecret, acmeGraceKey, acmeGraceSecret} {
		if strings.Contains(rcv.audit.String(), secret) {
			t.Errorf("the audit log contains %q", secret)
		}
	}
}

// auditReason reports whether the audit record of a request has a reason; the record is
// written as the handler returns, so it may trail the answer by a moment.
func auditReason(rcv *testReceiver, requestID, reason string) bool {
	deadline := time.Now().Add(2 * time.Second)
	for {
		for _, line := range strings.Split(rcv.audit.String(), "\n") {
			if strings.Contains(line, `"requestId":"`+requestID+`"`) {
				return strings.Contains(line, `"reason":"`+reason+`"`)
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
