package delivery

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/store"
)

// capturedLog keeps every line a logr.Logger writes up to a verbosity.
type capturedLog struct {
	mu    sync.Mutex
	lines []string
}

func captureLog(verbosity int) (logr.Logger, *capturedLog) {
	c := &capturedLog{}
	return funcr.New(func(prefix, args string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.lines = append(c.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: verbosity}), c
}

func (c *capturedLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

var oneAttempt = routing.Retry{MaxAttempts: 1, InitialBackoff: routing.Duration(time.Millisecond), MaxBackoff: routing.Duration(time.Millisecond)}

// TestEgressPolicyOnDeliveries dials real loopback sinks through the guard: a url or
// Service destination on loopback is refused unless the allow list holds it, by address
// or by a name that resolves to it, and the sink then receives nothing.
func TestEgressPolicyOnDeliveries(t *testing.T) {
	var loopback4 = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cases := []struct {
		name      string
		host      string // replaces 127.0.0.1 in the sink's URL when set
		service   bool
		allow     []netip.Prefix
		delivered bool
	}{
		{name: "url destination on 127.0.0.1, no allow list", allow: nil},
		{name: "url destination on 127.0.0.1, 127.0.0.0/8 allowed", allow: loopback4, delivered: true},
		{name: "url destination on localhost, no allow list", host: "localhost", allow: nil},
		{name: "url destination on localhost, 127.0.0.0/8 allowed", host: "localhost", allow: loopback4, delivered: true},
		{name: "url destination on 127.0.0.1, only 10.0.0.0/8 allowed", allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "service destination on loopback, no allow list", service: true, allow: nil},
		{name: "service destination on loopback, 127.0.0.0/8 allowed", service: true, allow: loopback4, delivered: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
			defer sink.Close()
			dest := sink.URL + "/hook"
			if c.host != "" {
				dest = strings.Replace(dest, "127.0.0.1", c.host, 1)
			}
			h := newHarness(t, dest, oneAttempt, 2*time.Second)
			setDestination(h, func(d *routing.Destination) { d.Service = c.service })
			h.egress = egress.New(egress.Config{AllowCIDRs: c.allow})
			var logged *capturedLog
			h.log, logged = captureLog(0)
			final, attempts := h.run(t, h.ingest(t, `{"id":"evt_1"}`).UUID)
			if c.delivered {
				if final.Phase != store.PhaseDelivered || calls.Load() != 1 {
					t.Fatalf("phase %s, lastError %q, sink saw %d requests; want Delivered", final.Phase, final.LastError, calls.Load())
				}
				return
			}
			if final.Phase != store.PhaseFailed || len(attempts) != 1 || final.LastError != "destination refused by egress policy" {
				t.Fatalf("phase %s after %d attempts, lastError %q; want Failed at once, refused by egress policy", final.Phase, len(attempts), final.LastError)
			}
			if calls.Load() != 0 {
				t.Fatalf("the sink received %d requests from a refused destination", calls.Load())
			}
			// The admin sees the refusal at Info level, with the address and the rule.
			if out := logged.String(); !strings.Contains(out, "delivery refused by the egress policy") || !strings.Contains(out, "loopback address") {
				t.Errorf("the refusal is not logged at Info level:\n%s", out)
			}
		})
	}
}

// TestLastErrorIsAClass makes real failing attempts to URLs carrying a secret: lastError
// is exactly the class, and names no URL, query string or address; the log (V(1)) has the
// full error without the query string.
func TestLastErrorIsAClass(t *testing.T) {
	const secretQuery = "/hook?token=SECRET123"
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	hanging := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hanging.Close()
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer untrusted.Close()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer unavailable.Close()
	resetting := resetServer(t)

	cases := []struct {
		name, url, want string
		signingSecret   string
		logsURL         bool // the log names the destination's path
	}{
		{name: "connection refused", url: "http://" + closedAddr + secretQuery, want: "connection refused", logsURL: true},
		{name: "timeout", url: hanging.URL + secretQuery, want: "timeout", logsURL: true},
		{name: "tls error", url: untrusted.URL + secretQuery, want: "tls error", logsURL: true},
		{name: "connection reset", url: "http://" + resetting + secretQuery, want: "connection reset", logsURL: true},
		{name: "HTTP 503", url: unavailable.URL + secretQuery, want: "HTTP 503", logsURL: true},
		{name: "egress refusal", url: "http://169.254.169.254" + secretQuery, want: "destination refused by egress policy", logsURL: true},
		{name: "invalid destination", url: "ftp://" + closedAddr + secretQuery, want: "invalid destination", logsURL: true},
		{name: "signing key unusable", url: unavailable.URL + secretQuery, signingSecret: "whsec_!!not-base64!!", want: "signing key unusable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.url, oneAttempt, 300*time.Millisecond)
			if c.signingSecret != "" {
				setDestination(h, func(d *routing.Destination) { d.SigningSecret = routing.SecretValue(c.signingSecret) })
			}
			var logged *capturedLog
			h.log, logged = captureLog(1)
			final, _ := h.run(t, h.ingest(t, `{"id":"evt_1"}`).UUID)
			if final.LastError != c.want {
				t.Fatalf("lastError %q, want %q", final.LastError, c.want)
			}
			for _, leak := range []string{"SECRET123", "token=", "127.0.0.1", "169.254"} {
				if strings.Contains(final.LastError, leak) {
					t.Errorf("lastError %q contains %q", final.LastError, leak)
				}
			}
			out := logged.String()
			t.Logf("log: %s", out)
			if strings.Contains(out, "SECRET123") {
				t.Errorf("the log holds the query string's secret:\n%s", out)
			}
			if !strings.Contains(out, `"class"="`+c.want+`"`) {
				t.Errorf("no log line with the class %q:\n%s", c.want, out)
			}
			if c.logsURL && !strings.Contains(out, "/hook") {
				t.Errorf("the log does not name the destination's path:\n%s", out)
			}
		})
	}
}

