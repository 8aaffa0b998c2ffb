package receiver

import (
	"net/http"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
	"github.com/hookgate/hookgate/receiver/delivery"
)

// Paths where destinations find the keys of JWT-signed deliveries, as an OpenID provider
// publishes them: a verifier given the issuer (the receiver's --public-url) finds the rest.
const (
	pathJWKS      = "/.well-known/jwks.json"
	pathDiscovery = "/.well-known/openid-configuration"
)

// keySet is the public JWKS of one routing table: every live key of every JWT-signing
// destination, so that tokens signed with the current key and those signed before a
// rotation both verify.
type keySet struct {
	table *routing.Table
	jwks  jose.JSONWebKeySet
}

// jwksCache computes a table's key set once, on the first request after it is loaded.
type jwksCache struct {
	current atomic.Pointer[keySet]
}

func (c *jwksCache) get(t *routing.Table) jose.JSONWebKeySet {
	if ks := c.current.Load(); ks != nil && ks.table == t {
		return ks.jwks
	}
	ks := &keySet{table: t, jwks: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}}
	seen := map[string]bool{}
	if t != nil {
		for i := range t.Endpoints {
			for _, d := range t.Endpoints[i].AllDestinations() {
				if d.Signing == nil || d.Signing.Type != "JWT" {
					continue
				}
				for _, k := range d.Signing.Keys {
					key, err := signing.ParseRSAKey([]byte(k.Key))
					if err != nil || seen[k.ID] {
						continue
					}
					seen[k.ID] = true
					ks.jwks.Keys = append(ks.jwks.Keys, jose.JSONWebKey{Key: &key.PublicKey, KeyID: k.ID, Algorithm: string(jose.RS256), Use: "sig"})
				}
			}
		}
	}
	c.current.Store(ks)
	return ks.jwks
}

// discoveryBody is the part of OpenID Provider Metadata a JWT verifier reads.
type discoveryBody struct {
	Issuer          string   `json:"issuer"`
	JWKSURI         string   `json:"jwks_uri"`
	SigningAlgs     []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypes   []string `json:"response_types_supported"`
	SubjectTypes    []string `json:"subject_types_supported"`
	ClaimsSupported []string `json:"claims_supported"`
}

func (s *Server) handleWellKnown(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rej := reject(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed", "use GET")
		rej.allow = http.MethodGet
		return rej
	}
	if s.publicURL == "" {
		return reject(http.StatusNotFound, "no_public_url", "Not found", "this receiver signs no JWT deliveries (it has no --public-url)")
	}
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	w.Header().Set("Cache-Control", "public, max-age=300")
	if r.URL.Path == pathDiscovery {
		writeJSONCached(w, discoveryBody{
			Issuer: s.publicURL, JWKSURI: s.publicURL + pathJWKS, SigningAlgs: []string{string(jose.RS256)},
			ResponseTypes: []string{"id_token"}, SubjectTypes: []string{"public"},
			ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", delivery.ClaimBodySHA256},
		})
		return nil
	}
	writeJSONCached(w, s.jwks.get(s.routes.holder.Current()))
	return nil
}
