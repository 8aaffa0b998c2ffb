package receiver

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"crypto"
	"crypto/hmac"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// Credentials of the fixture partners.
const (
	acmeKey          = "hgk_acme-current-key"
	acmeSecret       = "whsec_acme-current-secret"
	acmeGraceKey     = "hgk_acme-previous-key"
	acmeGraceSecret  = "whsec_acme-previous-secret"
	acmeExpiredKey   = "hgk_acme-expired-key"
	acmeExpiredSec   = "whsec_acme-expired-secret"
	globexKey        = "hgk_globex-key"
	globexSecret     = "whsec_globex-secret"
	initechKey       = "hgk_initech-key"
	initechSecret    = "whsec_initech-secret"
	limitedKey       = "hgk_limited-key"
	limitedSecret    = "whsec_limited-secret"
	foreignKey       = "hgk_foreign-key"
	foreignSecret    = "whsec_foreign-secret"
	endpointSecret   = "provider-shared-secret"
	standardSecret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	jwtIssuer        = "https://auth.acme.example/"
	jwtAudience      = "hookgate"
	jwtKeyID         = "acme-2026"
	fixtureNamespace = "partners"
)

// fixture is a routing table with a partner or endpoint for every case of the HTTP contract (docs/reference.md),
// plus the keys to sign with.
type fixture struct {
	table      *routing.Table
	rsaKey     *rsa.PrivateKey
	jwtKey     *rsa.PrivateKey
	jwks       *httptest.Server
	jwksServed int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.jwtKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.jwtKey.PublicKey, KeyID: jwtKeyID, Algorithm: "RS256", Use: "sig"}}}
	f.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.jwksServed++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(f.jwks.Close)
	der, err := x509.MarshalPKIXPublicKey(&f.rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	grace, expired := now.Add(time.Hour), now.Add(-time.Minute)
	cred := func(key, secret string, notAfter *time.Time) routing.Credential {
		return routing.Credential{APIKeySHA256: routing.HashAPIKey(key), SigningSecret: routing.SecretValue(secret), NotAfter: notAfter}
	}
	ns := fixtureNamespace
	f.table = &routing.Table{
		Partners: []routing.Partner{
			{Namespace: ns, Name: "acme", UID: "uid-acme", Credentials: []routing.Credential{
				cred(acmeKey, acmeSecret, nil), cred(acmeGraceKey, acmeGraceSecret, &grace), cred(acmeExpiredKey, acmeExpiredSec, &expired)},
				RateLimit: &routing.RateLimit{RequestsPerSecond: 10000, Burst: 10000}},
			{Namespace: ns, Name: "globex", Suspended: true, Credentials: []routing.Credential{cred(globexKey, globexSecret, nil)}},
			{Namespace: ns, Name: "initech", IPAllowlist: []string{"203.0.113.0/24"}, Credentials: []routing.Credential{cred(initechKey, initechSecret, nil)}},
			{Namespace: ns, Name: "limited", RateLimit: &routing.RateLimit{RequestsPerSecond: 1, Burst: 2}, Credentials: []routing.Credential{cred(limitedKey, limitedSecret, nil)}},
			{Namespace: "elsewhere", Name: "foreign", Credentials: []routing.Credential{cred(foreignKey, foreignSecret, nil)}},
		},
	}
	endpoint := func(name string, typ hookgatev1alpha1.VerificationType, mutate func(*routing.Endpoint)) {
		e := routing.Endpoint{
			Namespace: ns, Name: name, Path: "/api/webhooks/" + name,
			Verification: routing.Verification{Type: typ, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(72 * time.Hour)},
			MaxBodyBytes: 1 << 20,
			Retry:        routing.Retry{MaxAttempts: 12, InitialBackoff: routing.Duration(5 * time.Second), MaxBackoff: routing.Duration(time.Hour)},
		}
		if !typ.UsesPartnerCredentials() {
			e.Partners = []string{"acme"}
			e.Verification.Secret = endpointSecret
		}
		if mutate != nil {
			mutate(&e)
		}
		f.table.Endpoints = append(f.table.Endpoints, e)
	}
	endpoint("events", hookgatev1alpha1.VerificationPartnerHMAC, func(e *routing.Endpoint) {
		e.EventTypes = []string{"order.*", "customer.created"}
		e.MaxBodyBytes = 4096
		e.Destination = &routing.Destination{URL: "http://127.0.0.1:9/never", Timeout: routing.Duration(time.Second)}
		// Paused: events stay Queued, so that the answers below are predictable.
		e.Paused = true
	})
	endpoint("stored", hookgatev1alpha1.VerificationPartnerHMAC, nil)
	endpoint("restricted", hookgatev1alpha1.VerificationPartnerHMAC, func(e *routing.Endpoint) { e.Partners = []string{"acme"} })
	endpoint("apikey", hookgatev1alpha1.VerificationAPIKey, nil)
	endpoint("standard", hookgatev1alpha1.VerificationStandardWebhooks, func(e *routing.Endpoint) { e.Verification.Secret = standardSecret })
	endpoint("hmac", hookgatev1alpha1.VerificationHMAC, func(e *routing.Endpoint) {
		e.Verification.Header, e.Verification.Prefix, e.Verification.Encoding = "X-Sig", "sha256=", "hex"
		e.Verification.SignedContent, e.Verification.TimestampHeader = "{timestamp}.{body}", "X-Ts"
	})
	endpoint("stripe", hookgatev1alpha1.VerificationStripe, nil)
	endpoint("github", hookgatev1alpha1.VerificationGitHub, nil)
	endpoint("slack", hookgatev1alpha1.VerificationSlack, nil)
	endpoint("shopify", hookgatev1alpha1.VerificationShopify, nil)
	endpoint("rsa", hookgatev1alpha1.VerificationRSASignature, func(e *routing.Endpoint) {
		e.Verification.Header = "X-Signature"
		e.Verification.Secret = routing.SecretValue(base64.StdEncoding.EncodeToString(der))
	})
	endpoint("jwt", hookgatev1alpha1.VerificationJWT, func(e *routing.Endpoint) {
		e.Verification.Secret = ""
		e.Verification.JWKSURL, e.Verification.Issuer, e.Verification.Audience = f.jwks.URL, jwtIssuer, jwtAudience
	})
	return f
}

func hexMAC(key string, parts ...string) string {
	m := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func standardHeaders(secret, id string, ts time.Time, body []byte) map[string]string {
	key, _ := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + unix(ts) + "."))
	m.Write(body)
	return map[string]string{
		"Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": unix(ts),
		"webhook-signature": "v2,ignored v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)),
	}
}

func (f *fixture) rsaHeaders(t testing.TB, key *rsa.PrivateKey, body []byte) map[string]string {
	digest := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Content-Type": "application/json", "X-Signature": base64.StdEncoding.EncodeToString(sig)}
}

func (f *fixture) jwtHeaders(t testing.TB, claims jwt.Claims) map[string]string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: f.jwtKey}, (&jose.SignerOptions{}).WithHeader("kid", jwtKeyID).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token}
}

func validClaims(now time.Time) jwt.Claims {
	return jwt.Claims{Issuer: jwtIssuer, Audience: jwt.Audience{jwtAudience}, Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now)}
}

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }
func b64(b []byte) string                { return base64.StdEncoding.EncodeToString(b) }
