// Package receiver is hookgate's data plane: it receives partner events, verifies them,
// stores them durably, and answers at once.
package receiver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/verify"
)

// Paths of the webhook port (docs/reference.md).
const (
	pathPrefix = "/api/webhooks/"
	pathStatus = "/api/webhooks/status"
	pathHealth = "/api/health"
)

// Server handles the webhook port and the probe port.
type Server struct {
	store store.Store
	// storeBoundsIngest: the store bounds its own ingest waits (store.BoundedIngest), so
	// no deadline is made per event.
	storeBoundsIngest bool
	routes            *routeCache
	trustedProxies    []netip.Prefix
	limiter           *rateLimiter
	bodies            *bodyBudget
	authFailures      *authFailureLimiter
	defaultQuota      int64
	auditLog          *zap.Logger
	metrics           *Metrics
	gatherer          prometheus.Gatherer
	log               logr.Logger
	now               func() time.Time
	onStored          func()
	publicURL         string
	jwks              jwksCache
	filterFailures    *filterFailureLog
	// decodeReserve is s.bodies.reserveDecoded, bound once.
	decodeReserve func(int64) bool
	usage         *dailyUsage
}

// Config is what a Server needs.
type Config struct {
	Store          store.Store
	Holder         *routing.Holder
	TrustedProxies []netip.Prefix
	AuditLog       *zap.Logger // nil: no audit lines
	Metrics        *Metrics    // nil: no metrics
	Gatherer       prometheus.Gatherer
	Log            logr.Logger
	// JWKSClient fetches JWT key sets (nil: verify.NewJWKSClient dialling through Egress).
	JWKSClient *http.Client
	// Egress checks the addresses the JWKS client dials, as for url destinations (nil:
	// egress.Default(), no allow list).
	Egress *egress.Guard
	Now    func() time.Time
	// OnStored, when set, is called after each newly stored event (wakes delivery).
	OnStored func()
	// MaxInflightBodyBytes bounds the request bodies held at once (0: no bound).
	MaxInflightBodyBytes int64
	// DefaultPartnerQuota is the stored-bytes quota of partners that set none (0: none).
	DefaultPartnerQuota int64
	// PublicURL is the receiver's URL as destinations reach it: the base of the JWT
	// issuers, one per namespace (empty: none served).
	PublicURL string
	// FilterFailures keeps the first failure of each destination filter for the Lease
	// (nil: not reported).
	FilterFailures *filterFailureLog
}

// NewServer builds a server.
func NewServer(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	if cfg.JWKSClient == nil {
		guard := cfg.Egress
		if guard == nil {
			guard = egress.Default()
		}
		// A JWKS URL is chosen by whoever writes the endpoint: it is dialled like a url destination.
		cfg.JWKSClient = verify.NewJWKSClient(guard.DialContext(egress.URL))
	}
	_, storeBoundsIngest := cfg.Store.(store.BoundedIngest)
	s := &Server{
		storeBoundsIngest: storeBoundsIngest,
		routes:            &routeCache{holder: cfg.Holder, env: verify.Env{JWKS: verify.NewJWKSCache(cfg.JWKSClient)}},
		store:             cfg.Store, trustedProxies: cfg.TrustedProxies, limiter: newRateLimiter(), bodies: newBodyBudget(cfg.MaxInflightBodyBytes), authFailures: newAuthFailureLimiter(), defaultQuota: cfg.DefaultPartnerQuota,
		auditLog: cfg.AuditLog, metrics: cfg.Metrics, gatherer: cfg.Gatherer, log: cfg.Log, now: cfg.Now, onStored: cfg.OnStored,
		publicURL: strings.TrimSuffix(cfg.PublicURL, "/"), usage: newDailyUsage(), filterFailures: cfg.FilterFailures,
	}
	s.decodeReserve = s.bodies.reserveDecoded
	return s
}

