package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestJWTWithJWKS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer srv.Close()
	cfg := JWTConfig{JWKSURL: srv.URL, Issuer: "iss", Audience: "aud"}
	sign := func(kid string, claims jwt.Claims, alg jose.SignatureAlgorithm, k any) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	good := jwt.Claims{Issuer: "iss", Audience: jwt.Audience{"aud"}, Expiry: jwt.NewNumericDate(now.Add(time.Minute))}
	cache := NewJWKSCache(nil)
	ctx := context.Background()
	cases := []struct {
		name, header, want string
	}{
		{"valid ES256", sign("k1", good, jose.ES256, key), ""},
		{"missing header", "", ReasonMissingHeader},
		{"not bearer", "Basic abc", ReasonMalformedHeader},
		{"not a JWT", "Bearer abc.def", ReasonInvalidToken},
		{"HS256 refused", sign("k1", good, jose.HS256, []byte("0123456789abcdef0123456789abcdef")), ReasonInvalidToken},
		{"wrong issuer", sign("k1", jwt.Claims{Issuer: "x", Audience: good.Audience, Expiry: good.Expiry}, jose.ES256, key), ReasonInvalidToken},
		{"no exp", sign("k1", jwt.Claims{Issuer: "iss", Audience: good.Audience}, jose.ES256, key), ReasonInvalidToken},
		{"expired beyond leeway", sign("k1", jwt.Claims{Issuer: "iss", Audience: good.Audience, Expiry: jwt.NewNumericDate(now.Add(-2 * time.Minute))}, jose.ES256, key), ReasonStaleTimestamp},
		{"expired within leeway", sign("k1", jwt.Claims{Issuer: "iss", Audience: good.Audience, Expiry: jwt.NewNumericDate(now.Add(-30 * time.Second))}, jose.ES256, key), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := reasonOf(JWT(ctx, cache, cfg, c.header, now, time.Minute)); got != c.want {
				t.Fatalf("reason %q, want %q", got, c.want)
			}
		})
	}
	if served.Load() != 1 {
		t.Errorf("JWKS fetched %d times for one known key, want 1", served.Load())
	}
	// Unknown key ids refetch at most once per 30 s: the fetch for k1 just happened.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := range 5 {
		err := JWT(ctx, cache, cfg, sign("forged", good, jose.ES256, other), now.Add(time.Duration(i)*time.Second), time.Minute)
		if reasonOf(err) != ReasonUnknownKey {
			t.Fatalf("forged kid: %v", err)
		}
	}
	if served.Load() != 1 {
		t.Errorf("JWKS fetched %d times after 5 unknown kids within 5 s of the last fetch, want 1", served.Load())
	}
	if err := JWT(ctx, cache, cfg, sign("forged", good, jose.ES256, other), now.Add(31*time.Second), time.Minute); reasonOf(err) != ReasonUnknownKey {
		t.Fatal(err)
	}
	if served.Load() != 2 {
		t.Errorf("no refetch after 30 s: %d fetches", served.Load())
	}
}
