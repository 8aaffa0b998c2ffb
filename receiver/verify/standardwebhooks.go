package verify

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"strings"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

var _ = register(Scheme{
	Type:        hookgatev1alpha1.VerificationStandardWebhooks,
	Signed:      true,
	Credentials: EndpointSecret,
	Timestamped: always,
	EventID:     []Source{FromHeader(HeaderWebhookID)},
	Prepare: func(ep *routing.Endpoint, _ Env) (Verifier, error) {
		v := ep.Verification
		return VerifierFunc(func(_ context.Context, r *Request) error {
			h := r.Header
			return StandardWebhooks(string(v.Secret), h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature), r.Body, r.Now, v.Tolerance.Std())
		}), nil
	},
})

// Headers of the Standard Webhooks specification.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// DecodeStandardSecret returns the key bytes of a "whsec_<base64>" secret (the prefix is
// optional, as in the reference libraries).
func DecodeStandardSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, fail(ReasonKeyUnavailable, "the endpoint's Standard Webhooks secret is not whsec_<base64>")
	}
	return key, nil
}

// ParseStandardSignatures reads a space-separated list of "v1,<base64>" entries; entries
// of other versions are skipped, as the specification asks.
func ParseStandardSignatures(value string) ([][]byte, error) {
	if value == "" {
		return nil, fail(ReasonMissingHeader, "header webhook-signature is required")
	}
	if len(value) > MaxSignatureHeaderBytes {
		return nil, fail(ReasonMalformedHeader, "header webhook-signature is too long")
	}
	var out [][]byte
	for _, entry := range strings.Fields(value) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		mac, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		out = append(out, mac)
	}
	if len(out) == 0 {
		return nil, fail(ReasonMalformedHeader, "header webhook-signature has no v1,<base64> entry")
	}
	return out, nil
}

// StandardWebhooksSign returns the "v1,<base64>" signature of a message, for senders and
// for forwarding deliveries.
func StandardWebhooksSign(key []byte, id string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(hmacSHA256(key, []byte(id), []byte("."), []byte(itoa(timestamp)), []byte("."), body))
}

// StandardWebhooks checks webhook-id, webhook-timestamp and webhook-signature.
func StandardWebhooks(secret string, id, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if id == "" {
		return fail(ReasonMissingHeader, "header webhook-id is required")
	}
	ts, err := CheckTimestamp("webhook-timestamp", timestamp, now, tolerance)
	if err != nil {
		return err
	}
	macs, err := ParseStandardSignatures(signature)
	if err != nil {
		return err
	}
	key, err := DecodeStandardSecret(secret)
	if err != nil {
		return err
	}
	want := hmacSHA256(key, []byte(id), []byte("."), []byte(itoa(ts)), []byte("."), body)
	for _, mac := range macs {
		if hmac.Equal(mac, want) {
			return nil
		}
	}
	return fail(ReasonInvalidSignature, "no webhook-signature entry matches id.timestamp.body")
}
