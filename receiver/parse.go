package receiver

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hookgate/hookgate/internal/filter"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

// parsedEvent is what the pipeline needs from a body: the partner's id and the type.
type parsedEvent struct {
	id  string
	typ string
	// idFromHeader: the id came from a request header rather than the body.
	idFromHeader bool
	// body is the raw body, one valid JSON object, with its top-level members indexed:
	// values are read out of it in place.
	body jsonObject
}

// parseEvent checks that the body is a JSON object, finds the event id and type where
// the endpoint's verification scheme puts them (docs/reference.md), and checks the type.
func parseEvent(ep *routing.Endpoint, scheme *verify.Scheme, h http.Header, body []byte) (parsedEvent, *rejection) {
	doc, ok := scanObject(body)
	if !ok {
		return parsedEvent{}, reject(http.StatusBadRequest, "invalid_json", "Bad request", "the body must be one JSON object")
	}
	id, idSource, idUTF8 := eventID(ep, scheme, h, doc)
	typ, typSource, typUTF8 := firstValue(scheme.EventType, h, doc)
	ev := parsedEvent{id: id, typ: typ, idFromHeader: idSource.Header != "", body: doc}
	if len(ev.id) > maxEventIDLength {
		return ev, reject(http.StatusBadRequest, "invalid_event_id", "Bad request", "the event id is longer than "+itoa(maxEventIDLength)+" bytes")
	}
	// Ids and types travel on as headers and labels: a control character could add a
	// header of its own to a delivery.
	if hasControl(ev.id) {
		return ev, reject(http.StatusBadRequest, "invalid_event_id", "Bad request", "the event id contains control characters")
	}
	// A store may refuse text that is not UTF-8 (PostgreSQL does, at every retry), and
	// decoding would replace the bad bytes, so that two different ids became one.
	if !idUTF8 {
		return ev, reject(http.StatusBadRequest, "invalid_event_id", "Bad request", "the event id ("+describeSource(idSource)+") is not valid UTF-8")
	}
	if len(ev.typ) > maxEventTypeLength {
		return ev, reject(http.StatusUnprocessableEntity, "event_type_too_long", "Unprocessable event", "the event type is longer than "+itoa(maxEventTypeLength)+" bytes")
	}
	if hasControl(ev.typ) {
		return ev, reject(http.StatusBadRequest, "invalid_event_type", "Bad request", "the event type contains control characters")
	}
	if !typUTF8 {
		return ev, reject(http.StatusBadRequest, "invalid_event_type", "Bad request", "the event type ("+describeSource(typSource)+") is not valid UTF-8")
	}
	if len(ep.EventTypes) > 0 && !filter.MatchesPattern(ep.EventTypes, ev.typ) {
		if ev.typ == "" {
			return ev, reject(http.StatusUnprocessableEntity, "event_type_missing", "Unprocessable event", "this endpoint accepts only typed events: set the body's type field")
		}
		return ev, reject(http.StatusUnprocessableEntity, "event_type_not_allowed", "Unprocessable event", "this endpoint does not accept events of type "+strconv.Quote(ev.typ))
	}
	return ev, nil
}

func eventID(ep *routing.Endpoint, scheme *verify.Scheme, h http.Header, doc jsonObject) (string, verify.Source, bool) {
	switch {
	case ep.Idempotency.Header != "":
		return firstValue([]verify.Source{verify.FromHeader(ep.Idempotency.Header)}, h, doc)
	case ep.Idempotency.JSONPath != "":
		return firstValue([]verify.Source{verify.FromBody(ep.Idempotency.JSONPath)}, h, doc)
	}
	return firstValue(scheme.EventID, h, doc)
}

// firstValue is the first of sources that has a value, that source, and whether the
// value was valid UTF-8 as sent (a body string's escapes included).
func firstValue(sources []verify.Source, h http.Header, doc jsonObject) (string, verify.Source, bool) {
	for _, src := range sources {
		if src.Header != "" {
			if v := h.Get(src.Header); v != "" {
				return v, src, utf8.ValidString(v)
			}
			continue
		}
		tok := doc.token(src.JSONPath)
		if v := renderScalar(tok); v != "" {
			return v, src, validUTF8Token(tok)
		}
	}
	return "", verify.Source{}, true
}

// describeSource names where a value was found, for the sender: a header name or a
// body path, both from the endpoint or its scheme, never from the request.
func describeSource(src verify.Source) string {
	if src.Header != "" {
		return "header " + src.Header
	}
	return "body field " + strings.TrimPrefix(strings.TrimPrefix(src.JSONPath, "$"), ".")
}

// hasControl reports whether s holds an ASCII control character (DEL included).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
