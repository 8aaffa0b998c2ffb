package delivery

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
	"github.com/hookgate/hookgate/receiver/verify"
)

// JWTLifetime is how long a delivery's token is valid: long enough for a destination's
// clock skew, short enough that a captured token is soon worthless.
const JWTLifetime = 5 * time.Minute

// ClaimBodySHA256 binds a delivery's JWT to its body: the hex SHA-256 of the raw body, so
// that a token cannot be replayed with another payload.
const ClaimBodySHA256 = "body_sha256"

var errNoIssuer = &permanentError{class: classSigningKey, msg: "JWT signing needs the receiver's --public-url (under which each namespace's token issuer lives)"}

// signer signs deliveries with a destination's keys, parsing each RSA key once.
type signer struct {
	publicURL string
	mu        sync.Mutex
	keys      map[string]*rsa.PrivateKey // by the PEM's SHA-256
}

func newSigner(publicURL string) *signer {
	return &signer{publicURL: strings.TrimSuffix(publicURL, "/"), keys: map[string]*rsa.PrivateKey{}}
}

func (s *signer) rsaKey(pemKey routing.SecretValue) (*rsa.PrivateKey, error) {
	sum := sha256.Sum256([]byte(pemKey))
	id := string(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		return k, nil
	}
	k, err := signing.ParseRSAKey([]byte(pemKey))
	if err != nil {
		return nil, err
	}
	if len(s.keys) > 1024 { // keys of rotated or removed destinations: start again
		clear(s.keys)
	}
	s.keys[id] = k
	return k, nil
}

// live are the keys still in use at now: the current one and a previous one in its grace
// period.
func live(keys []routing.SigningKey, now time.Time) []routing.SigningKey {
	out := keys[:0:0]
	for _, k := range keys {
		if k.NotAfter == nil || now.Before(*k.NotAfter) {
			out = append(out, k)
		}
	}
	return out
}

// sign adds the destination's signature to req. Standard Webhooks signs with every live
// key (the destination accepts any one); RSA has room for one signature, so it keeps the
// previous key until its grace period ends while the new public key is already published;
// JWT signs with the current key, whose kid the JWKS serves next to the previous one,
// under the issuer of the endpoint's namespace.
func (s *signer) sign(req *http.Request, dest *routing.Destination, namespace, deliveryID, partner string, ts time.Time, payload []byte) error {
	sg := dest.Signing
	if sg == nil {
		if dest.SigningSecret == "" {
			return nil
		}
		sg = &routing.Signing{Type: hookgatev1alpha1.SigningStandardWebhooks, Keys: []routing.SigningKey{{Key: dest.SigningSecret}}}
	}
	keys := live(sg.Keys, ts)
	if len(keys) == 0 {
		return errSigningKeyUnusable
	}
	switch sg.Type {
	case hookgatev1alpha1.SigningStandardWebhooks:
		sigs := make([]string, 0, len(keys))
		for _, k := range keys {
			key, err := verify.DecodeStandardSecret(string(k.Key))
			if err != nil {
				return errSigningKeyUnusable
			}
			sigs = append(sigs, verify.StandardWebhooksSign(key, deliveryID, ts.Unix(), payload))
		}
		req.Header.Set("webhook-signature", strings.Join(sigs, " "))
	case hookgatev1alpha1.SigningRSA:
		k := keys[len(keys)-1]
		key, err := s.rsaKey(k.Key)
		if err != nil {
			return errSigningKeyUnusable
		}
		digest := sha256.Sum256(payload)
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
		if err != nil {
			return errSigningKeyUnusable
		}
		req.Header.Set(sg.Header, base64.StdEncoding.EncodeToString(sig))
	case hookgatev1alpha1.SigningJWT:
		if s.publicURL == "" {
			return errNoIssuer
		}
		issuer := signing.IssuerURL(s.publicURL, namespace)
		token, err := s.jwt(keys[0], issuer, sg.Audience, deliveryID, partner, ts, payload)
		if err != nil {
			return errSigningKeyUnusable
		}
		req.Header.Set("Authorization", "Bearer "+token)
	default:
		return errSigningKeyUnusable
	}
	return nil
}

func (s *signer) jwt(k routing.SigningKey, issuer, audience, deliveryID, partner string, now time.Time, payload []byte) (string, error) {
	key, err := s.rsaKey(k.Key)
	if err != nil {
		return "", err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.ID))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(payload)
	claims := jwt.Claims{
		Issuer: issuer, Audience: jwt.Audience{audience}, Subject: partner, ID: deliveryID,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-30 * time.Second)), Expiry: jwt.NewNumericDate(now.Add(JWTLifetime)),
	}
	return jwt.Signed(sig).Claims(claims).Claims(map[string]any{ClaimBodySHA256: hex.EncodeToString(sum[:])}).Serialize()
}

// metadataHeaders tells the destination what the delivery is about, under the
// destination's prefix: Topic, Sub-Topic and Tenant-Id (when the event has them),
// Webhook-Id (the same on every retry: the destination's dedup key) and Triggered-At.
func metadataHeaders(h http.Header, prefix, topic, subTopic, tenant, webhookID string, triggeredAt time.Time) {
	if prefix == "" {
		prefix = "X-Hookgate-"
	}
	if topic != "" {
		h.Set(prefix+"Topic", topic)
	}
	if subTopic != "" {
		h.Set(prefix+"Sub-Topic", subTopic)
	}
	if tenant != "" {
		h.Set(prefix+"Tenant-Id", tenant)
	}
	h.Set(prefix+"Webhook-Id", webhookID)
	h.Set(prefix+"Triggered-At", triggeredAt.UTC().Format(time.RFC3339Nano))
}
