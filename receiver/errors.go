package receiver

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/hookgate/hookgate/internal/jsontext"
)

// rejection is a request the pipeline refuses: the status code, the audit reason, and
// the JSON body's title and message.
type rejection struct {
	status  int
	reason  string
	title   string
	message string
	// retryAfter, in seconds, for 429 and 503.
	retryAfter int
	// allow lists the methods, for 405.
	allow string
}

func reject(status int, reason, title, message string) *rejection {
	return &rejection{status: status, reason: reason, title: title, message: message}
}

func (r *rejection) Error() string { return r.reason + ": " + r.message }

// errorBody is every error response: {"error": "<short title>", "message": "<what to do>"}.
type errorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"requestId,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONCached answers 200 with v, leaving the caller's Cache-Control (public data).
func writeJSONCached(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

func writeRejection(w http.ResponseWriter, requestID string, r *rejection) {
	if r.allow != "" {
		w.Header().Set("Allow", r.allow)
	}
	if r.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(r.retryAfter))
	}
	writeJSON(w, r.status, errorBody{Error: r.title, Message: r.message, RequestID: requestID})
}

// writeAccepted answers an event it took (202) or already had (200) with the bytes
// json.Encoder writes for acceptedBody, appended without reflection: it is written once
// per event.
func writeAccepted(w http.ResponseWriter, status int, a acceptedBody) {
	buf := make([]byte, 0, 96+len(a.EventID))
	buf = append(buf, `{"uuid":`...)
	buf = jsontext.AppendString(buf, a.UUID)
	buf = append(buf, `,"eventId":`...)
	buf = jsontext.AppendString(buf, a.EventID)
	buf = append(buf, `,"status":`...)
	buf = jsontext.AppendString(buf, a.Status)
	if a.Duplicate {
		buf = append(buf, `,"duplicate":true`...)
	}
	buf = append(buf, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}
