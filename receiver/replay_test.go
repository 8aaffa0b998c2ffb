package receiver

import (
	"net/http"
	"testing"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

func TestDedupOn(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	cases := []struct {
		name       string
		typ        hookgatev1alpha1.VerificationType
		v          routing.Verification
		parsed     parsedEvent
		wantOnBody bool // the body hash, not the id
		wantFloor  bool
	}{
		{"timestamped scheme keeps its id and window", hookgatev1alpha1.VerificationPartnerHMAC, routing.Verification{}, parsedEvent{id: "evt_1"}, false, false},
		{"API keys sign nothing: id and window as configured", hookgatev1alpha1.VerificationAPIKey, routing.Verification{}, parsedEvent{id: "evt_1"}, false, false},
		{"GitHub's delivery header is not signed", hookgatev1alpha1.VerificationGitHub, routing.Verification{}, parsedEvent{id: "gh-1", idFromHeader: true}, true, true},
		{"Shopify's webhook id header is not signed", hookgatev1alpha1.VerificationShopify, routing.Verification{}, parsedEvent{id: "sh-1", idFromHeader: true}, true, true},
		{"an RSA-signed body id is signed", hookgatev1alpha1.VerificationRSASignature, routing.Verification{}, parsedEvent{id: "evt_1"}, false, true},
		{"an RSA-signed event without id", hookgatev1alpha1.VerificationRSASignature, routing.Verification{}, parsedEvent{}, true, true},
		{"HMAC without timestamp, id header in the template", hookgatev1alpha1.VerificationHMAC, routing.Verification{SignedContent: "{id}.{body}"}, parsedEvent{id: "h-1", idFromHeader: true}, false, true},
		{"HMAC without timestamp, id header not signed", hookgatev1alpha1.VerificationHMAC, routing.Verification{SignedContent: "{body}"}, parsedEvent{id: "h-1", idFromHeader: true}, true, true},
		{"HMAC with a timestamp", hookgatev1alpha1.VerificationHMAC, routing.Verification{SignedContent: "{timestamp}.{body}", TimestampHeader: "X-Ts"}, parsedEvent{id: "h-1", idFromHeader: true}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			scheme, _ := verify.Lookup(c.typ)
			ep := &routing.Endpoint{Verification: c.v, Idempotency: routing.Idempotency{Window: routing.Duration(72 * time.Hour)}}
			ep.Verification.Type = c.typ
			on, window := dedupOn(scheme, ep, c.parsed, body)
			if onBody := len(on) > 7 && on[:7] == "sha256:"; onBody != c.wantOnBody || (!c.wantOnBody && on != c.parsed.id) {
				t.Errorf("deduplicated on %q, want the body hash=%v", on, c.wantOnBody)
			}
			if floor := window == replayWindowFloor; floor != c.wantFloor {
				t.Errorf("window %s, want the replay floor=%v", window, c.wantFloor)
			}
		})
	}
}

// TestReplayWithANewDeliveryID: a captured GitHub request sent again with another
// X-GitHub-Delivery is a duplicate of the first, not a new event.
func TestReplayWithANewDeliveryID(t *testing.T) {
	f := newFixture(t)
	rcv := startTestReceiver(t, f.table, nil)
	body := []byte(`{"ref":"refs/heads/main","after":"abc123"}`)
	send := func(delivery string) response {
		return do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/github", map[string]string{
			"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + hexMAC(endpointSecret, string(body)),
			"X-GitHub-Delivery": delivery, "X-GitHub-Event": "push"}, body))
	}
	first := send("replay-1")
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.status, first.raw)
	}
	replay := send("replay-2")
	if replay.status != http.StatusOK || replay.body["duplicate"] != true || replay.body["uuid"] != first.body["uuid"] {
		t.Fatalf("the replay with a new delivery id: %d %s, want 200 duplicate of %v", replay.status, replay.raw, first.body["uuid"])
	}
}

// TestReplayableEventsOutliveTheirFloor: an endpoint without signed timestamps keeps its
// finished events for the replay floor, so that a replay still finds the original.
func TestReplayableEventsOutliveTheirFloor(t *testing.T) {
	now := time.Now()
	window := routing.Idempotency{Window: routing.Duration(72 * time.Hour)}
	table := &routing.Table{Endpoints: []routing.Endpoint{
		{Namespace: "ns", Name: "github", Verification: routing.Verification{Type: hookgatev1alpha1.VerificationGitHub}, Idempotency: window},
		{Namespace: "ns", Name: "events", Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC}, Idempotency: window},
	}}
	cutoff := pruneCutoff(table, 7*24*time.Hour, now)
	if got := cutoff.For("ns/github"); !got.Equal(now.Add(-replayWindowFloor)) {
		t.Errorf("GitHub endpoint's events kept until %s ago, want the replay floor", now.Sub(got))
	}
	if got := cutoff.For("ns/events"); !got.Equal(now.Add(-7 * 24 * time.Hour)) {
		t.Errorf("a timestamped endpoint's events kept until %s ago, want the store retention", now.Sub(got))
	}
}
