package receiver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadBody: a declared length is read in one piece, a body shorter than it is a 400,
// and a body without a length (chunked) is cut off at the limit with a 413.
func TestReadBody(t *testing.T) {
	const limit = 16
	cases := []struct {
		name       string
		body       string
		length     int64 // -1: unknown, as for chunked requests
		wantBody   string
		wantStatus int
	}{
		{"declared length", `{"id":"a"}`, 10, `{"id":"a"}`, 0},
		{"empty", ``, 0, ``, 0},
		{"shorter than declared", `{"id"`, 10, ``, http.StatusBadRequest},
		{"declared over the limit", strings.Repeat("x", 20), 20, ``, http.StatusRequestEntityTooLarge},
		{"chunked within the limit", `{"id":"b"}`, -1, `{"id":"b"}`, 0},
		{"chunked over the limit", strings.Repeat("x", 40), -1, ``, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(strings.NewReader(tc.body)))
			r.ContentLength = tc.length
			body, rej := readBody(httptest.NewRecorder(), r, limit)
			switch {
			case tc.wantStatus != 0 && (rej == nil || rej.status != tc.wantStatus):
				t.Fatalf("got %v, want a %d", rej, tc.wantStatus)
			case tc.wantStatus == 0 && (rej != nil || string(body) != tc.wantBody):
				t.Fatalf("got %q (%v), want %q", body, rej, tc.wantBody)
			}
		})
	}
}
