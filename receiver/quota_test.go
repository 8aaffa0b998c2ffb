package receiver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// twoTenants is a table with one partner and one stored-only endpoint in each of two
// namespaces.
func twoTenants(mutate func(p *routing.Partner)) *routing.Table {
	t := &routing.Table{}
	for _, ns := range []string{"team-a", "team-b"} {
		p := routing.Partner{Namespace: ns, Name: "partner", Credentials: []routing.Credential{
			{APIKeySHA256: routing.HashAPIKey("hgk_" + ns), SigningSecret: routing.SecretValue("whsec_" + ns)}}}
		if mutate != nil && ns == "team-a" {
			mutate(&p)
		}
		t.Partners = append(t.Partners, p)
		t.Endpoints = append(t.Endpoints, routing.Endpoint{
			Namespace: ns, Name: "events", Path: "/api/webhooks/" + ns + "/events",
			Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(time.Hour)},
			MaxBodyBytes: 1 << 20,
		})
	}
	return t
}

func postAs(t *testing.T, rcv *testReceiver, ns, id string, size int) response {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"id":%q,"type":"x","pad":%q}`, id, strings.Repeat("p", size)))
	return do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/"+ns+"/events",
		partnerHMACHeaders("hgk_"+ns, "whsec_"+ns, time.Now(), body), body))
}

// TestStoredBytesQuota: team-a's partner fills its 10 KB quota and gets 507 with a clear
// message; team-b's partner, on the receiver's default quota, keeps being accepted.
func TestStoredBytesQuota(t *testing.T) {
	table := twoTenants(func(p *routing.Partner) { p.MaxStoredBytes = 10_000 })
	rcv := startTestReceiver(t, table, nil)
	accepted := 0
	var refused response
	for i := range 20 {
		r := postAs(t, rcv, "team-a", fmt.Sprintf("a%d", i), 1000)
		if r.status == http.StatusInsufficientStorage {
			refused = r
			break
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("event %d: %d %s", i, r.status, r.raw)
		}
		accepted++
	}
	if refused.status != http.StatusInsufficientStorage || accepted < 8 || accepted > 10 {
		t.Fatalf("%d accepted before a 507 (%d %s); want about 10 KB worth", accepted, refused.status, refused.raw)
	}
	if msg, _ := refused.body["message"].(string); !strings.Contains(msg, "quota") || refused.body["error"] != "Insufficient storage" {
		t.Errorf("the 507 does not say what happened: %s", refused.raw)
	}
	// A duplicate of a stored event is still answered with its original.
	if r := postAs(t, rcv, "team-a", "a0", 1000); r.status != http.StatusOK || r.body["duplicate"] != true {
		t.Errorf("a duplicate at the quota: %d %s", r.status, r.raw)
	}
	for i := range 30 {
		if r := postAs(t, rcv, "team-b", fmt.Sprintf("b%d", i), 1000); r.status != http.StatusAccepted {
			t.Fatalf("team-b's event %d while team-a is at its quota: %d %s", i, r.status, r.raw)
		}
	}
}
