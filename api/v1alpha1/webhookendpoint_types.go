package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VerificationType says how the receiver authenticates requests to an endpoint.
// +kubebuilder:validation:Enum=PartnerHMAC;APIKey;JWT;RSASignature;StandardWebhooks;HMAC;Stripe;GitHub;Slack;Shopify
type VerificationType string

const (
	// VerificationPartnerHMAC: x-api-key plus x-webhook-signature over "timestamp.body".
	VerificationPartnerHMAC VerificationType = "PartnerHMAC"
	// VerificationAPIKey: the X-API-Key header alone.
	VerificationAPIKey VerificationType = "APIKey"
	// VerificationJWT: a bearer JWT checked against a JWKS.
	VerificationJWT VerificationType = "JWT"
	// VerificationRSASignature: an RSA-PKCS1v15 SHA-256 signature of the body in a header.
	VerificationRSASignature VerificationType = "RSASignature"
	// VerificationStandardWebhooks: the Standard Webhooks specification.
	VerificationStandardWebhooks VerificationType = "StandardWebhooks"
	// VerificationHMAC: a generic HMAC-SHA256 scheme described by spec.verification.hmac.
	VerificationHMAC VerificationType = "HMAC"
	// VerificationStripe, GitHub, Slack, Shopify: the providers' published schemes.
	VerificationStripe  VerificationType = "Stripe"
	VerificationGitHub  VerificationType = "GitHub"
	VerificationSlack   VerificationType = "Slack"
	VerificationShopify VerificationType = "Shopify"
)

// VerificationTypes lists every verification type, in the order of the enum above. A
// test checks that the enum marker, the CEL rules below and the receiver's schemes agree
// with it.
var VerificationTypes = []VerificationType{
	VerificationPartnerHMAC, VerificationAPIKey, VerificationJWT, VerificationRSASignature,
	VerificationStandardWebhooks, VerificationHMAC, VerificationStripe, VerificationGitHub,
	VerificationSlack, VerificationShopify,
}

// DefaultVerificationType is the type of an endpoint that names none.
const DefaultVerificationType = VerificationPartnerHMAC

// UsesPartnerCredentials reports whether the type authenticates with the Partner's own
// API key (and signing secret); every other type uses spec.verification.secretRef and a
// single named partner.
func (t VerificationType) UsesPartnerCredentials() bool {
	return t == "" || t == VerificationPartnerHMAC || t == VerificationAPIKey
}

// NeedsSecretRef reports whether the type takes its key from spec.verification.secretRef
// (JWT fetches its keys from jwt.jwksURL instead).
func (t VerificationType) NeedsSecretRef() bool {
	return !t.UsesPartnerCredentials() && t != VerificationJWT
}

// Effective is the type, or the default for an unset one.
func (t VerificationType) Effective() VerificationType {
	if t == "" {
		return DefaultVerificationType
	}
	return t
}

