package receiver

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBodyBudget holds bodies open on raw connections. With an 8 MiB budget, requests not
// yet tied to a partner (GitHub signatures are checked over the body) may hold 4 MiB and
// one address 1 MiB: past that they are answered 503 with Retry-After at once, while a
// partner identified by its API key is still accepted, and an unknown API key is a 401
// without its body being read.
func TestBodyBudget(t *testing.T) {
	f := newFixture(t)
	rcv := startTestReceiver(t, f.table, func(o *Options) {
		o.MaxInflightBodyBytes = 8 << 20
		o.TrustedProxies, _ = ParseTrustedProxies("127.0.0.1/32,::1/128")
	})
	addr := strings.TrimPrefix(rcv.url, "http://")
	// slow opens a request that announces a 1 MiB body and sends only its first byte.
	slow := func(path, client string, headers ...string) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Forwarded-For: %s\r\n%sContent-Length: %d\r\n\r\n{",
			path, client, strings.Join(headers, ""), 1<<20)
		return conn
	}
	answer := func(conn net.Conn) (int, string) {
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer while the budget is spent: %v", err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	github := "X-Hub-Signature-256: sha256=00\r\nX-GitHub-Delivery: d\r\n"
	var held []net.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for i := range 4 {
		held = append(held, slow("/api/webhooks/github", fmt.Sprintf("198.51.100.%d", i+1), github))
	}
	time.Sleep(200 * time.Millisecond) // the four reservations are made
	if code, retry := answer(slow("/api/webhooks/github", "198.51.100.9", github)); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("a fifth unauthenticated 1 MiB body: %d (Retry-After %q), want 503 with Retry-After", code, retry)
	}
	if code, _ := answer(slow("/api/webhooks/stored", "198.51.100.10", "X-Api-Key: hgk_unknown\r\n")); code != http.StatusUnauthorized {
		t.Fatalf("an unknown API key: %d, want 401 before the body is read", code)
	}
	// One address: its second body is over its share.
	key := "X-Api-Key: " + acmeKey + "\r\nX-Timestamp: 1\r\nX-Webhook-Signature: sha256=00\r\n"
	held = append(held, slow("/api/webhooks/stored", "203.0.113.5", key))
	time.Sleep(100 * time.Millisecond)
	if code, retry := answer(slow("/api/webhooks/stored", "203.0.113.5", key)); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("a second 1 MiB body from one address: %d (Retry-After %q), want 503", code, retry)
	}
	// A partner at another address is accepted while unauthenticated bodies hold their half.
	body := []byte(`{"id":"evt_during_budget","type":"x"}`)
	h := partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body)
	h["X-Forwarded-For"] = "203.0.113.77"
	if r := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/stored", h, body)); r.status != http.StatusAccepted {
		t.Fatalf("a partner's event while unauthenticated bodies fill their share: %d %s", r.status, r.raw)
	}
}
