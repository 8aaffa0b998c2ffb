package receiver

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Server limits: every request is bounded in header size, time and body size.
const (
	maxHeaderBytes    = 32 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	// maxEventIDLength bounds the partner's event id we store and index.
	maxEventIDLength = 256
	// maxEventTypeLength bounds a partner-supplied type, which is stored, shown and put
	// into WebhookEvents: a megabyte type must not reach etcd.
	maxEventTypeLength = 256
)

// readBody reads at most limit bytes; more is a 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *rejection) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	if r.ContentLength >= 0 {
		// One allocation of the declared size, which the body budget has reserved
		// already (net/http ends the body there), instead of io.ReadAll's doublings.
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, reject(http.StatusBadRequest, "body_unreadable", "Bad request", "the request body could not be read completely")
		}
		return body, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, tooLarge(limit)
		}
		return nil, reject(http.StatusBadRequest, "body_unreadable", "Bad request", "the request body could not be read completely")
	}
	return body, nil
}

// storeTimeout bounds one ingest's write: a database that stopped answering costs a
// partner at most this long before a 503, never a 2xx for an event that is not durable.
const storeTimeout = 10 * time.Second

// storeUnavailable is a 503 for a store that cannot write or read now (a PostgreSQL
// outage, a full disk): the partner retries, and nothing was acknowledged.
func storeUnavailable(message string) *rejection {
	rej := reject(http.StatusServiceUnavailable, "store_unavailable", "Service unavailable", message)
	rej.retryAfter = 5
	return rej
}

func tooLarge(limit int64) *rejection {
	return reject(http.StatusRequestEntityTooLarge, "body_too_large", "Payload too large",
		"the body is larger than this endpoint accepts ("+formatBytes(limit)+")")
}

// checkContentType accepts application/json and any +json type, with parameters.
func checkContentType(r *http.Request) *rejection {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && (mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")) {
		return nil
	}
	return reject(http.StatusUnsupportedMediaType, "unsupported_media_type", "Unsupported media type",
		"send the event as JSON with Content-Type: application/json")
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	default:
		return itoa(n) + " bytes"
	}
}
