package receiver

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// encodedAnswer is what writeJSON writes for the body: the reference writeAccepted must
// match byte for byte.
func encodedAnswer(a acceptedBody) []byte {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(a)
	return b.Bytes()
}

func checkAnswer(t *testing.T, a acceptedBody) {
	t.Helper()
	rec := httptest.NewRecorder()
	writeAccepted(rec, 202, a)
	if got, want := rec.Body.Bytes(), encodedAnswer(a); !bytes.Equal(got, want) {
		t.Fatalf("writeAccepted(%+v) = %q, json.Encoder writes %q", a, got, want)
	}
	if rec.Code != 202 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("writeAccepted: status %d, headers %v", rec.Code, rec.Header())
	}
}

func TestWriteAccepted(t *testing.T) {
	for _, a := range []acceptedBody{
		{UUID: "0190a6f2-7c3b-7def-8a12-3456789abcde", EventID: "evt_1", Status: "Queued"},
		{UUID: "u", EventID: "", Status: "Stored", Duplicate: true},
		{UUID: "u", EventID: `quote " and \ backslash`, Status: "Queued"},
		{UUID: "u", EventID: "<script>&", Status: "Queued"},
		{UUID: "u", EventID: "é \u2028 line separator", Status: "Queued"},
		{UUID: "u", EventID: "invalid \xff utf-8", Status: "Queued"},
		{UUID: "u", EventID: "tab\there", Status: "Delivered"},
	} {
		checkAnswer(t, a)
	}
}

// FuzzWriteAccepted: whatever the event id, the hand-written answer is encoding/json's.
func FuzzWriteAccepted(f *testing.F) {
	for _, s := range []string{"evt_1", `a"b`, "<&>", "\u2029", "\xc3"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, id string, duplicate bool) {
		checkAnswer(t, acceptedBody{UUID: "0190a6f2-7c3b-7def-8a12-3456789abcde", EventID: id, Status: "Queued", Duplicate: duplicate})
	})
}