// Handler serves the webhook port.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &auditRecord{requestID: newRequestID(), clientIP: clientIP(r, s.trustedProxies)}
		w.Header().Set("X-Request-Id", rec.requestID)
		started := time.Now()
		var rej *rejection
		now := s.now()
		if r.URL.Path != pathHealth {
			rej = s.authFailures.check(rec.clientIP, now)
		}
		switch {
		case rej != nil:
			rec.route = "throttled"
		case r.URL.Path == pathStatus:
			rec.route = "status"
			rej = s.handleStatus(w, r, rec)
		case r.URL.Path == pathHealth:
			rec.route = "health"
			s.handleHealth(w, rec)
		case r.URL.Path == pathMe:
			rec.route = "me"
			rej = s.handleMe(w, r, rec)
		case r.URL.Path == pathEvents && r.Method == http.MethodGet:
			// GET is the partner's event log; POST stays an endpoint's, if one has the path.
			rec.route = "event-list"
			rej = s.handleEventList(w, r, rec)
		case strings.HasPrefix(r.URL.Path, pathEventsRoot):
			rej = s.handleEventResource(w, r, rec)
		case portalRoute(r.URL.Path):
			rec.route = "portal"
			rej = s.handlePortal(w, r, rec)
		case r.URL.Path == pathUsage:
			rec.route = "usage"
			rej = s.handleUsage(w, r, rec)
		case r.URL.Path == pathOpenAPI:
			rec.route = "openapi"
			s.handleOpenAPI(w, rec)
		case r.URL.Path == pathJWKS || r.URL.Path == pathDiscovery:
			rec.route = "keys"
			rej = s.handleRootWellKnown(w, r, rec)
		case strings.HasPrefix(r.URL.Path, signing.IssuersPath):
			rec.route = "keys"
			if ns, doc, ok := issuerRoute(r.URL.Path); ok {
				rej = s.handleWellKnown(w, r, rec, ns, doc)
			} else {
				rej = reject(http.StatusNotFound, "unknown_path", "Not found", "an issuer serves <issuer>/.well-known/openid-configuration and <issuer>/.well-known/jwks.json")
			}
		case len(r.URL.Path) > len(pathPrefix) && r.URL.Path[:len(pathPrefix)] == pathPrefix:
			rec.route = "event"
			rej = s.handleEvent(w, r, rec)
		default:
			rec.route = "other"
			rej = reject(http.StatusNotFound, "unknown_path", "Not found", "no webhook endpoint at this path")
		}
		if rej != nil && rej.status == http.StatusUnauthorized {
			s.authFailures.failed(rec.clientIP, now)
		}
		if rej != nil {
			rec.outcome, rec.reason, rec.status = outcomeRejected, rej.reason, rej.status
			writeRejection(w, rec.requestID, rej)
		}
		s.audit(rec, time.Since(started))
	})
}