// WebhookEndpointSpec describes one URL partners post events to, and where events go.
// +kubebuilder:validation:XValidation:rule="!(has(self.destination) && has(self.destinations))",message="set destination (one destination, named default) or destinations (a list), not both"
// +kubebuilder:validation:XValidation:rule="!has(self.destination) || self.destination.name == 'default'",message="destination is the destination named default; give other names in destinations",fieldPath=".destination.name"
// +kubebuilder:validation:XValidation:rule="!has(self.verification) || self.verification.type in ['PartnerHMAC', 'APIKey'] || (has(self.partners) && size(self.partners) == 1)",message="verification types other than PartnerHMAC and APIKey attribute events to exactly one partner: list exactly one",fieldPath=".partners"
type WebhookEndpointSpec struct {
	// path partners POST to, under /api/webhooks/. Defaults to
	// /api/webhooks/<namespace>/<name>. /api/webhooks/status, /api/webhooks/me, /api/webhooks/usage,
	// /api/webhooks/openapi.json and paths under /api/webhooks/events/ are reserved.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^/api/webhooks/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$`
	// +kubebuilder:validation:XValidation:rule="self != '/api/webhooks/status'",message="/api/webhooks/status is reserved for the status API"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/api/webhooks/events/') && !(self in ['/api/webhooks/me', '/api/webhooks/usage', '/api/webhooks/openapi.json'])",message="/api/webhooks/events/..., /api/webhooks/me, /api/webhooks/usage and /api/webhooks/openapi.json are reserved for the partner API"
	// +optional
	Path string `json:"path,omitempty"`

	// partners names the Partners (same namespace) allowed to post here. Empty: all of the
	// namespace. A valid key of a partner not listed gets 403.
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Partners []string `json:"partners,omitempty"`

	// verification says how requests are authenticated.
	// +kubebuilder:default={type: PartnerHMAC}
	// +optional
	Verification Verification `json:"verification,omitempty"`

	// idempotency says where the partner's event id is found, for deduplication.
	// +optional
	Idempotency *Idempotency `json:"idempotency,omitempty"`

	// subType says where an event's sub-topic is found (a header or a JSON path), for
	// destination filters and the <prefix>Sub-Topic header. Default: header X-Pps-Sub-Topic.
	// +optional
	SubType *ValueSource `json:"subType,omitempty"`

	// tenant says where an event's tenant is found; default: the partner's tenantID.
	// +optional
	Tenant *ValueSource `json:"tenant,omitempty"`

	// eventTypes lists the allowed event types; a trailing * matches any suffix
	// ("order.*"). Empty: any type, and events without a type.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	// +optional
	EventTypes []string `json:"eventTypes,omitempty"`

	// maxBodyBytes is the largest request body accepted (413 above it).
	// +kubebuilder:default=1048576
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=33554432
	// +optional
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`

	// destination is where accepted events are forwarded: shorthand for destinations
	// with one destination named "default". Without any, events are stored with phase
	// Stored.
	// +optional
	Destination *Destination `json:"destination,omitempty"`

	// destinations are where accepted events are forwarded: an event goes to every
	// destination whose filter takes it, each with its own queue, attempts and retries.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Destinations []Destination `json:"destinations,omitempty"`

	// retry is the delivery retry policy.
	// +kubebuilder:default={}
	// +optional
	Retry RetryPolicy `json:"retry,omitempty"`

	// paused holds deliveries; events are still accepted and stored.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// Verification configures request authentication.
// +kubebuilder:validation:XValidation:rule="self.type != 'JWT' || has(self.jwt)",message="type JWT needs jwt.jwksURL, jwt.issuer and jwt.audience",fieldPath=".jwt"
// +kubebuilder:validation:XValidation:rule="self.type != 'RSASignature' || has(self.rsa)",message="type RSASignature needs rsa.header",fieldPath=".rsa"
// +kubebuilder:validation:XValidation:rule="self.type != 'HMAC' || has(self.hmac)",message="type HMAC needs hmac.header and hmac.encoding",fieldPath=".hmac"
// +kubebuilder:validation:XValidation:rule="self.type in ['PartnerHMAC', 'APIKey', 'JWT'] || has(self.secretRef)",message="this verification type needs secretRef naming the Secret that holds its key",fieldPath=".secretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.jwt) || self.type == 'JWT'",message="jwt settings are only for type JWT",fieldPath=".jwt"
// +kubebuilder:validation:XValidation:rule="!has(self.rsa) || self.type == 'RSASignature'",message="rsa settings are only for type RSASignature",fieldPath=".rsa"
// +kubebuilder:validation:XValidation:rule="!has(self.hmac) || self.type == 'HMAC'",message="hmac settings are only for type HMAC",fieldPath=".hmac"
type Verification struct {
	// type of verification.
	// +kubebuilder:default=PartnerHMAC
	// +optional
	Type VerificationType `json:"type,omitempty"`

	// tolerance is how far a signed timestamp may be from now, past or future.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	Tolerance *metav1.Duration `json:"tolerance,omitempty"`

	// secretRef holds the signing secret or public key for types other than PartnerHMAC,
	// APIKey and JWT.
	// +optional
	SecretRef *SecretKeySelector `json:"secretRef,omitempty"`

	// jwt settings, for type JWT.
	// +optional
	JWT *JWTVerification `json:"jwt,omitempty"`

	// rsa settings, for type RSASignature.
	// +optional
	RSA *RSAVerification `json:"rsa,omitempty"`

	// hmac settings, for type HMAC.
	// +optional
	HMAC *HMACVerification `json:"hmac,omitempty"`
}

// JWTVerification checks a bearer JWT signed with RS256 or ES256.
type JWTVerification struct {
	// jwksURL serves the signing keys (http or https).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="jwksURL must be an http or https URL"
	JWKSURL string `json:"jwksURL"`

	// issuer the token's iss claim must equal.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Issuer string `json:"issuer"`

	// audience the token's aud claim must contain.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Audience string `json:"audience"`
}

// RSAVerification checks a base64 RSA-PKCS1v15 SHA-256 signature of the raw body.
type RSAVerification struct {
	// header carrying the signature.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Header string `json:"header"`
}

// HMACEncoding is how a generic HMAC signature is written in its header.
// +kubebuilder:validation:Enum=hex;base64
type HMACEncoding string

const (
	HMACEncodingHex    HMACEncoding = "hex"
	HMACEncodingBase64 HMACEncoding = "base64"
)

// HMACVerification describes a generic HMAC-SHA256 scheme.
// +kubebuilder:validation:XValidation:rule="(has(self.signedContent) && self.signedContent.contains('{timestamp}')) == (has(self.timestampHeader) && size(self.timestampHeader) > 0)",message="timestampHeader is required exactly when signedContent uses {timestamp}: an unsigned or unchecked timestamp would let captured requests be replayed",fieldPath=".timestampHeader"
type HMACVerification struct {
	// header carrying the signature.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Header string `json:"header"`

	// prefix before the signature in the header, such as "sha256=".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// encoding of the signature.
	Encoding HMACEncoding `json:"encoding"`

	// signedContent is the template of the signed bytes over {timestamp}, {id} and {body}.
	// +kubebuilder:default="{body}"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.contains('{body}')",message="signedContent must include {body}"
	// +optional
	SignedContent string `json:"signedContent,omitempty"`

	// timestampHeader carries the timestamp used in {timestamp} and checked against tolerance.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	TimestampHeader string `json:"timestampHeader,omitempty"`
}

// ValueSource is a request header or a JSON path of the body.
// +kubebuilder:validation:XValidation:rule="has(self.header) != has(self.jsonPath)",message="set exactly one of header or jsonPath"
type ValueSource struct {
	// header holding the value.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&*+.^_|~-]+$`
	// +optional
	Header string `json:"header,omitempty"`

	// jsonPath of the value in the body, such as "subTopic" or "meta.tenant".
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^\$?\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	// +optional
	JSONPath string `json:"jsonPath,omitempty"`
}

