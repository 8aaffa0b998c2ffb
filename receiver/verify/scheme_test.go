package verify

import (
	"testing"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// TestEverySchemeIsDescribed walks the API's verification types: each must have a scheme
// here that says whose credentials it checks, whether it is timestamped, where its event
// id and type come from, and how to prepare its verifier. A type without one would compile
// and then refuse every request, or find ids in the wrong place.
func TestEverySchemeIsDescribed(t *testing.T) {
	for _, typ := range hookgatev1alpha1.VerificationTypes {
		t.Run(string(typ), func(t *testing.T) {
			s, ok := Lookup(typ)
			if !ok {
				t.Fatalf("verification type %s has no scheme: add one file to receiver/verify that registers it", typ)
			}
			if s.Type != typ {
				t.Errorf("Lookup(%s) returned the scheme of %s", typ, s.Type)
			}
			wantCreds := EndpointSecret
			if typ.UsesPartnerCredentials() {
				wantCreds = PartnerCredentials
			}
			if s.Credentials != wantCreds {
				t.Errorf("scheme %s checks credentials %d, the API says %d (UsesPartnerCredentials=%v)", typ, s.Credentials, wantCreds, typ.UsesPartnerCredentials())
			}
			if len(s.EventID) == 0 || len(s.EventType) == 0 {
				t.Errorf("scheme %s has no rule for the event id (%d sources) or type (%d sources)", typ, len(s.EventID), len(s.EventType))
			}
			for _, src := range append(append([]Source{}, s.EventID...), s.EventType...) {
				if (src.Header == "") == (src.JSONPath == "") {
					t.Errorf("scheme %s: source %+v must name a header or a body path, not both or neither", typ, src)
				}
			}
			if s.Timestamped == nil || s.Prepare == nil {
				t.Fatalf("scheme %s lacks Timestamped or Prepare", typ)
			}
		})
	}
	if len(schemes) != len(hookgatev1alpha1.VerificationTypes) {
		t.Errorf("%d schemes registered for %d API types: every API type needs exactly one scheme", len(schemes), len(hookgatev1alpha1.VerificationTypes))
	}
	if s, ok := Lookup(""); !ok || s.Type != hookgatev1alpha1.DefaultVerificationType {
		t.Errorf("an unset type must mean %s, got %+v", hookgatev1alpha1.DefaultVerificationType, s)
	}
}

// TestSchemeRules pins where each provider puts ids and types, and which schemes bound
// replays with a signed timestamp.
func TestSchemeRules(t *testing.T) {
	cases := []struct {
		typ         hookgatev1alpha1.VerificationType
		id, eventTy Source
		timestamped bool
	}{
		{hookgatev1alpha1.VerificationPartnerHMAC, FromBody("id"), FromBody("type"), true},
		{hookgatev1alpha1.VerificationAPIKey, FromBody("id"), FromBody("type"), false},
		{hookgatev1alpha1.VerificationJWT, FromBody("id"), FromBody("type"), true},
		{hookgatev1alpha1.VerificationRSASignature, FromBody("id"), FromBody("type"), false},
		{hookgatev1alpha1.VerificationStandardWebhooks, FromHeader(HeaderWebhookID), FromBody("type"), true},
		{hookgatev1alpha1.VerificationHMAC, FromBody("id"), FromBody("type"), false},
		{hookgatev1alpha1.VerificationStripe, FromBody("id"), FromBody("type"), true},
		{hookgatev1alpha1.VerificationGitHub, FromHeader(HeaderGitHubDelivery), FromHeader(HeaderGitHubEvent), false},
		{hookgatev1alpha1.VerificationSlack, FromBody("event_id"), FromBody("event.type"), true},
		{hookgatev1alpha1.VerificationShopify, FromHeader(HeaderShopifyWebhookID), FromHeader(HeaderShopifyTopic), false},
	}
	for _, c := range cases {
		s, ok := Lookup(c.typ)
		if !ok {
			t.Fatalf("no scheme for %s", c.typ)
		}
		if s.EventID[0] != c.id || s.EventType[0] != c.eventTy {
			t.Errorf("%s: id from %+v, type from %+v; want %+v and %+v", c.typ, s.EventID[0], s.EventType[0], c.id, c.eventTy)
		}
		if got := s.Timestamped(routing.Verification{}); got != c.timestamped {
			t.Errorf("%s: timestamped=%v, want %v", c.typ, got, c.timestamped)
		}
	}
	hmacScheme, _ := Lookup(hookgatev1alpha1.VerificationHMAC)
	if !hmacScheme.Timestamped(routing.Verification{TimestampHeader: "X-Ts"}) {
		t.Error("a generic HMAC endpoint with a timestamp header is timestamped")
	}
}
