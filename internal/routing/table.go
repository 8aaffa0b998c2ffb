// Package routing is the one contract between the control plane and the data plane: the
// operator builds a Table from Partners, WebhookEndpoints and the Secrets they reference
// and publishes it in one Secret; receivers load it, swap it in atomically, and report the
// serial they serve through a Lease.
package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// FormatVersion of the serialized table. Version 1 is a single gzip'd JSON document under
// SecretDataKey. A later version may split partners into numbered shards
// (docs/architecture.md); a receiver refuses a format it does not know and keeps serving
// its last good table.
const FormatVersion = 1

// Table is everything a receiver needs to authenticate, authorize and route requests.
type Table struct {
	FormatVersion int `json:"formatVersion"`
	// Serial increases by one with every published change.
	Serial uint64 `json:"serial"`
	// Hash is the SHA-256 of the content (everything but Serial and Hash).
	Hash      string     `json:"hash"`
	Partners  []Partner  `json:"partners"`
	Endpoints []Endpoint `json:"endpoints"`

	index *index
}

// Partner is one active partner.
type Partner struct {
	Namespace string `json:"ns"`
	Name      string `json:"name"`
	// UID lets the receiver make the partner the owner of its WebhookEvents.
	UID string `json:"uid,omitempty"`
	// Rev is the serial of the table in which this entry last changed.
	Rev       uint64 `json:"rev"`
	Suspended bool   `json:"suspended,omitempty"`
	// Credentials: the current ones first, then those still in their grace period.
	Credentials []Credential `json:"creds"`
	IPAllowlist []string     `json:"allow,omitempty"`
	RateLimit   *RateLimit   `json:"rate,omitempty"`
	// MaxStoredBytes is the partner's stored-bytes quota; 0: the receiver's default.
	MaxStoredBytes int64 `json:"maxStored,omitempty"`
	// TenantID is sent to destinations in <prefix>Tenant-Id.
	TenantID string `json:"tenant,omitempty"`
	// RotatedAt is when the partner's credentials last changed (the partner API's key view).
	RotatedAt *time.Time `json:"rotatedAt,omitempty"`
}

