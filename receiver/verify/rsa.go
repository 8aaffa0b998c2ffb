package verify

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

var _ = register(Scheme{
	Type:        hookgatev1alpha1.VerificationRSASignature,
	Signed:      true,
	Credentials: EndpointSecret,
	Timestamped: never,
	Prepare: func(ep *routing.Endpoint, _ Env) (Verifier, error) {
		key, err := ParseRSAPublicKey(string(ep.Verification.Secret))
		if err != nil {
			return nil, err
		}
		header := ep.Verification.Header
		return VerifierFunc(func(_ context.Context, r *Request) error {
			return RSASignature(key, header, r.Header.Get(header), r.Body)
		}), nil
	},
})

// ParseRSAPublicKey reads a PEM public key (PKIX or PKCS#1), or base64 DER as the
// outbound-webhooks-rsa page publishes it.
func ParseRSAPublicKey(text string) (*rsa.PublicKey, error) {
	text = strings.TrimSpace(text)
	var der []byte
	if block, _ := pem.Decode([]byte(text)); block != nil {
		der = block.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
		if err != nil {
			return nil, fail(ReasonKeyUnavailable, "the endpoint's RSA public key is neither PEM nor base64 DER")
		}
		der = b
	}
	if key, err := x509.ParsePKIXPublicKey(der); err == nil {
		if rsaKey, ok := key.(*rsa.PublicKey); ok {
			return rsaKey, nil
		}
		return nil, fail(ReasonKeyUnavailable, "the endpoint's public key is not an RSA key")
	}
	if key, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return key, nil
	}
	return nil, fail(ReasonKeyUnavailable, "the endpoint's RSA public key does not parse")
}

// RSASignature checks a base64 RSA-PKCS1v15 SHA-256 signature of the raw body.
func RSASignature(key *rsa.PublicKey, header, value string, body []byte) error {
	if value == "" {
		return fail(ReasonMissingHeader, "header %s is required", header)
	}
	if len(value) > MaxSignatureHeaderBytes {
		return fail(ReasonMalformedHeader, "header %s is too long", header)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return fail(ReasonMalformedHeader, "header %s must be base64", header)
	}
	digest := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return fail(ReasonInvalidSignature, "header %s does not verify with the endpoint's public key", header)
	}
	return nil
}
