package receiver

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/util/validation"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
	"github.com/hookgate/hookgate/receiver/delivery"
)

// Paths, under each namespace's issuer (<public-url>/issuers/<namespace>), where
// destinations find the keys of JWT-signed deliveries, as an OpenID provider publishes
// them: a verifier given the issuer finds the rest.
const (
	pathJWKS      = "/.well-known/jwks.json"
	pathDiscovery = "/.well-known/openid-configuration"
)

// issuerRoute splits /issuers/<namespace>/.well-known/... into the namespace and the
// document; ok is false for any other path.
func issuerRoute(path string) (namespace, document string, ok bool) {
	rest, found := strings.CutPrefix(path, signing.IssuersPath)
	if !found {
		return "", "", false
	}
	namespace, document, found = strings.Cut(rest, "/")
	if !found || namespace == "" {
		return "", "", false
	}
	document = "/" + document
	if document != pathJWKS && document != pathDiscovery {
		return "", "", false
	}
	return namespace, document, true
}

// keySets are the public JWKS of one routing table, one per namespace: every live key of
// that namespace's JWT-signing destinations, so that tokens signed with the current key
// and those signed before a rotation both verify, and no other namespace's key does.
type keySets struct {
	table *routing.Table
	byNS  map[string]jose.JSONWebKeySet
}

// jwksCache computes a table's key sets once, on the first request after it is loaded.
type jwksCache struct {
	current atomic.Pointer[keySets]
}

func (c *jwksCache) get(t *routing.Table, namespace string) jose.JSONWebKeySet {
	ks := c.current.Load()
	if ks == nil || ks.table != t {
		ks = buildKeySets(t)
		c.current.Store(ks)
	}
	if set, ok := ks.byNS[namespace]; ok {
		return set
	}
	// A namespace without JWT destinations answers like one with no keys, so that the
	// key sets do not tell which namespaces exist.
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
}

func buildKeySets(t *routing.Table) *keySets {
	ks := &keySets{table: t, byNS: map[string]jose.JSONWebKeySet{}}
	if t == nil {
		return ks
	}
	seen := map[string]bool{} // namespace + kid
	for i := range t.Endpoints {
		ep := &t.Endpoints[i]
		for _, d := range ep.AllDestinations() {
			if d.Signing == nil || d.Signing.Type != hookgatev1alpha1.SigningJWT {
				continue
			}
			for _, k := range d.Signing.Keys {
				key, err := signing.ParseRSAKey([]byte(k.Key))
				if err != nil || seen[ep.Namespace+"/"+k.ID] {
					continue
				}
				seen[ep.Namespace+"/"+k.ID] = true
				set := ks.byNS[ep.Namespace]
				set.Keys = append(set.Keys, jose.JSONWebKey{Key: &key.PublicKey, KeyID: k.ID, Algorithm: string(jose.RS256), Use: "sig"})
				ks.byNS[ep.Namespace] = set
			}
		}
	}
	return ks
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

// handleRootWellKnown answers the receiver-wide key paths of earlier releases: there is
// no receiver-wide issuer any more (one would let a tenant's tokens verify at another
// tenant's destination), so the answer says where each namespace's issuer is.
func (s *Server) handleRootWellKnown(_ http.ResponseWriter, _ *http.Request, _ *auditRecord) *rejection {
	return reject(http.StatusNotFound, "issuer_per_namespace", "Not found",
		"JWT deliveries are signed by one issuer per namespace: <public-url>/issuers/<namespace> (in the destination's status.destinations[].issuer), with its keys at <issuer>/.well-known/jwks.json")
}

func (s *Server) handleWellKnown(w http.ResponseWriter, r *http.Request, rec *auditRecord, namespace, document string) *rejection {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rej := reject(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed", "use GET")
		rej.allow = http.MethodGet
		return rej
	}
	if s.publicURL == "" {
		return reject(http.StatusNotFound, "no_public_url", "Not found", "this receiver signs no JWT deliveries (it has no --public-url)")
	}
	if len(validation.IsDNS1123Label(namespace)) > 0 {
		return reject(http.StatusNotFound, "unknown_issuer", "Not found", "an issuer is <public-url>/issuers/<namespace>, with a Kubernetes namespace name")
	}
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	w.Header().Set("Cache-Control", "public, max-age=300")
	if document == pathDiscovery {
		issuer := signing.IssuerURL(s.publicURL, namespace)
		writeJSONCached(w, discoveryBody{
			Issuer: issuer, JWKSURI: issuer + pathJWKS, SigningAlgs: []string{string(jose.RS256)},
			ResponseTypes: []string{"id_token"}, SubjectTypes: []string{"public"},
			ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", delivery.ClaimBodySHA256},
		})
		return nil
	}
	writeJSONCached(w, s.jwks.get(s.routes.holder.Current(), namespace))
	return nil
}