// Credential is one API key (as a hash) and signing secret.
type Credential struct {
	// APIKeySHA256 is the hex SHA-256 of the API key: the table never holds API keys.
	APIKeySHA256  string      `json:"keySHA256"`
	SigningSecret SecretValue `json:"signingSecret"`
	// NotAfter ends a previous credential's grace period; nil for the current one.
	NotAfter *time.Time `json:"notAfter,omitempty"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	RequestsPerSecond int32 `json:"rps"`
	Burst             int32 `json:"burst"`
}

// Endpoint is one ready WebhookEndpoint.
type Endpoint struct {
	Namespace string `json:"ns"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	Rev       uint64 `json:"rev"`
	Path      string `json:"path"`
	// Partners allowed to post; empty: every partner of the namespace.
	Partners     []string     `json:"partners,omitempty"`
	Verification Verification `json:"verification"`
	Idempotency  Idempotency  `json:"idempotency"`
	EventTypes   []string     `json:"eventTypes,omitempty"`
	// SubType and Tenant say where an event's sub-topic and tenant are found (empty:
	// header X-Pps-Sub-Topic; the partner's tenant id).
	SubType      *ValueSource `json:"subType,omitempty"`
	Tenant       *ValueSource `json:"tenant,omitempty"`
	MaxBodyBytes int64        `json:"maxBodyBytes"`
	// Destination is the spec.destination shorthand (named "default"); Destinations the
	// spec.destinations list. One of them is set (AllDestinations reads either), so that
	// a receiver of the release before fan-out still delivers the shorthand's events.
	Destination  *Destination      `json:"destination,omitempty"`
	Destinations []*Destination    `json:"destinations,omitempty"`
	Retry        Retry             `json:"retry"`
	Paused       bool              `json:"paused,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// AllDestinations is every destination of the endpoint, in spec order.
func (e *Endpoint) AllDestinations() []*Destination {
	if len(e.Destinations) > 0 {
		return e.Destinations
	}
	if e.Destination != nil {
		return []*Destination{e.Destination}
	}
	return nil
}

// DestinationNamed is the endpoint's destination of that name, or nil.
func (e *Endpoint) DestinationNamed(name string) *Destination {
	for _, d := range e.AllDestinations() {
		if d.NameOrDefault() == name {
			return d
		}
	}
	return nil
}

// RetryOf is the retry policy of a destination: its own, else the endpoint's.
func (e *Endpoint) RetryOf(d *Destination) Retry {
	if d != nil && d.Retry != nil {
		return *d.Retry
	}
	return e.Retry
}

// NameOrDefault is the destination's name; tables written before fan-out name none.
func (d *Destination) NameOrDefault() string {
	if d.Name == "" {
		return DefaultDestinationName
	}
	return d.Name
}

// DefaultDestinationName names the spec.destination shorthand.
const DefaultDestinationName = "default"

// Verification is an endpoint's authentication scheme, with its secrets resolved.
type Verification struct {
	Type      hookgatev1alpha1.VerificationType `json:"type"`
	Tolerance Duration                          `json:"tolerance"`
	// Secret is the secretRef value for types that use one (HMAC key, RSA public key).
	Secret          SecretValue `json:"secret,omitempty"`
	JWKSURL         string      `json:"jwksURL,omitempty"`
	Issuer          string      `json:"issuer,omitempty"`
	Audience        string      `json:"audience,omitempty"`
	Header          string      `json:"header,omitempty"`
	Prefix          string      `json:"prefix,omitempty"`
	Encoding        string      `json:"encoding,omitempty"`
	SignedContent   string      `json:"signedContent,omitempty"`
	TimestampHeader string      `json:"timestampHeader,omitempty"`
}

// Idempotency says where the event id is found.
type Idempotency struct {
	Header   string   `json:"header,omitempty"`
	JSONPath string   `json:"jsonPath,omitempty"`
	Window   Duration `json:"window"`
}

// Destination is where events are forwarded.
type Destination struct {
	// Name is the destination's name in its endpoint ("default" for spec.destination).
	Name string `json:"name,omitempty"`
	URL  string `json:"url"`
	// Service: the URL names a Service in the endpoint's own namespace, which may resolve
	// to the cluster's private addresses; a plain url destination may not (unless the
	// receiver allows its range).
	Service bool `json:"service,omitempty"`
	// Addresses are the Service's own: its cluster IPs, or a headless Service's
	// endpoints. A Service destination reaches no other private address. Empty in tables
	// of operators from before it, whose Service destinations reach any private address.
	Addresses []string          `json:"addrs,omitempty"`
	Timeout   Duration          `json:"timeout"`
	Headers   map[string]string `json:"headers,omitempty"`
	// SigningSecret is the current whsec_ secret of Standard Webhooks signing (also in
	// Signing), for receivers of the release before Signing.
	SigningSecret SecretValue `json:"signingSecret,omitempty"`
	// Signing is how requests are signed; nil: unsigned.
	Signing *Signing `json:"signing,omitempty"`
	// Filter: nil takes every event.
	Filter *Filter `json:"filter,omitempty"`
	// MetadataPrefix starts the names of the Topic, Tenant-Id, Webhook-Id and
	// Triggered-At headers.
	MetadataPrefix string `json:"metaPrefix,omitempty"`
	// Retry is the destination's own retry policy; nil: the endpoint's.
	Retry *Retry `json:"retry,omitempty"`
}

// ValueSource is a header or a JSON path of the body.
type ValueSource struct {
	Header   string `json:"header,omitempty"`
	JSONPath string `json:"jsonPath,omitempty"`
}

// Filter says which events a destination takes (internal/filter evaluates it).
type Filter struct {
	Types      []string `json:"types,omitempty"`
	SubTypes   []string `json:"subTypes,omitempty"`
	Tenants    []string `json:"tenants,omitempty"`
	Expression string   `json:"expr,omitempty"`
}

// Signing is a destination's signature type and keys.
type Signing struct {
	// Type is StandardWebhooks, RSA or JWT.
	Type hookgatev1alpha1.SigningType `json:"type"`
	// Keys: the current key first, then the previous one until its NotAfter.
	Keys []SigningKey `json:"keys"`
	// Header carries RSA signatures.
	Header string `json:"header,omitempty"`
	// Audience is the aud of JWT tokens.
	Audience string `json:"aud,omitempty"`
}

// SigningKey is a whsec_ secret (Standard Webhooks) or a PEM RSA private key.
type SigningKey struct {
	Key SecretValue `json:"key"`
	// ID is the JWT kid.
	ID       string     `json:"kid,omitempty"`
	NotAfter *time.Time `json:"notAfter,omitempty"`
}

// Retry is the delivery retry policy.
type Retry struct {
	MaxAttempts    int32    `json:"maxAttempts"`
	InitialBackoff Duration `json:"initialBackoff"`
	MaxBackoff     Duration `json:"maxBackoff"`
}

// Duration serializes as a Go duration string.
type Duration time.Duration

// MarshalJSON writes "1h0m0s" style text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Key of a namespaced entry.
func Key(namespace, name string) string { return namespace + "/" + name }

// Finalize sorts the table, carries each unchanged entry's Rev over from prev (nil for
// none), stamps changed entries with the next serial, and computes the hash. It reports
// whether the content differs from prev; when it does not, the table takes prev's serial.
func (t *Table) Finalize(prev *Table) (changed bool) {
	t.FormatVersion = FormatVersion
	sort.Slice(t.Partners, func(i, j int) bool {
		return Key(t.Partners[i].Namespace, t.Partners[i].Name) < Key(t.Partners[j].Namespace, t.Partners[j].Name)
	})
	sort.Slice(t.Endpoints, func(i, j int) bool { return t.Endpoints[i].Path < t.Endpoints[j].Path })

	var prevSerial uint64
	prevPartners := map[string]Partner{}
	prevEndpoints := map[string]Endpoint{}
	if prev != nil {
		prevSerial = prev.Serial
		for _, p := range prev.Partners {
			prevPartners[Key(p.Namespace, p.Name)] = p
		}
		for _, e := range prev.Endpoints {
			prevEndpoints[Key(e.Namespace, e.Name)] = e
		}
	}
	next := prevSerial + 1
	for i := range t.Partners {
		p := &t.Partners[i]
		p.Rev = next
		if old, ok := prevPartners[Key(p.Namespace, p.Name)]; ok && partnerDigest(old) == partnerDigest(*p) {
			p.Rev = old.Rev
		}
	}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		e.Rev = next
		if old, ok := prevEndpoints[Key(e.Namespace, e.Name)]; ok && endpointDigest(old) == endpointDigest(*e) {
			e.Rev = old.Rev
		}
	}
	t.Hash = t.contentHash()
	if prev != nil && prev.Hash == t.Hash {
		t.Serial = prev.Serial
		// Keep prev's revs exactly; nothing changed.
		return false
	}
	t.Serial = next
	return true
}

// partnerDigest and endpointDigest hash an entry without its Rev, so that only real
// changes count.
func partnerDigest(p Partner) string {
	p.Rev = 0
	return digest(p)
}

func endpointDigest(e Endpoint) string {
	e.Rev = 0
	return digest(e)
}

func digest(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (t *Table) contentHash() string {
	c := *t
	c.Serial, c.Hash, c.index = 0, "", nil
	return digest(c)
}