// DestinationFilter says which events a destination takes: all of its parts must match.
type DestinationFilter struct {
	// types (topics); a trailing * matches any suffix ("orders/*").
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	// +optional
	Types []string `json:"types,omitempty"`

	// subTypes; a trailing * matches any suffix ("product:adv/*").
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	// +optional
	SubTypes []string `json:"subTypes,omitempty"`

	// tenants: exact tenant ids.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	// +optional
	Tenants []string `json:"tenants,omitempty"`

	// expression is a CEL expression over event.type, event.subType, event.tenant,
	// event.partner, event.id, event.headers (lower-case names), event.body (the parsed
	// body) and event.data (the body's "data" member, as in {"id","type","data":{...}}
	// envelopes, or the whole body when it has none), such as "event.data.amount > 100".
	// The operator compiles it; a bad one makes the endpoint Ready=False, reason
	// InvalidFilter, with the compiler's message.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Expression string `json:"expression,omitempty"`
}

// Idempotency says where the event id used for deduplication is found.
// +kubebuilder:validation:XValidation:rule="!(has(self.header) && has(self.jsonPath))",message="set header or jsonPath, not both"
type Idempotency struct {
	// header carrying the event id.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Header string `json:"header,omitempty"`

	// jsonPath of the event id in the body, such as "id" or "data.eventId".
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^\$?\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	// +optional
	JSONPath string `json:"jsonPath,omitempty"`

	// window during which a repeated event id is answered as a duplicate, at most 720h
	// (30 days): the store keeps every id for its window.
	// +kubebuilder:default="72h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('720h')",message="window must be at most 720h (30 days)"
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`
}

// SigningType says how forwarded requests are signed.
// +kubebuilder:validation:Enum=StandardWebhooks;RSA;JWT;None
type SigningType string

const (
	// SigningStandardWebhooks: webhook-signature, HMAC-SHA256 with a whsec_ secret.
	SigningStandardWebhooks SigningType = "StandardWebhooks"
	// SigningRSA: RSA-PKCS1v15 over SHA-256 of the raw body, Base64, in one header.
	SigningRSA SigningType = "RSA"
	// SigningJWT: a short-lived RS256 token in Authorization: Bearer, issued by the
	// endpoint's namespace issuer <public-url>/issuers/<namespace>, whose keys are served
	// at <issuer>/.well-known/jwks.json.
	SigningJWT SigningType = "JWT"
	// SigningNone: unsigned.
	SigningNone SigningType = "None"
)

// DestinationSigning says how forwarded requests are signed, and with which key. The
// operator makes the key in the Secret <endpoint name>-signing and rotates it when the
// annotation hookgate.io/rotate-signing takes a new value.
// +kubebuilder:validation:XValidation:rule="self.type != 'JWT' || has(self.jwt)",message="signing.jwt (its audience) is required with type JWT",fieldPath=".jwt"
type DestinationSigning struct {
	// type of signature.
	// +kubebuilder:default=StandardWebhooks
	// +optional
	Type SigningType `json:"type,omitempty"`

	// rsa settings, for type RSA.
	// +optional
	RSA *RSASigning `json:"rsa,omitempty"`

	// jwt settings, for type JWT.
	// +optional
	JWT *JWTSigning `json:"jwt,omitempty"`

	// rotationGracePeriod is how long the previous key stays in use after a rotation:
	// Standard Webhooks deliveries carry both signatures, the JWKS serves both keys, RSA
	// publishes both public keys and keeps signing with the previous one until it ends.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	RotationGracePeriod *metav1.Duration `json:"rotationGracePeriod,omitempty"`
}

// RSASigning is where the RSA signature goes.
type RSASigning struct {
	// header carrying the Base64 signature.
	// +kubebuilder:default="X-Hookgate-Signature"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&*+.^_|~-]+$`
	// +optional
	Header string `json:"header,omitempty"`
}

