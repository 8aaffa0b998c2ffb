package receiver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookgate/hookgate/internal/routing"
)

// testReceiver is a real receiver (Run) on loopback ports with a store in a temp dir.
type testReceiver struct {
	url, probeURL string
	dataDir       string
	audit         *syncBuffer
	cancel        context.CancelFunc
	done          chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error { return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// writeRoutingFile writes a table as a plain JSON routing file.
func writeRoutingFile(t testing.TB, dir string, table *routing.Table) string {
	t.Helper()
	data, err := json.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "routing.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startTestReceiver(t testing.TB, table *routing.Table, configure func(*Options)) *testReceiver {
	t.Helper()
	dir := t.TempDir()
	r := &testReceiver{dataDir: filepath.Join(dir, "data"), audit: &syncBuffer{}, done: make(chan error, 1)}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	ready := make(chan struct{})
	opts := DefaultOptions()
	opts.RoutingFile = writeRoutingFile(t, dir, table)
	opts.Listen, opts.ProbeListen, opts.DataDir, opts.APIListen = "127.0.0.1:0", "127.0.0.1:0", r.dataDir, ""
	opts.DestinationAllowCIDRs = loopbackSinks // egress_test.go: deliveries and JWKS fetches reach loopback test servers
	opts.Log = testr.NewWithInterface(t, testr.Options{Verbosity: 0})
	opts.AuditLog = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), r.audit, zapcore.InfoLevel)).Named("audit")
	opts.Ready = func(webhook, probe string) {
		r.url, r.probeURL = "http://"+webhook, "http://"+probe
		close(ready)
	}
	if configure != nil {
		configure(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Run(ctx, opts) }()
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("receiver did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("receiver did not start within 10s")
	}
	t.Cleanup(r.stop)
	return r
}

func (r *testReceiver) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		panic(fmt.Sprintf("receiver stopped with an error: %v", err))
	}
	r.cancel = nil
}

// response is what a test needs of an answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t testing.TB, client *http.Client, req *http.Request) response {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// partnerHMACHeaders signs body as the seed's partner-events-api describes.
func partnerHMACHeaders(apiKey, secret string, ts time.Time, body []byte) map[string]string {
	timestamp := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp + "."))
	m.Write(body)
	return map[string]string{
		"Content-Type":        "application/json",
		"x-api-key":           apiKey,
		"x-timestamp":         timestamp,
		"x-webhook-signature": "sha256=" + hex.EncodeToString(m.Sum(nil)),
	}
}

func newRequest(t testing.TB, method, url string, headers map[string]string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// clientFrom sends from a chosen loopback address, to play a proxy or a partner.
func clientFrom(local string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}, Timeout: 10 * time.Second}
}
