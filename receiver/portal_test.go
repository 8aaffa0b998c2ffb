package receiver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/testcluster"
)

// TestPortalServesStaticFilesUnderAStrictPolicy: the page, its script and style come
// from the binary with a Content-Security-Policy that allows no inline script and no
// other origin, and the HTML holds no inline script or handler.
func TestPortalServesStaticFilesUnderAStrictPolicy(t *testing.T) {
	rcv := startTestReceiver(t, newFixture(t).table, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if r := do(t, noRedirect, newRequest(t, http.MethodGet, rcv.url+"/portal", nil, nil)); r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/portal/" {
		t.Fatalf("/portal: %d %s", r.status, r.header.Get("Location"))
	}
	for _, f := range []struct{ path, contentType string }{{"/portal/", "text/html"}, {"/portal/portal.js", "javascript"}, {"/portal/portal.css", "text/css"}} {
		r := do(t, nil, newRequest(t, http.MethodGet, rcv.url+f.path, nil, nil))
		if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), f.contentType) {
			t.Errorf("%s: %d %s", f.path, r.status, r.header.Get("Content-Type"))
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", f.path, csp)
		}
	}
	html, err := portalFiles.ReadFile("portal/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).Match(html) || regexp.MustCompile(`\son[a-z]+=`).Match(html) || bytes.Contains(html, []byte("http")) && regexp.MustCompile(`(src|href)="https?:`).Match(html) {
		t.Fatal("index.html has an inline script, an inline handler or a resource from another origin")
	}
}

// TestPortalInABrowser drives the portal in Debian's Chromium with playwright-core
// (hack/portal-test): sign in, send a test event through the form (signed in the page),
// see it Delivered in the log with its attempt, see an XSS payload as text, retry a
// Failed event and see a new attempt, check a status by id, and find that another
// partner's key sees none of it. The page's signature must be the seed's openssl one.
// The log page's screenshot goes to bin/portal/event-log.png.
func TestPortalInABrowser(t *testing.T) {
	dir := filepath.Join(testcluster.RepoRoot(), "hack", "portal-test")
	missing := ""
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = "hack/portal-test has no node_modules: run 'make node-deps'"
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		missing = "Debian's chromium is not installed (apt install chromium)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
	defer failing.Close()
	f := newFixture(t)
	f.forward("forwarded", ok.URL+"/hooks")
	f.forward("failing", failing.URL+"/hooks")
	rcv := startTestReceiver(t, f.table, nil)
	body := []byte(`{"id":"evt_portal_failed","type":"order.updated"}`)
	if r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/failing", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body)); r.status != http.StatusAccepted {
		t.Fatalf("ingest: %d", r.status)
	}
	waitStatus(t, rcv, "evt_portal_failed", "Failed")

	screenshot := filepath.Join(testcluster.RepoRoot(), "bin", "portal", "event-log.png")
	if err := os.MkdirAll(filepath.Dir(screenshot), 0o755); err != nil {
		t.Fatal(err)
	}
	const signTimestamp, signBody = "1700000000", `{"type":"order.created","data":{"orderId":"ORD-456"}}`
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "portal-test.js"))
	cmd.Env = append(os.Environ(), "PORTAL_URL="+rcv.url+"/portal/", "API_KEY="+acmeKey, "SIGNING_SECRET="+acmeSecret,
		"OTHER_API_KEY="+foreignKey, "FAILED_EVENT_ID=evt_portal_failed", "SCREENSHOT="+screenshot,
		"SIGN_TIMESTAMP="+signTimestamp, "SIGN_BODY="+signBody)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	findings := map[string]map[string]any{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			if step, _ := m["step"].(string); step != "" {
				findings[step] = m
				t.Logf("portal: %s", sc.Text())
			}
		}
	}
	if err != nil {
		t.Fatalf("the browser run failed: %v\n%s\n%s", err, out, stderr.String())
	}
	for _, step := range []string{"signed in", "test event sent", "delivered, attempts shown, payload rendered as text", "screenshot", "retried", "status checked", "usage", "other partner"} {
		if findings[step] == nil {
			t.Errorf("the browser run did not get to %q", step)
		}
	}
	if _, err := os.Stat(screenshot); err != nil {
		t.Errorf("no screenshot: %v", err)
	}
	// The seed's recipe: echo -n "$timestamp.$body" | openssl dgst -sha256 -hmac "$secret".
	openssl := exec.Command("bash", "-c", `echo -n "$TS.$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //'`)
	openssl.Env = append(os.Environ(), "TS="+signTimestamp, "BODY="+signBody, "SECRET="+acmeSecret)
	want, err := openssl.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := findings["signature"]["signature"].(string); got == "" || got != strings.TrimSpace(string(want)) {
		t.Fatalf("the page signs %q, the seed's openssl recipe %q", got, strings.TrimSpace(string(want)))
	}
}