// JWTSigning is what the delivery tokens claim.
type JWTSigning struct {
	// audience (aud) of the tokens: what the destination checks, such as its tenant.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Audience string `json:"audience"`
}

// MetadataHeaders names the headers that tell the destination about the event.
type MetadataHeaders struct {
	// prefix of the headers <prefix>Topic, <prefix>Sub-Topic, <prefix>Tenant-Id,
	// <prefix>Webhook-Id and <prefix>Triggered-At; X-Pps- suits services written for that convention.
	// +kubebuilder:default="X-Hookgate-"
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&*+.^_|~-]*$`
	// +optional
	Prefix string `json:"prefix,omitempty"`
}

// Destination is where accepted events are forwarded.
// +kubebuilder:validation:XValidation:rule="has(self.service) != has(self.url)",message="set exactly one of service or url"
type Destination struct {
	// name of the destination, unique in the endpoint: it names the destination's queue,
	// its keys in the signing Secret, its public keys and its entries in status.
	// +kubebuilder:default=default
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Name string `json:"name,omitempty"`

	// service is a Service in the endpoint's namespace.
	// +optional
	Service *ServiceDestination `json:"service,omitempty"`

	// url is an http or https URL.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="url must be an http or https URL"
	// +optional
	URL string `json:"url,omitempty"`

	// timeout of one delivery attempt, at most 60s: a destination that needs longer
	// should answer 202 and work asynchronously.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('60s')",message="timeout must be more than 0s and at most 60s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// headers are static headers added to every forwarded request. Names are HTTP tokens;
	// values hold no control characters.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z0-9!#$%&*+.^_|~-]{1,256}$'))",message="header names must be HTTP tokens (letters, digits and !#$%&*+.^_|~-)"
	// +optional
	Headers map[string]HeaderValue `json:"headers,omitempty"`

	// signing of forwarded requests. The operator makes the keys in the Secret
	// <endpoint name>-signing: the default destination's under key "secret", another's
	// under its name (Standard Webhooks by default).
	// +kubebuilder:default={type: StandardWebhooks}
	// +optional
	Signing *DestinationSigning `json:"signing,omitempty"`

	// filter: which events go to this destination (default: all). An event no
	// destination takes is kept with phase Stored and a reason.
	// +optional
	Filter *DestinationFilter `json:"filter,omitempty"`

	// metadataHeaders: the topic, tenant, webhook id and trigger time of each delivery.
	// +kubebuilder:default={prefix: "X-Hookgate-"}
	// +optional
	MetadataHeaders *MetadataHeaders `json:"metadataHeaders,omitempty"`

	// retry is this destination's retry policy; default: the endpoint's spec.retry.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`
}

