package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hookgate/hookgate/receiver/egress"
)

// TestJWKSClientPolicy: the key set is fetched through the egress guard, as a url
// destination, and a redirect is never followed, even to an allowed URL.
func TestJWKSClientPolicy(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var served atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer jwks.Close()
	var redirected atomic.Int32
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, jwks.URL, http.StatusFound)
	}))
	defer redirect.Close()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "iss", Audience: jwt.Audience{"aud"}, Expiry: jwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	loopbackAllowed := egress.New(egress.Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	cases := []struct {
		name        string
		guard       *egress.Guard
		url         string
		wantReason  string
		wantMessage string
		wantServed  int32 // fetches the key set server saw
	}{
		{"loopback JWKS URL, no allow list", egress.Default(), jwks.URL, ReasonKeyUnavailable, "refused by the receiver's egress policy", 0},
		{"loopback JWKS URL, loopback allowed", loopbackAllowed, jwks.URL, "", "", 1},
		{"302 to an allowed URL is not followed", loopbackAllowed, redirect.URL, ReasonKeyUnavailable, "answered with a redirect, which is not followed", 0},
		{"localhost JWKS URL, no allow list", egress.Default(), strings.Replace(jwks.URL, "127.0.0.1", "localhost", 1), ReasonKeyUnavailable, "refused by the receiver's egress policy", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			served.Store(0)
			cache := NewJWKSCache(NewJWKSClient(c.guard.DialContext(egress.URL)))
			err := JWT(context.Background(), cache, JWTConfig{JWKSURL: c.url, Issuer: "iss", Audience: "aud"}, "Bearer "+token, now, time.Minute)
			if reasonOf(err) != c.wantReason {
				t.Fatalf("reason %q (%v), want %q", reasonOf(err), err, c.wantReason)
			}
			var verr *Error
			if c.wantMessage != "" && (!errors.As(err, &verr) || !strings.Contains(verr.Message, c.wantMessage)) {
				t.Errorf("message %v, want it to say %q", err, c.wantMessage)
			}
			if err != nil && strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("the sender's message names the address: %v", err)
			}
			if served.Load() != c.wantServed {
				t.Errorf("the key set server saw %d fetches, want %d", served.Load(), c.wantServed)
			}
		})
	}
	if redirected.Load() != 1 {
		t.Errorf("the redirecting server saw %d fetches, want 1", redirected.Load())
	}
}