// acceptedBody is the answer to a stored (202) or duplicate (200) event.
type acceptedBody struct {
	UUID      string `json:"uuid"`
	EventID   string `json:"eventId"`
	Status    string `json:"status"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// handleEvent is the ingest pipeline (docs/architecture.md), in order: the first step that fails
// answers. It returns a rejection, or nil once it has answered 2xx.
func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	now := s.now()
	rt := s.routes.get()
	if rt == nil {
		return reject(http.StatusServiceUnavailable, "no_routing_table", "Service unavailable", "the receiver has not loaded its routing table yet; retry later")
	}

	// 1. route
	ep, ok := rt.table.EndpointByPath(r.URL.Path)
	if !ok {
		return reject(http.StatusNotFound, "unknown_path", "Not found", "no webhook endpoint at this path")
	}
	rec.endpoint = routing.Key(ep.Namespace, ep.Name)
	auth := rt.auth[rec.endpoint] // nil: a scheme this receiver does not know (401 below)
	if r.Method != http.MethodPost {
		rej := reject(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed", "send events with POST")
		rej.allow = http.MethodPost
		return rej
	}

	// 2. limits, and the API key of schemes that name the partner by it, before any
	// body byte is read: unknown keys cost the receiver no memory.
	if r.ContentLength > ep.MaxBodyBytes {
		return tooLarge(ep.MaxBodyBytes)
	}
	if rej := checkContentType(r); rej != nil {
		return rej
	}
	partner, cred, rej := identify(rt, auth, r.Header, now)
	if rej != nil {
		return rej
	}
	reserved := ep.MaxBodyBytes
	if r.ContentLength >= 0 {
		reserved = r.ContentLength
	}
	identified := partner != nil
	if most := s.bodies.most(identified); reserved > most {
		return tooLargeToHold(most, r.ContentLength >= 0)
	}
	if !s.bodies.reserve(reserved, rec.clientIP, identified) {
		return busy()
	}
	defer s.bodies.release(reserved, rec.clientIP, identified)
	body, rej := readBody(w, r, ep.MaxBodyBytes)
	if rej != nil {
		return rej
	}

	// 3. authenticate
	partner, rej = s.authenticate(r.Context(), rt, ep, auth, partner, cred, r.Header, body, now)
	if partner != nil {
		rec.partner = routing.Key(partner.Namespace, partner.Name)
	}
	if rej != nil {
		return rej
	}

	// 4. authorize
	if rej := authorize(rt, ep, partner, rec.clientIP); rej != nil {
		return rej
	}

	// 5. rate limit
	if rej := s.limiter.take(partner, now); rej != nil {
		return rej
	}

	// 6. parse
	parsed, rej := parseEvent(ep, auth.scheme, r.Header, body)
	if rej != nil {
		return rej
	}

	subType, tenant, rej := routingValues(ep, partner, r.Header, parsed.body)
	if rej != nil {
		return rej
	}

	// 7. dedupe and 8. store, in one durable write; the destinations' filters decide
	// which ones it is queued for, or that it is only stored
	in := newIngest(ep, partner, parsed, r.Header.Get("Content-Type"), body, now)
	in.Event.SubType, in.Event.Tenant = subType, tenant
	// The method value is made once per server (decodeReserve), not per request.
	s.bodies.releaseDecoded(routeToDestinations(rt, ep, &in.Event, r.Header, parsed.body.raw, s.decodeReserve, s))
	on, window := dedupOn(auth.scheme, ep, parsed, body)
	in.DedupKey, in.DedupWindow = dedupKey(partner, ep, on), window
	in.QuotaBytes = s.quota(partner)
	storeCtx := r.Context()
	if !s.storeBoundsIngest {
		var cancel context.CancelFunc
		storeCtx, cancel = context.WithTimeout(storeCtx, storeTimeout)
		defer cancel()
	}
	result, err := s.store.Ingest(storeCtx, in)
	if errors.Is(err, store.ErrQuotaExceeded) {
		return reject(http.StatusInsufficientStorage, "storage_quota_exceeded", "Insufficient storage",
			"this partner's stored events have reached its storage quota ("+formatBytes(in.QuotaBytes)+"); retry once older events have been delivered and pruned, or ask the platform team to raise spec.limits.maxStoredBytes")
	}
	if err != nil {
		s.log.Error(err, "storing an event failed", "endpoint", rec.endpoint)
		return storeUnavailable("the event could not be stored; it was not accepted, retry after the time in Retry-After")
	}

	// acknowledge
	rec.uuid, rec.eventID = result.Event.UUID, result.Event.EventID
	answer := acceptedBody{UUID: result.Event.UUID, EventID: result.Event.EventID, Status: result.Event.Phase}
	if result.Duplicate {
		rec.outcome, rec.reason, rec.status = outcomeDuplicate, "duplicate", http.StatusOK
		answer.Duplicate = true
		writeAccepted(w, http.StatusOK, answer)
		return nil
	}
	rec.outcome, rec.status = outcomeAccepted, http.StatusAccepted
	writeAccepted(w, http.StatusAccepted, answer)
	if s.onStored != nil && in.Event.Phase == store.PhaseQueued {
		s.onStored()
	}
	return nil
}

// quota is a partner's stored-bytes quota: its own, or the receiver's default.
func (s *Server) quota(p *routing.Partner) int64 {
	if p.MaxStoredBytes > 0 {
		return p.MaxStoredBytes
	}
	return s.defaultQuota
}

// newIngest makes the store record of an accepted event.
func newIngest(ep *routing.Endpoint, p *routing.Partner, parsed parsedEvent, contentType string, body []byte, now time.Time) store.Ingest {
	id := uuid.Must(uuid.NewV7()).String()
	sum := sha256.Sum256(body)
	phase := store.PhaseStored
	if len(ep.AllDestinations()) > 0 {
		phase = store.PhaseQueued // routeToDestinations says to which
	}
	eventID := parsed.id
	if eventID == "" {
		eventID = id
	}
	return store.Ingest{
		Event: store.Event{
			UUID: id, EventID: eventID, Type: parsed.typ,
			PartnerNamespace: p.Namespace, Partner: p.Name,
			EndpointNamespace: ep.Namespace, Endpoint: ep.Name,
			ReceivedAt: now, PayloadSHA256: hex.EncodeToString(sum[:]), SizeBytes: int64(len(body)),
			ContentType: contentType, Phase: phase,
		},
		Payload: body,
	}
}

// dedupKey scopes what an event is deduplicated on to its partner and endpoint; nothing
// to deduplicate on is no key.
func dedupKey(p *routing.Partner, ep *routing.Endpoint, on string) string {
	if on == "" {
		return ""
	}
	return routing.Key(p.Namespace, p.Name) + "\x00" + routing.Key(ep.Namespace, ep.Name) + "\x00" + on
}

// statusBody is the status API's answer.
type statusBody struct {
	UUID             string     `json:"uuid"`
	EventID          string     `json:"eventId"`
	Type             string     `json:"type,omitempty"`
	Status           string     `json:"status"`
	Attempts         int32      `json:"attempts"`
	LastResponseCode int32      `json:"lastResponseCode,omitempty"`
	LastError        string     `json:"lastError,omitempty"`
	Reason           string     `json:"reason,omitempty"`
	ReceivedAt       time.Time  `json:"receivedAt"`
	NextAttemptAt    *time.Time `json:"nextAttemptAt,omitempty"`
	DeliveredAt      *time.Time `json:"deliveredAt,omitempty"`
	// Deliveries: one per destination the event went to (none when Stored); the fields
	// above are their aggregate.
	Deliveries []deliverySummary `json:"deliveries"`
}

// deliverySummary is one destination's delivery of an event.
type deliverySummary struct {
	Destination      string     `json:"destination"`
	Status           string     `json:"status"`
	Attempts         int32      `json:"attempts"`
	LastResponseCode int32      `json:"lastResponseCode,omitempty"`
	LastError        string     `json:"lastError,omitempty"`
	NextAttemptAt    *time.Time `json:"nextAttemptAt,omitempty"`
	DeliveredAt      *time.Time `json:"deliveredAt,omitempty"`
}

// handleStatus answers GET /api/webhooks/status?eventId=... for the authenticated
// partner's own events.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	if _, _, _, rej := s.partnerRequest(r, rec, http.MethodGet); rej != nil {
		return rej
	}
	id := r.URL.Query().Get("eventId")
	if id == "" || len(id) > maxEventIDLength {
		return reject(http.StatusBadRequest, "missing_event_id", "Bad request", "pass the event's id or uuid as ?eventId=")
	}
	// No stored id is other than UTF-8, and PostgreSQL refuses to compare with one.
	if !utf8.ValidString(id) {
		return reject(http.StatusBadRequest, "missing_event_id", "Bad request", "the eventId query parameter is not valid UTF-8")
	}
	ev, err := s.findEvent(r.Context(), rec.partner, id)
	if errors.Is(err, store.ErrNotFound) {
		return reject(http.StatusNotFound, "unknown_event", "Not found", "no event with this id for this partner")
	}
	if err != nil {
		s.log.Error(err, "reading an event's status")
		return storeUnavailable("the status could not be read; retry after the time in Retry-After")
	}
	rec.outcome, rec.status, rec.uuid, rec.eventID = outcomeAnswered, http.StatusOK, ev.UUID, ev.EventID
	writeJSON(w, http.StatusOK, statusOf(ev))
	return nil
}

// findEvent looks an id up as the partner's event id, then as a uuid; another partner's
// event is not found.
func (s *Server) findEvent(ctx context.Context, partnerKey, id string) (*store.Event, error) {
	ev, err := s.store.FindByEventID(ctx, partnerKey, id)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return ev, err
	}
	if _, perr := uuid.Parse(id); perr != nil {
		return nil, store.ErrNotFound
	}
	ev, err = s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ev.PartnerKey() != partnerKey {
		return nil, store.ErrNotFound
	}
	return ev, nil
}

// healthBody is GET /api/health.
type healthBody struct {
	Status        string `json:"status"`
	Store         string `json:"store"`
	RoutingTable  string `json:"routingTable"`
	RoutingSerial uint64 `json:"routingSerial,omitempty"`
}

func (s *Server) handleHealth(w http.ResponseWriter, rec *auditRecord) {
	body, ok := s.health()
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	if !ok {
		rec.status = http.StatusServiceUnavailable
	}
	writeJSON(w, rec.status, body)
}

func (s *Server) health() (healthBody, bool) {
	body := healthBody{Status: "ok", Store: "ok", RoutingTable: "loaded"}
	ok := true
	if err := s.store.Healthy(); err != nil {
		body.Status, body.Store, ok = "unavailable", "unavailable", false
	}
	if t := s.routes.holder.Current(); t == nil {
		body.Status, body.RoutingTable, ok = "unavailable", "not loaded", false
	} else {
		body.RoutingSerial = t.Serial
	}
	return body, ok
}

// ProbeHandler serves the probe port: /healthz, /readyz, /metrics.
func (s *Server) ProbeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		body, ok := s.health()
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, body)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	return mux
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