// NameOrDefault is the destination's name, "default" when unset (objects read without
// the API server's defaulting).
func (d *Destination) NameOrDefault() string {
	if d.Name == "" {
		return DefaultDestinationName
	}
	return d.Name
}

// HasJWTDestination reports whether any destination signs with JWT.
func (s *WebhookEndpointSpec) HasJWTDestination() bool {
	for _, d := range s.AllDestinations() {
		if d.SigningTypeOf() == SigningJWT {
			return true
		}
	}
	return false
}

// AllDestinations is every destination of the endpoint: the list, or the shorthand.
func (s *WebhookEndpointSpec) AllDestinations() []*Destination {
	if len(s.Destinations) > 0 {
		out := make([]*Destination, len(s.Destinations))
		for i := range s.Destinations {
			out[i] = &s.Destinations[i]
		}
		return out
	}
	if s.Destination != nil {
		return []*Destination{s.Destination}
	}
	return nil
}

// SigningTypeOf is the destination's signing type, StandardWebhooks when unset.
func (d *Destination) SigningTypeOf() SigningType {
	if d.Signing == nil || d.Signing.Type == "" {
		return SigningStandardWebhooks
	}
	return d.Signing.Type
}

// HeaderValue is the value of a static header: no control characters (a newline would
// let a value add headers of its own).
// +kubebuilder:validation:MaxLength=4096
// +kubebuilder:validation:Pattern=`^[^\x00-\x08\x0a-\x1f\x7f]*$`
type HeaderValue string

// ServiceDestination is a Service port and path in the endpoint's namespace.
type ServiceDestination struct {
	// name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// port of the Service.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// path of the request, default "/".
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	// +optional
	Path string `json:"path,omitempty"`
}

// RetryPolicy is exponential backoff with full jitter.
// +kubebuilder:validation:XValidation:rule="!has(self.maxBackoff) || !has(self.initialBackoff) || duration(self.maxBackoff) >= duration(self.initialBackoff)",message="maxBackoff must not be shorter than initialBackoff",fieldPath=".maxBackoff"
type RetryPolicy struct {
	// maxAttempts is how many delivery attempts are made before the event is Failed.
	// +kubebuilder:default=12
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// initialBackoff is the first retry delay.
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	InitialBackoff *metav1.Duration `json:"initialBackoff,omitempty"`

	// maxBackoff caps retry delays, Retry-After included.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
}

