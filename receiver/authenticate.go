package receiver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

// identify finds, from the headers alone, the partner a request names by its API key and
// which of its credentials the key is, for the schemes that authenticate with partner
// credentials; both are nil for the others. An unknown or missing key is a 401 before
// the body is read.
func identify(rt *routes, auth *endpointAuth, h http.Header, now time.Time) (*routing.Partner, *routing.Credential, *rejection) {
	if auth == nil || auth.scheme.Credentials != verify.PartnerCredentials {
		return nil, nil, nil
	}
	return partnerByAPIKey(rt, h.Get(verify.HeaderAPIKey), now)
}

// authenticate runs the endpoint's verification scheme and returns the partner the
// request speaks for: the one identify found, or the endpoint's own. A signature is
// checked only against the secret of the credential identify found: a key and a secret
// of two different credentials of one partner do not make a pair. Every failure is a
// 401.
func (s *Server) authenticate(ctx context.Context, rt *routes, ep *routing.Endpoint, auth *endpointAuth, identified *routing.Partner, cred *routing.Credential, h http.Header, body []byte, now time.Time) (*routing.Partner, *rejection) {
	if auth == nil {
		return nil, reject(http.StatusUnauthorized, "unsupported_verification", "Unauthorized", "this endpoint's verification type is not supported by this receiver")
	}
	req := verify.Request{Header: h, Body: body, Now: now}
	partner := identified
	switch auth.scheme.Credentials {
	case verify.PartnerCredentials:
		if partner == nil || cred == nil {
			return nil, reject(http.StatusUnauthorized, verify.ReasonUnknownKey, "Unauthorized", "the API key is not valid")
		}
		req.PartnerSecret = string(cred.SigningSecret)
	case verify.EndpointSecret:
		if partner = endpointPartner(rt, ep); partner == nil {
			return nil, reject(http.StatusServiceUnavailable, "partner_unavailable", "Service unavailable", "this endpoint's partner is not loaded yet; retry later")
		}
	}
	return partner, unauthorized(auth.verifier.Verify(ctx, &req))
}

// partnerByAPIKey is the partner a key names, and which of its credentials the key is.
func partnerByAPIKey(rt *routes, key string, now time.Time) (*routing.Partner, *routing.Credential, *rejection) {
	if key == "" {
		return nil, nil, reject(http.StatusUnauthorized, verify.ReasonMissingHeader, "Unauthorized", "header x-api-key is required")
	}
	partner, cred, ok := rt.table.PartnerByAPIKey(key, now)
	if !ok {
		return nil, nil, reject(http.StatusUnauthorized, verify.ReasonUnknownKey, "Unauthorized", "the API key is not valid")
	}
	return partner, cred, nil
}

func endpointPartner(rt *routes, ep *routing.Endpoint) *routing.Partner {
	if len(ep.Partners) != 1 {
		return nil
	}
	p, _ := rt.table.Partner(ep.Namespace, ep.Partners[0])
	return p
}

func unauthorized(err error) *rejection {
	if err == nil {
		return nil
	}
	var verr *verify.Error
	if errors.As(err, &verr) {
		return reject(http.StatusUnauthorized, verr.Reason, "Unauthorized", verr.Message)
	}
	return reject(http.StatusUnauthorized, verify.ReasonInvalidSignature, "Unauthorized", "the request could not be authenticated")
}
