package verify

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

var _ = register(Scheme{
	Type:        hookgatev1alpha1.VerificationHMAC,
	Signed:      true,
	Credentials: EndpointSecret,
	Timestamped: func(v routing.Verification) bool { return v.TimestampHeader != "" },
	SignsID:     func(v routing.Verification) bool { return strings.Contains(v.SignedContent, "{id}") },
	Prepare: func(ep *routing.Endpoint, _ Env) (Verifier, error) {
		v := ep.Verification
		g := GenericHMAC{Header: v.Header, Prefix: v.Prefix, Encoding: v.Encoding, SignedContent: v.SignedContent, TimestampHeader: v.TimestampHeader}
		secret := []byte(v.Secret)
		// {id} in the template is the id header the endpoint deduplicates on, else webhook-id.
		idHeader := HeaderWebhookID
		if ep.Idempotency.Header != "" {
			idHeader = ep.Idempotency.Header
		}
		return VerifierFunc(func(_ context.Context, r *Request) error {
			return g.Verify(secret, r.Header.Get, r.Header.Get(idHeader), r.Body, r.Now, v.Tolerance.Std())
		}), nil
	},
})

// GenericHMAC describes an HMAC-SHA256 scheme: where the signature is, how it is written,
// and what was signed.
type GenericHMAC struct {
	Header          string
	Prefix          string
	Encoding        string // hex or base64
	SignedContent   string // template over {timestamp}, {id}, {body}
	TimestampHeader string
}

// Signed expands the template. The body is inserted as bytes, never parsed.
func (g GenericHMAC) Signed(timestamp, id string, body []byte) []byte {
	tmpl := g.SignedContent
	if tmpl == "" {
		tmpl = "{body}"
	}
	var out []byte
	for tmpl != "" {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			out = append(out, tmpl...)
			break
		}
		out = append(out, tmpl[:i]...)
		rest := tmpl[i:]
		switch {
		case strings.HasPrefix(rest, "{body}"):
			out, tmpl = append(out, body...), rest[len("{body}"):]
		case strings.HasPrefix(rest, "{timestamp}"):
			out, tmpl = append(out, timestamp...), rest[len("{timestamp}"):]
		case strings.HasPrefix(rest, "{id}"):
			out, tmpl = append(out, id...), rest[len("{id}"):]
		default:
			out, tmpl = append(out, '{'), rest[1:]
		}
	}
	return out
}

// ParseSignature decodes the header value after the prefix.
func (g GenericHMAC) ParseSignature(value string) ([]byte, error) {
	if value == "" {
		return nil, fail(ReasonMissingHeader, "header %s is required", g.Header)
	}
	if len(value) > MaxSignatureHeaderBytes {
		return nil, fail(ReasonMalformedHeader, "header %s is too long", g.Header)
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(value), g.Prefix)
	if !ok {
		return nil, fail(ReasonMalformedHeader, "header %s must start with %q", g.Header, g.Prefix)
	}
	var mac []byte
	var err error
	if g.Encoding == "base64" {
		mac, err = base64.StdEncoding.DecodeString(sig)
	} else {
		mac, err = hex.DecodeString(sig)
	}
	if err != nil || len(mac) != 32 {
		return nil, fail(ReasonMalformedHeader, "header %s must hold a %s HMAC-SHA256", g.Header, g.Encoding)
	}
	return mac, nil
}

// Verify checks a request against the scheme.
func (g GenericHMAC) Verify(secret []byte, header func(string) string, id string, body []byte, now time.Time, tolerance time.Duration) error {
	timestamp := ""
	if g.TimestampHeader != "" {
		timestamp = strings.TrimSpace(header(g.TimestampHeader))
		if _, err := CheckTimestamp(g.TimestampHeader, timestamp, now, tolerance); err != nil {
			return err
		}
	}
	mac, err := g.ParseSignature(header(g.Header))
	if err != nil {
		return err
	}
	if !hmac.Equal(mac, hmacSHA256(secret, g.Signed(timestamp, id, body))) {
		return fail(ReasonInvalidSignature, "header %s does not match the signed content", g.Header)
	}
	return nil
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