// WebhookEndpointStatus is the observed state of a WebhookEndpoint.
type WebhookEndpointStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// url is the path partners post to.
	// +optional
	URL string `json:"url,omitempty"`

	// destinations: what a destination's owner needs to verify deliveries.
	// +listType=map
	// +listMapKey=name
	// +optional
	Destinations []DestinationStatus `json:"destinations,omitempty"`
}

// DestinationStatus is one destination's published verification material.
type DestinationStatus struct {
	// name of the destination ("default" for spec.destination).
	Name string `json:"name"`
	// signing type in use.
	// +optional
	Signing SigningType `json:"signing,omitempty"`
	// publicKey is the current RSA public key, Base64 DER SubjectPublicKeyInfo (RSA and
	// JWT), also as PEM in the ConfigMap publicKeyConfigMap.
	// +optional
	PublicKey string `json:"publicKey,omitempty"`
	// keyID is the current key's id: the JWT kid (RFC 7638 thumbprint).
	// +optional
	KeyID string `json:"keyID,omitempty"`
	// previousPublicKey is the key of the rotation grace period, until previousKeyUntil.
	// +optional
	PreviousPublicKey string `json:"previousPublicKey,omitempty"`
	// +optional
	PreviousKeyUntil *metav1.Time `json:"previousKeyUntil,omitempty"`
	// publicKeyConfigMap is the ConfigMap (same namespace) holding the public keys as PEM.
	// +optional
	PublicKeyConfigMap string `json:"publicKeyConfigMap,omitempty"`
	// issuer is the iss of this destination's JWT deliveries: the issuer of the
	// endpoint's namespace, <public-url>/issuers/<namespace>, whose keys (this
	// namespace's only) are at <issuer>/.well-known/jwks.json. A destination verifies
	// tokens against this issuer, so that no other namespace's endpoint can sign for it.
	// Empty until a receiver with a --public-url has reported it.
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// filterError is the first failure to evaluate this destination's filter expression
	// that a receiver saw under the routing table it serves (such as a missing key: use
	// has()); such an event does not go to this destination. Cleared when the table
	// changes. Every failure is counted in hookgate_filter_failures_total.
	// +optional
	FilterError string `json:"filterError,omitempty"`
	// rotatedAt is when the signing key last changed.
	// +optional
	RotatedAt *metav1.Time `json:"rotatedAt,omitempty"`
}

// WebhookEndpoint is a path partners post events to, its verification, and its destination.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=whe,categories=hookgate
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Verification",type=string,JSONPath=`.spec.verification.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WebhookEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec   WebhookEndpointSpec   `json:"spec,omitempty"`
	Status WebhookEndpointStatus `json:"status,omitempty"`
}

// EffectivePath is the path partners post to: spec.path or the default.
func (e *WebhookEndpoint) EffectivePath() string {
	if e.Spec.Path != "" {
		return e.Spec.Path
	}
	return "/api/webhooks/" + e.Namespace + "/" + e.Name
}

// ReservedPath reports whether the receiver answers path itself (the status and partner
// APIs), so that no endpoint could take a POST there. The CRD refuses these as
// spec.path, but a default path is made of the namespace's name: every endpoint of a
// namespace named events would default to /api/webhooks/events/<name>.
func ReservedPath(path string) bool {
	switch path {
	case "/api/webhooks/status", "/api/webhooks/me", "/api/webhooks/usage", "/api/webhooks/openapi.json":
		return true
	}
	return strings.HasPrefix(path, "/api/webhooks/events/")
}

// SigningSecretName is the Secret holding the destination signing key.
func (e *WebhookEndpoint) SigningSecretName() string { return e.Name + "-signing" }

// PublicKeysName is the ConfigMap publishing the destination's RSA public keys as PEM.
func (e *WebhookEndpoint) PublicKeysName() string { return e.Name + "-signing-public" }

// WebhookEndpointList is a list of WebhookEndpoints.
// +kubebuilder:object:root=true
type WebhookEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookEndpoint `json:"items"`
}