// resetServer accepts connections and resets them (RST) as soon as the request arrives.
func resetServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Read(make([]byte, 1024))
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
		}
	}()
	return ln.Addr().String()
}

func setDestination(h *harness, mutate func(*routing.Destination)) {
	t := *h.holder.Current()
	t.Endpoints = append([]routing.Endpoint(nil), t.Endpoints...)
	d := *t.Endpoints[0].Destination
	mutate(&d)
	t.Endpoints[0].Destination = &d
	t.Finalize(nil)
	h.holder.Swap(&t)
}

// The classes of errors that no local socket produces reliably.
func TestClassify(t *testing.T) {
	opErr := func(err error) error {
		return &url.Error{Op: "Post", URL: "http://10.0.0.1/hook?token=SECRET123", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	cases := []struct {
		err  error
		want string
	}{
		{opErr(&net.DNSError{Err: "no such host", Name: "sink.example", IsNotFound: true}), "dns error"},
		{opErr(&net.DNSError{Err: "i/o timeout", Name: "sink.example", IsTimeout: true}), "dns error"},
		{&url.Error{Op: "Post", URL: "https://x", Err: x509.UnknownAuthorityError{}}, "tls error"},
		{&url.Error{Op: "Post", URL: "https://x", Err: errors.New("remote error: tls: handshake failure")}, "tls error"},
		{&url.Error{Op: "Post", URL: "https://x", Err: errors.New("http: server gave HTTP response to HTTPS client")}, "tls error"},
		{&url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}, "timeout"},
		{opErr(timeoutError{}), "timeout"},
		{opErr(syscall.ECONNREFUSED), "connection refused"},
		{opErr(syscall.ECONNRESET), "connection reset"},
		{&url.Error{Op: "Post", URL: "http://x", Err: io.EOF}, "connection reset"},
		{opErr(&egress.RefusedError{Addr: "10.0.0.1", Kind: egress.URL, Rule: "private range"}), "destination refused by egress policy"},
		{errInvalidDestination, "invalid destination"},
		{errSigningKeyUnusable, "signing key unusable"},
		{opErr(syscall.EHOSTUNREACH), "network error"},
		{errors.New("something else"), "network error"},
	}
	for _, c := range cases {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if got := describe(result{code: 418}); got != "HTTP 418" {
		t.Errorf("describe(418) = %q", got)
	}
	if got := describe(result{code: 204}); got != "" {
		t.Errorf("describe(204) = %q", got)
	}
}

// timeoutError is a net.Error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://127.0.0.1:9/hook?token=SECRET123":          "http://127.0.0.1:9/hook",
		"https://user:SECRET123@sink.example/a/b?x=1#frag": "https://user@sink.example/a/b",
		"http://sink.example/?":                            "http://sink.example/",
		"::not a url":                                      "(unparseable URL)",
	} {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", raw, got, want)
		}
	}
	err := &url.Error{Op: "Post", URL: "http://127.0.0.1:9/hook?token=SECRET123", Err: fmt.Errorf("dial tcp 127.0.0.1:9: %w", syscall.ECONNREFUSED)}
	if got := redactError(err); strings.Contains(got, "SECRET123") || !strings.Contains(got, "/hook") {
		t.Errorf("redactError: %s", got)
	}
}

// TestServiceDestinationReachesOnlyItsService: the operator publishes a Service
// destination with its Service's own addresses; a delivery whose name resolves to any
// other private address (another tenant's pod, say) fails at once, refused by the egress
// policy, while one to the Service's address is let through to the network.
func TestServiceDestinationReachesOnlyItsService(t *testing.T) {
	// 10.255.255.1 is not routed here: an attempt let through ends in a timeout.
	const target = "http://10.255.255.1:8080/hook"
	for _, c := range []struct {
		name    string
		addrs   []string
		refused bool
	}{
		{"another tenant's address", []string{"10.96.14.2"}, true},
		{"an address that does not parse", []string{"billing.tenant-b"}, true},
		{"the Service's own address", []string{"10.96.14.2", "10.255.255.1"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, target, oneAttempt, 300*time.Millisecond)
			setDestination(h, func(d *routing.Destination) { d.Service, d.Addresses = true, c.addrs })
			h.egress = egress.New(egress.Config{})
			var logged *capturedLog
			h.log, logged = captureLog(0)
			final, attempts := h.run(t, h.ingest(t, `{"id":"evt_1"}`).UUID)
			if len(attempts) != 1 {
				t.Fatalf("%d attempts, want 1", len(attempts))
			}
			refused := final.LastError == "destination refused by egress policy"
			if refused != c.refused {
				t.Fatalf("phase %s, lastError %q; want refused by egress policy: %v", final.Phase, final.LastError, c.refused)
			}
			if c.refused && !strings.Contains(logged.String(), "not an address of the destination's Service") {
				t.Errorf("the refusal's rule is not logged:\n%s", logged)
			}
		})
	}
}
