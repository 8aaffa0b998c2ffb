// Package verify checks webhook authentication schemes: hookgate's partner HMAC, Standard
// Webhooks, generic HMAC, the Stripe, GitHub, Slack and Shopify schemes, RSA signatures
// and JWTs. Every comparison of a secret-derived value is constant-time, and no error
// message contains a secret, a signature or a payload.
package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reasons, as the audit log and metrics name them.
const (
	ReasonMissingHeader    = "missing_header"
	ReasonMalformedHeader  = "malformed_header"
	ReasonInvalidSignature = "invalid_signature"
	ReasonStaleTimestamp   = "stale_timestamp"
	ReasonUnknownKey       = "unknown_key"
	ReasonInvalidToken     = "invalid_token"
	ReasonKeyUnavailable   = "key_unavailable"
)

// Error is an authentication failure: always 401, with a reason for the audit log and a
// message that tells the sender what to fix.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

func fail(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// MaxSignatureHeaderBytes bounds the signature headers we parse.
const MaxSignatureHeaderBytes = 4096

// hmacSHA256 computes HMAC-SHA256 over the concatenation of parts.
func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// CheckTimestamp parses unix seconds and checks them against now ± tolerance.
func CheckTimestamp(header, value string, now time.Time, tolerance time.Duration) (int64, error) {
	if value == "" {
		return 0, fail(ReasonMissingHeader, "header %s is required (unix seconds)", header)
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil || ts <= 0 {
		return 0, fail(ReasonMalformedHeader, "header %s must be unix seconds", header)
	}
	sent := time.Unix(ts, 0)
	if d := now.Sub(sent); d > tolerance || d < -tolerance {
		return 0, fail(ReasonStaleTimestamp, "header %s is more than %s from the server's time; sign with the current time", header, tolerance)
	}
	return ts, nil
}
