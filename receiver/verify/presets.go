package verify

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// The providers' schemes: ids and types come from where each provider puts them.
var (
	_ = register(Scheme{
		Type:        hookgatev1alpha1.VerificationStripe,
		Signed:      true,
		Credentials: EndpointSecret,
		Timestamped: always,
		EventID:     []Source{FromBody("id")},
		Prepare: endpointSecret(func(secret []byte, r *Request, tolerance time.Duration) error {
			return Stripe(secret, r.Header.Get(HeaderStripeSignature), r.Body, r.Now, tolerance)
		}),
	})
	_ = register(Scheme{
		Type:        hookgatev1alpha1.VerificationGitHub,
		Signed:      true,
		Credentials: EndpointSecret,
		Timestamped: never,
		EventID:     []Source{FromHeader(HeaderGitHubDelivery)},
		EventType:   []Source{FromHeader(HeaderGitHubEvent)},
		Prepare: endpointSecret(func(secret []byte, r *Request, _ time.Duration) error {
			return GitHub(secret, r.Header.Get(HeaderGitHubSignature), r.Body)
		}),
	})
	_ = register(Scheme{
		Type:        hookgatev1alpha1.VerificationSlack,
		Signed:      true,
		Credentials: EndpointSecret,
		Timestamped: always,
		EventID:     []Source{FromBody("event_id")},
		EventType:   []Source{FromBody("event.type")},
		Prepare: endpointSecret(func(secret []byte, r *Request, tolerance time.Duration) error {
			return Slack(secret, r.Header.Get(HeaderSlackSignature), r.Header.Get(HeaderSlackTimestamp), r.Body, r.Now, tolerance)
		}),
	})
	_ = register(Scheme{
		Type:        hookgatev1alpha1.VerificationShopify,
		Signed:      true,
		Credentials: EndpointSecret,
		Timestamped: never,
		EventID:     []Source{FromHeader(HeaderShopifyWebhookID)},
		EventType:   []Source{FromHeader(HeaderShopifyTopic)},
		Prepare: endpointSecret(func(secret []byte, r *Request, _ time.Duration) error {
			return Shopify(secret, r.Header.Get(HeaderShopifySignature), r.Body)
		}),
	})
)

// endpointSecret prepares a verifier keyed with the bytes of the endpoint's secretRef.
func endpointSecret(check func(secret []byte, r *Request, tolerance time.Duration) error) func(*routing.Endpoint, Env) (Verifier, error) {
	return func(ep *routing.Endpoint, _ Env) (Verifier, error) {
		secret, tolerance := []byte(ep.Verification.Secret), ep.Verification.Tolerance.Std()
		return VerifierFunc(func(_ context.Context, r *Request) error { return check(secret, r, tolerance) }), nil
	}
}

// Provider headers.
const (
	HeaderStripeSignature  = "Stripe-Signature"
	HeaderGitHubSignature  = "X-Hub-Signature-256"
	HeaderSlackSignature   = "X-Slack-Signature"
	HeaderSlackTimestamp   = "X-Slack-Request-Timestamp"
	HeaderShopifySignature = "X-Shopify-Hmac-Sha256"
	HeaderGitHubDelivery   = "X-GitHub-Delivery"
	HeaderGitHubEvent      = "X-GitHub-Event"
	HeaderShopifyWebhookID = "X-Shopify-Webhook-Id"
	HeaderShopifyTopic     = "X-Shopify-Topic"
)

// StripeHeader is a parsed Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...].
type StripeHeader struct {
	Timestamp  string
	Signatures [][]byte
}

// ParseStripeHeader parses Stripe-Signature; unknown schemes (v0, ...) are ignored.
func ParseStripeHeader(value string) (StripeHeader, error) {
	var h StripeHeader
	if value == "" {
		return h, fail(ReasonMissingHeader, "header Stripe-Signature is required")
	}
	if len(value) > MaxSignatureHeaderBytes {
		return h, fail(ReasonMalformedHeader, "header Stripe-Signature is too long")
	}
	for _, item := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			h.Timestamp = v
		case "v1":
			if mac, err := hex.DecodeString(v); err == nil && len(mac) == 32 {
				h.Signatures = append(h.Signatures, mac)
			}
		}
	}
	if h.Timestamp == "" || len(h.Signatures) == 0 {
		return h, fail(ReasonMalformedHeader, "header Stripe-Signature needs t=<timestamp> and at least one v1=<hex>")
	}
	return h, nil
}

// Stripe checks Stripe-Signature: HMAC-SHA256 over "t.body", hex, any v1 may match.
func Stripe(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	h, err := ParseStripeHeader(header)
	if err != nil {
		return err
	}
	if _, err := CheckTimestamp("Stripe-Signature t", h.Timestamp, now, tolerance); err != nil {
		return err
	}
	want := hmacSHA256(secret, []byte(h.Timestamp), []byte("."), body)
	for _, mac := range h.Signatures {
		if hmac.Equal(mac, want) {
			return nil
		}
	}
	return fail(ReasonInvalidSignature, "no v1 signature in Stripe-Signature matches")
}

// ParsePrefixedHex reads "<prefix><hex SHA-256 MAC>".
func ParsePrefixedHex(header, prefix, value string) ([]byte, error) {
	if value == "" {
		return nil, fail(ReasonMissingHeader, "header %s is required", header)
	}
	if len(value) > MaxSignatureHeaderBytes {
		return nil, fail(ReasonMalformedHeader, "header %s is too long", header)
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(value), prefix)
	if !ok {
		return nil, fail(ReasonMalformedHeader, "header %s must start with %s", header, prefix)
	}
	mac, err := hex.DecodeString(sig)
	if err != nil || len(mac) != 32 {
		return nil, fail(ReasonMalformedHeader, "header %s must be %s followed by 64 hex digits", header, prefix)
	}
	return mac, nil
}

// GitHub checks X-Hub-Signature-256: sha256=<hex HMAC of the body>.
func GitHub(secret []byte, header string, body []byte) error {
	mac, err := ParsePrefixedHex("X-Hub-Signature-256", "sha256=", header)
	if err != nil {
		return err
	}
	if !hmac.Equal(mac, hmacSHA256(secret, body)) {
		return fail(ReasonInvalidSignature, "X-Hub-Signature-256 does not match the body")
	}
	return nil
}

// Slack checks X-Slack-Signature: v0=<hex HMAC of "v0:ts:body">, with the timestamp header.
func Slack(secret []byte, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	if _, err := CheckTimestamp("X-Slack-Request-Timestamp", timestamp, now, tolerance); err != nil {
		return err
	}
	mac, err := ParsePrefixedHex("X-Slack-Signature", "v0=", signature)
	if err != nil {
		return err
	}
	if !hmac.Equal(mac, hmacSHA256(secret, []byte("v0:"), []byte(strings.TrimSpace(timestamp)), []byte(":"), body)) {
		return fail(ReasonInvalidSignature, "X-Slack-Signature does not match")
	}
	return nil
}

// Shopify checks X-Shopify-Hmac-Sha256: base64 HMAC of the body.
func Shopify(secret []byte, header string, body []byte) error {
	if header == "" {
		return fail(ReasonMissingHeader, "header X-Shopify-Hmac-Sha256 is required")
	}
	mac, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header))
	if err != nil || len(mac) != 32 {
		return fail(ReasonMalformedHeader, "header X-Shopify-Hmac-Sha256 must be a base64 HMAC-SHA256")
	}
	if !hmac.Equal(mac, hmacSHA256(secret, body)) {
		return fail(ReasonInvalidSignature, "X-Shopify-Hmac-Sha256 does not match the body")
	}
	return nil
}
