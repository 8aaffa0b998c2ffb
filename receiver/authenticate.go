package receiver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

// authenticate runs the endpoint's verification and returns the partner the request
// speaks for. Every failure is a 401.
func (s *Server) authenticate(ctx context.Context, rt *routes, ep *routing.Endpoint, h http.Header, body []byte, now time.Time) (*routing.Partner, *rejection) {
	v := ep.Verification
	tolerance := v.Tolerance.Std()
	switch v.Type {
	case "PartnerHMAC", "":
		partner, rej := partnerByAPIKey(rt, h.Get(verify.HeaderAPIKey), now)
		if rej != nil {
			return nil, rej
		}
		err := verify.PartnerHMAC(partner.SigningSecrets(now), h.Get(verify.HeaderTimestamp), h.Get(verify.HeaderSignature), body, now, tolerance)
		return partner, unauthorized(err)
	case "APIKey":
		return partnerByAPIKey(rt, h.Get(verify.HeaderAPIKey), now)
	}

	// Every other type authenticates with the endpoint's own secret and speaks for the
	// one partner the endpoint names.
	partner := endpointPartner(rt, ep)
	if partner == nil {
		return nil, reject(http.StatusServiceUnavailable, "partner_unavailable", "Service unavailable", "this endpoint's partner is not loaded yet; retry later")
	}
	secret := []byte(v.Secret)
	var err error
	switch v.Type {
	case "StandardWebhooks":
		err = verify.StandardWebhooks(v.Secret, h.Get(verify.HeaderWebhookID), h.Get(verify.HeaderWebhookTimestamp), h.Get(verify.HeaderWebhookSignature), body, now, tolerance)
	case "HMAC":
		g := verify.GenericHMAC{Header: v.Header, Prefix: v.Prefix, Encoding: v.Encoding, SignedContent: v.SignedContent, TimestampHeader: v.TimestampHeader}
		err = g.Verify(secret, h.Get, signedID(ep, h), body, now, tolerance)
	case "Stripe":
		err = verify.Stripe(secret, h.Get(verify.HeaderStripeSignature), body, now, tolerance)
	case "GitHub":
		err = verify.GitHub(secret, h.Get(verify.HeaderGitHubSignature), body)
	case "Slack":
		err = verify.Slack(secret, h.Get(verify.HeaderSlackSignature), h.Get(verify.HeaderSlackTimestamp), body, now, tolerance)
	case "Shopify":
		err = verify.Shopify(secret, h.Get(verify.HeaderShopifySignature), body)
	case "RSASignature":
		key := rt.rsaKeys[routing.Key(ep.Namespace, ep.Name)]
		if key == nil {
			return nil, reject(http.StatusUnauthorized, verify.ReasonKeyUnavailable, "Unauthorized", "the endpoint's public key is not usable; ask the platform team to fix its Secret")
		}
		err = verify.RSASignature(key, v.Header, h.Get(v.Header), body)
	case "JWT":
		err = verify.JWT(ctx, s.jwks, verify.JWTConfig{JWKSURL: v.JWKSURL, Issuer: v.Issuer, Audience: v.Audience}, h.Get(verify.HeaderAuthorization), now, tolerance)
	default:
		return nil, reject(http.StatusUnauthorized, "unsupported_verification", "Unauthorized", "this endpoint's verification type is not supported by this receiver")
	}
	return partner, unauthorized(err)
}

func partnerByAPIKey(rt *routes, key string, now time.Time) (*routing.Partner, *rejection) {
	if key == "" {
		return nil, reject(http.StatusUnauthorized, verify.ReasonMissingHeader, "Unauthorized", "header x-api-key is required")
	}
	partner, _, ok := rt.table.PartnerByAPIKey(key, now)
	if !ok {
		return nil, reject(http.StatusUnauthorized, verify.ReasonUnknownKey, "Unauthorized", "the API key is not valid")
	}
	return partner, nil
}

func endpointPartner(rt *routes, ep *routing.Endpoint) *routing.Partner {
	if len(ep.Partners) != 1 {
		return nil
	}
	p, _ := rt.table.Partner(ep.Namespace, ep.Partners[0])
	return p
}

// signedID is the {id} of a generic HMAC template: the idempotency header, else webhook-id.
func signedID(ep *routing.Endpoint, h http.Header) string {
	if ep.Idempotency.Header != "" {
		return h.Get(ep.Idempotency.Header)
	}
	return h.Get(verify.HeaderWebhookID)
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
