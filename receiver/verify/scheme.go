package verify

import (
	"context"
	"fmt"
	"net/http"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// Scheme is everything the receiver knows about one verification type. Each type
// registers its Scheme from its own file; the receiver looks schemes up and never
// switches on type names, so a new type is one new file here plus its API constant.
type Scheme struct {
	Type hookgatev1alpha1.VerificationType
	// Credentials says whose secret authenticates a request.
	Credentials Credentials
	// Signed: the request carries a signature over its body (not just a key or a token).
	Signed bool
	// SignsID, when set, reports whether an endpoint's signature also covers the id
	// header it deduplicates on (a generic HMAC template with {id}).
	SignsID func(v routing.Verification) bool
	// Timestamped reports whether an endpoint's requests carry a signed timestamp checked
	// against its tolerance, which bounds how long a captured request can be replayed.
	Timestamped func(v routing.Verification) bool
	// EventID and EventType are where the event's id (for deduplication) and type are
	// found when the endpoint does not say: the first source that has a value wins.
	EventID   []Source
	EventType []Source
	// Prepare turns an endpoint's settings into its Verifier, once per routing table, so
	// that keys are parsed off the request path.
	Prepare func(ep *routing.Endpoint, env Env) (Verifier, error)
}

// Credentials is whose secret a scheme checks.
type Credentials int

const (
	// PartnerCredentials: the x-api-key header names the partner, whose own credentials
	// (API key, signing secret) authenticate the request.
	PartnerCredentials Credentials = iota + 1
	// EndpointSecret: the endpoint's spec.verification (secretRef or JWKS) authenticates
	// the request, which speaks for the one partner the endpoint lists.
	EndpointSecret
)

// Source is one place an event's id or type may be: a request header or a dotted path
// into the JSON body.
type Source struct {
	Header   string
	JSONPath string
}

// FromHeader and FromBody make Sources.
func FromHeader(name string) Source { return Source{Header: name} }
func FromBody(path string) Source   { return Source{JSONPath: path} }

// Where most schemes find an event's id and type: the body, then the headers the
// webhook-endpoint-jwt convention and Standard Webhooks use.
var (
	defaultEventID   = []Source{FromBody("id"), FromHeader(HeaderWebhookID), FromHeader(HeaderPpsWebhookID)}
	defaultEventType = []Source{FromBody("type"), FromHeader(HeaderPpsTopic)}
)

// Headers of the webhook-endpoint-jwt convention, read for ids and types.
const (
	HeaderPpsWebhookID = "X-Pps-Webhook-Id"
	HeaderPpsTopic     = "X-Pps-Topic"
)

// Request is what a Verifier sees of one request.
type Request struct {
	Header http.Header
	Body   []byte
	Now    time.Time
	// PartnerSecret is the signing secret of the credential the API key is, only for
	// PartnerCredentials. Only that one: during a rotation each key signs with its own
	// secret, so a leaked previous secret is no use with the new key, nor the reverse.
	PartnerSecret string
}

// Verifier authenticates requests to one endpoint. Its errors are *Error.
type Verifier interface {
	Verify(ctx context.Context, req *Request) error
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, req *Request) error

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, req *Request) error { return f(ctx, req) }

// Env is what Prepare may share across endpoints.
type Env struct {
	JWKS *JWKSCache
}

var schemes = map[hookgatev1alpha1.VerificationType]*Scheme{}

// register adds a scheme at package initialisation; it returns the scheme so that each
// file can declare its own with `var _ = register(...)`.
func register(s Scheme) *Scheme {
	if _, dup := schemes[s.Type]; dup {
		panic(fmt.Sprintf("verify: scheme %s registered twice", s.Type))
	}
	if s.EventID == nil {
		s.EventID = defaultEventID
	}
	if s.EventType == nil {
		s.EventType = defaultEventType
	}
	schemes[s.Type] = &s
	return &s
}

func always(routing.Verification) bool { return true }
func never(routing.Verification) bool  { return false }

// Lookup returns the scheme of a verification type; an empty type is the default.
func Lookup(t hookgatev1alpha1.VerificationType) (*Scheme, bool) {
	s, ok := schemes[t.Effective()]
	return s, ok
}

// Unavailable is the Verifier of an endpoint whose key could not be prepared: every
// request is refused, and the message points at the platform team (never at the key).
func Unavailable() Verifier {
	return VerifierFunc(func(context.Context, *Request) error {
		return fail(ReasonKeyUnavailable, "the endpoint's key is not usable; ask the platform team to fix its Secret")
	})
}
