package delivery

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
	"github.com/hookgate/hookgate/receiver/verify"
)

func rsaKey(t *testing.T) (routing.SigningKey, *rsa.PrivateKey) {
	t.Helper()
	pemKey, err := signing.NewRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.ParseRSAKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := signing.KeyID(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return routing.SigningKey{Key: routing.SecretValue(pemKey), ID: kid}, key
}

func verifiesWith(pub *rsa.PublicKey, body []byte, sig string) bool {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	digest := sha256.Sum256(body)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], raw) == nil
}

// Rotation, for every signing type: during the grace period a delivery verifies with the
// old key as well as with the new (Standard Webhooks: both signatures; RSA: the old key
// signs while the new public key is published; JWT: the new kid, the JWKS serves both);
// after it, only the new key is used.
func TestSigningRotation(t *testing.T) {
	s := newSigner("https://hooks.example.com")
	body := []byte(`{"id":"evt_1","type":"orders/placed"}`)
	now := time.Now()
	grace, over := now.Add(time.Hour), now.Add(-time.Second)
	sign := func(t *testing.T, dest *routing.Destination) http.Header {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://destination.example/", nil)
		if err := s.sign(req, dest, "shop", "01-delivery", "acme", now, body); err != nil {
			t.Fatal(err)
		}
		return req.Header
	}

	t.Run("StandardWebhooks", func(t *testing.T) {
		const oldSecret, newSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_dGhpcyBpcyB0aGUgbmV3IHNlY3JldCBrZXkhIQ=="
		check := func(secret, header string) bool {
			key, _ := verify.DecodeStandardSecret(secret)
			want := verify.StandardWebhooksSign(key, "01-delivery", now.Unix(), body)
			return strings.Contains(" "+header+" ", " "+want+" ")
		}
		for _, c := range []struct {
			name     string
			notAfter time.Time
			old      bool
		}{{"in the grace period", grace, true}, {"after it", over, false}} {
			h := sign(t, &routing.Destination{Signing: &routing.Signing{Type: "StandardWebhooks", Keys: []routing.SigningKey{
				{Key: newSecret}, {Key: oldSecret, NotAfter: &c.notAfter}}}})
			sig := h.Get("webhook-signature")
			if !check(newSecret, sig) || check(oldSecret, sig) != c.old {
				t.Errorf("%s: webhook-signature %q: new key verifies %t, old %t (want %t)", c.name, sig, check(newSecret, sig), check(oldSecret, sig), c.old)
			}
		}
	})

	t.Run("RSA", func(t *testing.T) {
		newKey, newPriv := rsaKey(t)
		oldKey, oldPriv := rsaKey(t)
		for _, c := range []struct {
			name     string
			notAfter time.Time
			by       *rsa.PrivateKey
		}{{"in the grace period the old key signs", grace, oldPriv}, {"after it the new one", over, newPriv}} {
			old := oldKey
			old.NotAfter = &c.notAfter
			h := sign(t, &routing.Destination{Signing: &routing.Signing{Type: "RSA", Header: "X-Asteroid-Signature", Keys: []routing.SigningKey{newKey, old}}})
			sig := h.Get("X-Asteroid-Signature")
			other := newPriv
			if c.by == newPriv {
				other = oldPriv
			}
			if !verifiesWith(&c.by.PublicKey, body, sig) || verifiesWith(&other.PublicKey, body, sig) {
				t.Errorf("%s: signature does not verify with exactly that key", c.name)
			}
		}
	})

	t.Run("JWT", func(t *testing.T) {
		newKey, newPriv := rsaKey(t)
		oldKey, oldPriv := rsaKey(t)
		oldKey.NotAfter = &grace
		h := sign(t, &routing.Destination{Signing: &routing.Signing{Type: "JWT", Audience: "test-tenant", Keys: []routing.SigningKey{newKey, oldKey}}})
		raw, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
		if !ok {
			t.Fatalf("Authorization %q", h.Get("Authorization"))
		}
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		if kid := tok.Headers[0].KeyID; kid != newKey.ID {
			t.Fatalf("kid %q, want the current key's %q", kid, newKey.ID)
		}
		var claims jwt.Claims
		extra := map[string]any{}
		if err := tok.Claims(&newPriv.PublicKey, &claims, &extra); err != nil {
			t.Fatalf("the token does not verify with the current key: %v", err)
		}
		if err := tok.Claims(&oldPriv.PublicKey, &claims); err == nil {
			t.Fatal("the token verifies with the previous key")
		}
		if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: "https://hooks.example.com/issuers/shop", AnyAudience: jwt.Audience{"test-tenant"}, Subject: "acme", ID: "01-delivery", Time: now}, 0); err != nil {
			t.Fatal(err)
		}
		if life := claims.Expiry.Time().Sub(claims.IssuedAt.Time()); life <= 0 || life > 5*time.Minute {
			t.Fatalf("token lives %s, want at most 5m", life)
		}
		sum := sha256.Sum256(body)
		if extra[ClaimBodySHA256] != hex.EncodeToString(sum[:]) {
			t.Fatalf("body claim %v", extra[ClaimBodySHA256])
		}
	})

	t.Run("JWT without an issuer is refused", func(t *testing.T) {
		k, _ := rsaKey(t)
		req, _ := http.NewRequest(http.MethodPost, "http://destination.example/", nil)
		err := newSigner("").sign(req, &routing.Destination{Signing: &routing.Signing{Type: "JWT", Audience: "a", Keys: []routing.SigningKey{k}}}, "shop", "id", "acme", now, body)
		if !errors.Is(err, errNoIssuer) {
			t.Fatalf("err = %v, want errNoIssuer", err)
		}
	})
}

func TestMetadataHeaders(t *testing.T) {
	at := time.Date(2024, 1, 1, 10, 0, 0, 777774800, time.FixedZone("CET", 3600))
	for _, c := range []struct {
		prefix, tenant string
		want           map[string]string
	}{
		{"", "", map[string]string{"X-Hookgate-Topic": "orders/placed", "X-Hookgate-Webhook-Id": "279e4e55", "X-Hookgate-Triggered-At": "2024-01-01T09:00:00.7777748Z", "X-Hookgate-Tenant-Id": "", "X-Hookgate-Sub-Topic": ""}},
		{"X-Pps-", "OU1243", map[string]string{"X-Pps-Topic": "orders/placed", "X-Pps-Sub-Topic": "product:adv/adv-120", "X-Pps-Tenant-Id": "OU1243", "X-Pps-Webhook-Id": "279e4e55", "X-Pps-Triggered-At": "2024-01-01T09:00:00.7777748Z"}},
	} {
		h := http.Header{}
		subTopic := ""
		if c.tenant != "" {
			subTopic = "product:adv/adv-120"
		}
		metadataHeaders(h, c.prefix, "orders/placed", subTopic, c.tenant, "279e4e55", at)
		for k, v := range c.want {
			if got := h.Get(k); got != v {
				t.Errorf("prefix %q: %s = %q, want %q", c.prefix, k, got, v)
			}
		}
	}
}
