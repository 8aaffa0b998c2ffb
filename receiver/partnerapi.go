package receiver

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/verify"
)

// openAPI is the partner API's OpenAPI 3 document; docs/openapi.json is the same file
// (TestOpenAPIDocument keeps them equal).
//
//go:embed openapi.json
var openAPI []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, rec *auditRecord) {
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPI)
}

// The partner API (docs/partner-api.md, the OpenAPI document at pathOpenAPI): a partner's
// own view of hookgate, authenticated, allowlisted, rate limited and audited as the status
// API is, and scoped to the partner its x-api-key names.
const (
	pathMe         = "/api/webhooks/me"
	pathUsage      = "/api/webhooks/usage"
	pathEvents     = "/api/webhooks/events"
	pathEventsRoot = "/api/webhooks/events/"
	pathOpenAPI    = "/api/webhooks/openapi.json"
)

// partnerRequest runs the partner API's pipeline up to the handler: routing table, API
// key, allowlist, rate limit. The method must be one of methods.
func (s *Server) partnerRequest(r *http.Request, rec *auditRecord, methods ...string) (*routes, *routing.Partner, *routing.Credential, *rejection) {
	now := s.now()
	allowed := false
	for _, m := range methods {
		allowed = allowed || r.Method == m
	}
	if !allowed {
		rej := reject(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed", "use "+strings.Join(methods, " or "))
		rej.allow = strings.Join(methods, ", ")
		return nil, nil, nil, rej
	}
	rt := s.routes.get()
	if rt == nil {
		return nil, nil, nil, reject(http.StatusServiceUnavailable, "no_routing_table", "Service unavailable", "the receiver has not loaded its routing table yet; retry later")
	}
	partner, cred, rej := partnerByAPIKey(rt, r.Header.Get(verify.HeaderAPIKey), now)
	if rej != nil {
		return nil, nil, nil, rej
	}
	rec.partner = routing.Key(partner.Namespace, partner.Name)
	if rej := authorize(rt, nil, partner, rec.clientIP); rej != nil {
		return nil, nil, nil, rej
	}
	if rej := s.limiter.take(partner, now); rej != nil {
		return nil, nil, nil, rej
	}
	return rt, partner, cred, nil
}

// meBody is GET /api/webhooks/me.
type meBody struct {
	Partner        string     `json:"partner"`
	Namespace      string     `json:"namespace"`
	KeyPrefix      string     `json:"keyPrefix"`
	KeyGraceEndsAt *time.Time `json:"keyGraceEndsAt,omitempty"`
	// RotatedAt is the last rotation of the partner's credentials; PreviousKeyValidUntil
	// is when the previous key stops working, while it still does.
	RotatedAt             *time.Time      `json:"rotatedAt,omitempty"`
	PreviousKeyValidUntil *time.Time      `json:"previousKeyValidUntil,omitempty"`
	RateLimit             rateLimitBody   `json:"rateLimit"`
	Endpoints             []endpointBrief `json:"endpoints"`
}

type rateLimitBody struct {
	RequestsPerSecond int32 `json:"requestsPerSecond"`
	Burst             int32 `json:"burst"`
}

type endpointBrief struct {
	Name         string `json:"name"`
	Path         string `json:"path"`
	Verification string `json:"verification"`
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	rt, partner, cred, rej := s.partnerRequest(r, rec, http.MethodGet)
	if rej != nil {
		return rej
	}
	key := r.Header.Get(verify.HeaderAPIKey)
	body := meBody{Partner: partner.Name, Namespace: partner.Namespace, KeyPrefix: key[:min(8, len(key))], Endpoints: []endpointBrief{},
		RateLimit: rateLimitBody{RequestsPerSecond: defaultRequestsPerSecond, Burst: defaultBurst}}
	if cred != nil {
		body.KeyGraceEndsAt = cred.NotAfter
	}
	body.RotatedAt = partner.RotatedAt
	for i := range partner.Credentials {
		if na := partner.Credentials[i].NotAfter; na != nil && s.now().Before(*na) {
			body.PreviousKeyValidUntil = na
		}
	}
	if rl := partner.RateLimit; rl != nil {
		body.RateLimit = rateLimitBody{RequestsPerSecond: rl.RequestsPerSecond, Burst: rl.Burst}
	}
	for i := range rt.table.Endpoints {
		e := &rt.table.Endpoints[i]
		if e.Namespace != partner.Namespace || !e.Verification.Type.UsesPartnerCredentials() || len(e.Partners) > 0 && !slices.Contains(e.Partners, partner.Name) {
			continue
		}
		body.Endpoints = append(body.Endpoints, endpointBrief{Name: e.Name, Path: e.Path, Verification: string(e.Verification.Type)})
	}
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	writeJSON(w, http.StatusOK, body)
	return nil
}

// eventBody is GET /api/webhooks/events/{uuid}: the status, every attempt and the payload.
type eventBody struct {
	statusBody
	Attempts []attemptBody `json:"attemptLog"`
	// Payload is the body as JSON when it is JSON, else PayloadBase64 holds it.
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payloadBase64,omitempty"`
}

type attemptBody struct {
	Destination  string    `json:"destination"`
	Number       int32     `json:"number"`
	StartedAt    time.Time `json:"startedAt"`
	DurationMs   float64   `json:"durationMs"`
	ResponseCode int32     `json:"responseCode,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// handleEventResource serves GET /api/webhooks/events/{uuid} and POST
// /api/webhooks/events/{uuid}/retry.
func (s *Server) handleEventResource(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	rest := strings.TrimPrefix(r.URL.Path, pathEventsRoot)
	id, action, _ := strings.Cut(rest, "/")
	switch {
	case action == "" && id != "":
		rec.route = "event-detail"
		return s.handleEventDetail(w, r, rec, id)
	case action == "retry" && id != "":
		rec.route = "event-retry"
		return s.handleRetry(w, r, rec, id)
	}
	return reject(http.StatusNotFound, "unknown_path", "Not found", "use /api/webhooks/events/{uuid} or /api/webhooks/events/{uuid}/retry")
}

// partnerEvent runs the partner API's pipeline and finds the partner's event with this
// uuid (or event id), or answers why not.
func (s *Server) partnerEvent(r *http.Request, rec *auditRecord, id, method string) (*store.Event, *rejection) {
	if _, _, _, rej := s.partnerRequest(r, rec, method); rej != nil {
		return nil, rej
	}
	ev, err := s.findEvent(r.Context(), rec.partner, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(http.StatusNotFound, "unknown_event", "Not found", "no event with this id for this partner")
	}
	if err != nil {
		s.log.Error(err, "reading an event for the partner API")
		return nil, storeUnavailable("the event could not be read; retry after the time in Retry-After")
	}
	rec.uuid, rec.eventID = ev.UUID, ev.EventID
	return ev, nil
}

func (s *Server) handleEventDetail(w http.ResponseWriter, r *http.Request, rec *auditRecord, id string) *rejection {
	ev, rej := s.partnerEvent(r, rec, id, http.MethodGet)
	if rej != nil {
		return rej
	}
	attempts, err := s.store.Attempts(r.Context(), ev.UUID)
	if err != nil {
		return storeUnavailable("the attempts could not be read; retry after the time in Retry-After")
	}
	payload, err := s.store.Payload(r.Context(), ev.UUID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeUnavailable("the payload could not be read; retry after the time in Retry-After")
	}
	body := eventBody{statusBody: statusOf(ev), Attempts: make([]attemptBody, 0, len(attempts))}
	for _, a := range attempts {
		body.Attempts = append(body.Attempts, attemptBody{Destination: a.Destination, Number: a.Number, StartedAt: a.StartedAt, DurationMs: float64(a.Duration.Microseconds()) / 1000,
			ResponseCode: a.ResponseCode, Error: a.Error})
	}
	if mt, _, _ := mime.ParseMediaType(ev.ContentType); (mt == "application/json" || strings.HasSuffix(mt, "+json")) && json.Valid(payload) {
		body.Payload = payload
	} else if len(payload) > 0 {
		body.PayloadBase64 = base64.StdEncoding.EncodeToString(payload)
	}
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	writeJSON(w, http.StatusOK, body)
	return nil
}

// handleRetry queues a Failed event's failed deliveries again, or with ?destination=
// the one delivery named; one still on its way is 409, and so is one that was delivered
// or has no destination.
func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request, rec *auditRecord, id string) *rejection {
	ev, rej := s.partnerEvent(r, rec, id, http.MethodPost)
	if rej != nil {
		return rej
	}
	destination := r.URL.Query().Get("destination")
	if destination != "" {
		d := ev.Delivery(destination)
		if d == nil {
			return reject(http.StatusNotFound, "unknown_destination", "Not found", "the event has no delivery to this destination; its deliveries are listed in the event")
		}
		if d.Phase != store.PhaseFailed {
			return reject(http.StatusConflict, "not_failed", "Conflict", "only a Failed delivery can be retried; this one is "+d.Phase)
		}
	} else if ev.Phase != store.PhaseFailed {
		return reject(http.StatusConflict, "not_failed", "Conflict", "only a Failed event can be retried; this one is "+ev.Phase)
	}
	var requeued *store.Event
	var err error
	if destination != "" {
		requeued, err = s.store.Requeue(r.Context(), ev.UUID, destination, s.now())
	} else {
		// A Failed event's delivered destinations are not sent to again.
		requeued, err = s.requeueFailedOf(r, ev)
	}
	if err != nil {
		s.log.Error(err, "requeueing an event for the partner API")
		return storeUnavailable("the event could not be queued again; retry after the time in Retry-After")
	}
	if s.onStored != nil {
		s.onStored()
	}
	rec.outcome, rec.status, rec.reason = outcomeAccepted, http.StatusAccepted, "retry"
	writeJSON(w, http.StatusAccepted, statusOf(requeued))
	return nil
}

// requeueFailedOf queues each Failed delivery of the event again.
func (s *Server) requeueFailedOf(r *http.Request, ev *store.Event) (*store.Event, error) {
	out := ev
	for _, d := range ev.Deliveries {
		if d.Phase != store.PhaseFailed {
			continue
		}
		e, err := s.store.Requeue(r.Context(), ev.UUID, d.Destination, s.now())
		if err != nil {
			return nil, err
		}
		out = e
	}
	return out, nil
}

// statusOf is the status API's view of an event.
func statusOf(ev *store.Event) statusBody {
	body := statusBody{
		UUID: ev.UUID, EventID: ev.EventID, Type: ev.Type, Status: ev.Phase, Attempts: ev.Attempts,
		LastResponseCode: ev.LastResponseCode, LastError: ev.LastError, Reason: ev.Reason, ReceivedAt: ev.ReceivedAt,
		NextAttemptAt: ev.NextAttemptAt, DeliveredAt: ev.DeliveredAt, Deliveries: make([]deliverySummary, 0, len(ev.Deliveries)),
	}
	for _, d := range ev.Deliveries {
		body.Deliveries = append(body.Deliveries, deliverySummary{Destination: d.Destination, Status: d.Phase, Attempts: d.Attempts,
			LastResponseCode: d.LastResponseCode, LastError: d.LastError, NextAttemptAt: d.NextAttemptAt, DeliveredAt: d.DeliveredAt})
	}
	return body
}

// eventsPage is GET /api/webhooks/events.
type eventsPage struct {
	Events []eventSummary `json:"events"`
	// Cursor, when set, fetches the next (older) page as ?cursor=.
	Cursor string `json:"cursor,omitempty"`
	// StoppedEarly: the page ended at the scan bound (store.MaxListScan events looked
	// at), not at its limit; older events may still match, from Cursor on.
	StoppedEarly bool `json:"stoppedEarly,omitempty"`
}

// eventSummary is one event of the log with its deliveries' summary.
type eventSummary = statusBody

// handleEventList serves a partner's events newest first, filtered by ?status=, ?type=
// and ?since= (RFC 3339), ?limit= (default 50, at most store.MaxListLimit) at a time,
// continued with ?cursor=.
func (s *Server) handleEventList(w http.ResponseWriter, r *http.Request, rec *auditRecord) *rejection {
	if _, _, _, rej := s.partnerRequest(r, rec, http.MethodGet); rej != nil {
		return rej
	}
	v := r.URL.Query()
	q := store.ListQuery{Phase: v.Get("status"), Type: v.Get("type"), Before: v.Get("cursor"), Limit: 50}
	if q.Phase != "" && !slices.Contains([]string{store.PhaseQueued, store.PhaseDelivering, store.PhaseRetrying, store.PhaseDelivered, store.PhaseFailed, store.PhaseStored}, q.Phase) {
		return reject(http.StatusBadRequest, "invalid_query", "Bad request", "status must be one of Queued, Delivering, Retrying, Delivered, Failed, Stored")
	}
	if len(q.Type) > maxEventTypeLength || len(q.Before) > maxEventIDLength {
		return reject(http.StatusBadRequest, "invalid_query", "Bad request", "type or cursor is too long")
	}
	// No stored type is other than UTF-8, and PostgreSQL refuses to compare with one.
	if !utf8.ValidString(q.Type) || !utf8.ValidString(q.Before) {
		return reject(http.StatusBadRequest, "invalid_query", "Bad request", "type or cursor is not valid UTF-8")
	}
	if since := v.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return reject(http.StatusBadRequest, "invalid_query", "Bad request", "since must be an RFC 3339 time such as 2026-12-01T00:00:00Z")
		}
		q.Since = t
	}
	if limit := v.Get("limit"); limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return reject(http.StatusBadRequest, "invalid_query", "Bad request", "limit must be between 1 and "+strconv.Itoa(store.MaxListLimit))
		}
		q.Limit = n
	}
	evs, cursor, err := s.store.ListEvents(r.Context(), rec.partner, q)
	if err != nil {
		s.log.Error(err, "listing a partner's events")
		return storeUnavailable("the events could not be read; retry after the time in Retry-After")
	}
	page := eventsPage{Events: make([]eventSummary, 0, len(evs)), Cursor: cursor, StoppedEarly: store.ListStoppedEarly(q, len(evs), cursor)}
	for i := range evs {
		e := &evs[i]
		page.Events = append(page.Events, statusOf(e))
	}
	rec.outcome, rec.status = outcomeAnswered, http.StatusOK
	writeJSON(w, http.StatusOK, page)
	return nil
}
