package verify

import (
	"context"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// APIKey (seed api-key-auth): the X-API-Key header alone. Finding the partner by its key
// is the authentication, so there is nothing more to check.
var _ = register(Scheme{
	Type:        hookgatev1alpha1.VerificationAPIKey,
	Signed:      false,
	Credentials: PartnerCredentials,
	Timestamped: never,
	Prepare: func(*routing.Endpoint, Env) (Verifier, error) {
		return VerifierFunc(func(context.Context, *Request) error { return nil }), nil
	},
})
