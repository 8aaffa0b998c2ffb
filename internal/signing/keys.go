// Package signing holds the destination signing keys' formats, shared by the operator
// (which makes and publishes them) and the receiver (which signs with them): Standard
// Webhooks secrets, and RSA key pairs for the RSA and JWT signing types.
package signing

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// RSABits is the size of the RSA keys the operator makes.
const RSABits = 3072

// NewRSAKey makes an RSA key pair and returns it as PKCS #8 PEM, the form it is kept in
// the endpoint's signing Secret.
func NewRSAKey() ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, RSABits)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseRSAKey reads a PKCS #8 (or PKCS #1) PEM RSA private key.
func ParseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block in the signing key")
	}
	if key, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the signing key is not an RSA private key: %w", err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the signing key is not an RSA private key")
	}
	return key, nil
}

// PublicKeyBase64 is the public key as outbound-webhooks-rsa publishes it: Base64 of the
// DER SubjectPublicKeyInfo.
func PublicKeyBase64(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// PublicKeyPEM is the public key as a PEM "PUBLIC KEY" block.
func PublicKeyPEM(pub *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// KeyID is the key's JWK thumbprint (RFC 7638, SHA-256, base64url): a kid that any
// party can compute from the public key alone.
func KeyID(pub *rsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// IssuersPath is where, under the receiver's public URL, each namespace's JWT issuer
// lives: <public-url>/issuers/<namespace>. One issuer per namespace, with a key set
// holding only that namespace's keys, so that a destination trusting one tenant's
// issuer never accepts a token another tenant's endpoint made, whatever its audience.
const IssuersPath = "/issuers/"

// IssuerURL is the iss of a namespace's JWT deliveries; its keys are served at
// IssuerURL + "/.well-known/jwks.json". Empty without a public URL.
func IssuerURL(publicURL, namespace string) string {
	if publicURL == "" {
		return ""
	}
	return strings.TrimSuffix(publicURL, "/") + IssuersPath + namespace
}
