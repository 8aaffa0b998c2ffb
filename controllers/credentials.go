package controllers

import (
	"crypto/rand"
	"encoding/base64"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

const (
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
	return hookgatev1alpha1.APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// newSigningSecret returns whsec_ + 32 random bytes, base64, as Standard Webhooks secrets are.
func newSigningSecret() (string, error) {
	b, err := randomBytes(32)
	if err != nil {
		return "", err
	}
	return hookgatev1alpha1.SigningSecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}
