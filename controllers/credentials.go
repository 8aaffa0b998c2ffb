package controllers

import (
	"crypto/rand"
	"encoding/base64"
)

const (
	// APIKeyPrefix and SigningSecretPrefix mark hookgate credentials (DESIGN §3).
	APIKeyPrefix        = "hgk_"
	SigningSecretPrefix = "whsec_"

	// Keys of a credentials Secret.
	SecretKeyAPIKey                = "apiKey"
	SecretKeySigningSecret         = "signingSecret"
	SecretKeyPreviousAPIKey        = "previousApiKey"
	SecretKeyPreviousSigningSecret = "previousSigningSecret"
	// SecretKeyDestinationSigning is the key of an endpoint's <name>-signing Secret.
	SecretKeyDestinationSigning = "secret"

	// Annotations the operator keeps on the credentials Secrets it created.
	annotationPreviousNotAfter = "hookgate.io/previous-not-after"
	annotationRotationHandled  = "hookgate.io/rotation-handled"
)

// newAPIKey returns hgk_ + 32 random bytes, base64url.
func newAPIKey() (string, error) {
	b, err := randomBytes(32)
	if err != nil {
		return "", err
	}
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// newSigningSecret returns whsec_ + 32 random bytes, base64, as Standard Webhooks secrets are.
func newSigningSecret() (string, error) {
	b, err := randomBytes(32)
	if err != nil {
		return "", err
	}
	return SigningSecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}
