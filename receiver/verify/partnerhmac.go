package verify

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"strings"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

var _ = register(Scheme{
	Type:        hookgatev1alpha1.VerificationPartnerHMAC,
	Signed:      true,
	Credentials: PartnerCredentials,
	Timestamped: always,
	Prepare: func(ep *routing.Endpoint, _ Env) (Verifier, error) {
		tolerance := ep.Verification.Tolerance.Std()
		return VerifierFunc(func(_ context.Context, r *Request) error {
			return PartnerHMAC(r.PartnerSecret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), r.Body, r.Now, tolerance)
		}), nil
	},
})

// Headers of the PartnerHMAC scheme (seed partner-events-api).
const (
	HeaderAPIKey    = "X-Api-Key"
	HeaderTimestamp = "X-Timestamp"
	HeaderSignature = "X-Webhook-Signature"
)

// ParsePartnerSignature reads "sha256=<hex>" (the prefix is required, the hex may be any
// case) and returns the 32-byte MAC.
func ParsePartnerSignature(value string) ([]byte, error) {
	if value == "" {
		return nil, fail(ReasonMissingHeader, "header x-webhook-signature is required: sha256=<hex HMAC-SHA256 of timestamp.body>")
	}
	if len(value) > MaxSignatureHeaderBytes {
		return nil, fail(ReasonMalformedHeader, "header x-webhook-signature is too long")
	}
	hexMAC, ok := strings.CutPrefix(strings.TrimSpace(value), "sha256=")
	if !ok {
		return nil, fail(ReasonMalformedHeader, "header x-webhook-signature must start with sha256=")
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil || len(mac) != 32 {
		return nil, fail(ReasonMalformedHeader, "header x-webhook-signature must be sha256= followed by 64 hex digits")
	}
	return mac, nil
}

// PartnerHMAC checks x-timestamp and x-webhook-signature: HMAC-SHA256 keyed with the
// signing secret string's bytes over timestamp + "." + body. secret is the one paired
// with the request's API key; an empty one matches nothing.
func PartnerHMAC(secret string, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if _, err := CheckTimestamp("x-timestamp", timestamp, now, tolerance); err != nil {
		return err
	}
	mac, err := ParsePartnerSignature(signature)
	if err != nil {
		return err
	}
	ts := []byte(strings.TrimSpace(timestamp))
	if secret != "" && hmac.Equal(mac, hmacSHA256([]byte(secret), ts, []byte("."), body)) {
		return nil
	}
	return fail(ReasonInvalidSignature, "x-webhook-signature does not match: sign timestamp + \".\" + the exact body with your signing secret")
}
