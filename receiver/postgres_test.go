package receiver

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store/postgres/pgtest"
)

// TestTwoReceiversShareOnePostgreSQLStore: two receivers on one database share dedup and
// status. The same event id sent to each gives one 202 and one 200 duplicate with the
// original uuid; the status of an event stored through one is answered by the other.
func TestTwoReceiversShareOnePostgreSQLStore(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	f := newFixture(t)
	onDatabase := func(o *Options) { o.DatabaseURL = dsn }
	first, second := startTestReceiver(t, f.table, onDatabase), startTestReceiver(t, f.table, onDatabase)
	body := []byte(`{"id":"evt_shared","type":"order.created"}`)
	send := func(rcv *testReceiver) response {
		return do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
	}
	stored := send(first)
	if stored.status != http.StatusAccepted {
		t.Fatalf("first receiver: %d %s", stored.status, stored.raw)
	}
	dup := send(second)
	if dup.status != http.StatusOK || dup.body["duplicate"] != true || dup.body["uuid"] != stored.body["uuid"] {
		t.Fatalf("second receiver, same id: %d %s; want 200 duplicate of %v", dup.status, dup.raw, stored.body["uuid"])
	}
	status := do(t, nil, newRequest(t, http.MethodGet, second.url+"/api/webhooks/status?eventId="+url.QueryEscape("evt_shared"), map[string]string{"x-api-key": acmeKey}, nil))
	if status.status != http.StatusOK || status.body["uuid"] != stored.body["uuid"] || status.body["status"] != "Stored" {
		t.Fatalf("status through the other receiver: %d %s", status.status, status.raw)
	}
}

func TestDatabaseURLIsNeverEchoed(t *testing.T) {
	for _, c := range []struct{ raw, file string }{
		{"mysql://root:hunter2@db/x", ""},
		{"postgres://app:hunter2@/x", ""},
		{"postgres://app@db:5432/x", "/nonexistent/password"},
	} {
		_, err := databaseURL(c.raw, c.file)
		if err == nil {
			t.Fatalf("%q accepted", c.raw)
		}
		if msg := err.Error(); containsAny(msg, "hunter2", "app@", "/nonexistent") {
			t.Errorf("error %q repeats part of the URL or file", msg)
		}
	}
	got, err := databaseURL("postgres://app@db:5432/x?sslmode=disable", writeTemp(t, "s3cret\n"))
	if err != nil || got != "postgres://app:s3cret@db:5432/x?sslmode=disable" {
		t.Fatalf("password file: %q %v", got, err)
	}
}

func containsAny(s string, parts ...string) bool {
	for _, p := range parts {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
