package receiver

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/hookgate/hookgate/internal/filter"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
)

// defaultSubTypeHeader carries an event's sub-topic when the endpoint names no source,
// as webhook-endpoint-jwt's convention has it.
const defaultSubTypeHeader = "X-Pps-Sub-Topic"

// maxRoutingValueLength bounds an event's sub-topic and tenant, which travel on as
// delivery headers.
const maxRoutingValueLength = 256

// Reasons an event of an endpoint with a destination is kept as Stored.
const (
	reasonFilteredOut    = "no destination's filter matches the event"
	reasonFilterUnusable = "the destination's filter could not be compiled by this receiver"
)

// destinationFilter is a destination's compiled filter, or why it could not be compiled
// (the operator refuses such endpoints; a receiver of another version might not agree).
type destinationFilter struct {
	compiled *filter.Compiled
	err      error
	// failureLogged: the first evaluation failure of this routing table's filter is
	// logged, the rest only counted.
	failureLogged atomic.Bool
}

func compileDestinationFilter(f *routing.Filter) *destinationFilter {
	c, err := filter.Compile(filter.Filter{Types: f.Types, SubTypes: f.SubTypes, Tenants: f.Tenants, Expression: f.Expression})
	return &destinationFilter{compiled: c, err: err}
}

// routingValues finds the event's sub-topic and tenant: where the endpoint says, else the
// X-Pps-Sub-Topic header and the partner's tenant id.
func routingValues(ep *routing.Endpoint, p *routing.Partner, h http.Header, body jsonObject) (subType, tenant string, rej *rejection) {
	subType = h.Get(defaultSubTypeHeader)
	subTypeUTF8 := utf8.ValidString(subType)
	if src := ep.SubType; src != nil {
		subType, subTypeUTF8 = valueOf(src, h, body)
	}
	tenant, tenantUTF8 := p.TenantID, true
	if src := ep.Tenant; src != nil {
		tenant, tenantUTF8 = valueOf(src, h, body)
	}
	for _, v := range [...]struct {
		name, value string
		utf8        bool
	}{{"sub-topic", subType, subTypeUTF8}, {"tenant", tenant, tenantUTF8}} {
		// Stored with the event, as the id is: see parseEvent for why UTF-8.
		if len(v.value) > maxRoutingValueLength || hasControl(v.value) || !v.utf8 {
			return "", "", reject(http.StatusBadRequest, "invalid_"+strings.ReplaceAll(v.name, "-", "_"), "Bad request",
				"the event's "+v.name+" must be at most "+itoa(maxRoutingValueLength)+" bytes of UTF-8 without control characters")
		}
	}
	return subType, tenant, nil
}

// valueOf is the value at src and whether it was valid UTF-8 as sent.
func valueOf(src *routing.ValueSource, h http.Header, body jsonObject) (string, bool) {
	if src.Header != "" {
		v := h.Get(src.Header)
		return v, utf8.ValidString(v)
	}
	tok := body.token(src.JSONPath)
	return renderScalar(tok), validUTF8Token(tok)
}

// filterFailures are told of filter expressions that could not be evaluated (counted by
// endpoint and destination; the first of each routing table's filter logged).
type filterFailures interface {
	filterFailed(ep *routing.Endpoint, destination string, f *destinationFilter, err error)
}

// routeToDestinations queues the event for every destination of the endpoint whose
// filter takes it, in spec order; when none does, the event is kept as Stored with the
// reason. A filter this receiver cannot compile takes nothing. The body is decoded once
// for every expression that reads it, within memory that reserve grants (the in-flight
// bound); it returns the bytes reserve granted, for the caller to give back.
func routeToDestinations(rt *routes, ep *routing.Endpoint, ev *store.Event, h http.Header, body []byte, reserve func(int64) bool, failures filterFailures) (reserved int64) {
	if ev.Phase != store.PhaseQueued {
		return 0
	}
	var in *filter.Event // built once, for the first destination with a filter
	unusable := false
	filters := rt.filters[routing.Key(ep.Namespace, ep.Name)]
	ev.Deliveries = ev.Deliveries[:0]
	for i, d := range ep.AllDestinations() {
		name := d.NameOrDefault()
		if f := filterAt(filters, i); f != nil {
			if f.err != nil {
				unusable = true
				continue
			}
			if in == nil {
				in = &filter.Event{Type: ev.Type, SubType: ev.SubType, Tenant: ev.Tenant, Partner: ev.Partner, ID: ev.EventID, Body: body, Reserve: reserve}
				if anyNeedsHeaders(filters) {
					in.Headers = lowerCaseHeaders(h)
				}
			}
			ok, err := f.compiled.Match(in)
			if err != nil && failures != nil {
				failures.filterFailed(ep, name, f, err)
			}
			if !ok {
				continue
			}
		}
		ev.Deliveries = append(ev.Deliveries, store.DeliveryState{Destination: name, Phase: store.PhaseQueued})
	}
	if len(ev.Deliveries) == 0 {
		ev.Deliveries = nil
		ev.Phase, ev.Reason = store.PhaseStored, reasonFilteredOut
		if unusable {
			ev.Reason = reasonFilterUnusable
		}
	}
	if in != nil {
		return in.Reserved
	}
	return 0
}

func filterAt(filters []*destinationFilter, i int) *destinationFilter {
	if i < len(filters) {
		return filters[i]
	}
	return nil
}

// anyNeedsHeaders reports whether an expression of the endpoint reads event.headers: the
// filters' input is built once, for all of them.
// filterFailed counts an expression that could not be evaluated (the event does not go to
// that destination) and logs the first of each routing table's filter, naming the
// endpoint and destination but no body byte.
func (s *Server) filterFailed(ep *routing.Endpoint, destination string, f *destinationFilter, err error) {
	reason := "evaluation"
	if errors.Is(err, filter.ErrOverBudget) {
		reason = "over_budget"
	}
	s.metrics.observeFilterFailure(routing.Key(ep.Namespace, ep.Name), destination, reason)
	if f.failureLogged.CompareAndSwap(false, true) {
		if t := s.routes.holder.Current(); t != nil {
			s.filterFailures.record(t.Serial, ep, destination, err.Error())
		}
		s.log.Info("a destination filter could not be evaluated: the event does not go to that destination (further failures of this filter are only counted, hookgate_filter_failures_total)",
			"endpoint", routing.Key(ep.Namespace, ep.Name), "destination", destination, "reason", reason, "error", err.Error())
	}
}

func anyNeedsHeaders(filters []*destinationFilter) bool {
	for _, f := range filters {
		if f != nil && f.err == nil && f.compiled.NeedsHeaders() {
			return true
		}
	}
	return false
}

func lowerCaseHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			out[strings.ToLower(k)] = v[0]
		}
	}
	return out
}
