package receiver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
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

// TestBodyOverTheClientShare: a body larger than one address's share of the budget (an
// eighth) but within its endpoint's maxBodyBytes is served when the receiver has the
// memory; one the budget could never hold is 413, naming the limit, not a 503 that no
// retry would ever get past.
func TestBodyOverTheClientShare(t *testing.T) {
	const mib = 1 << 20
	big := func(id string, size int) []byte {
		prefix := `{"id":"` + id + `","type":"x","data":"`
		return []byte(prefix + strings.Repeat("a", size-len(prefix)-2) + `"}`)
	}
	for _, tc := range []struct {
		name     string
		budget   int64
		path     string
		body     []byte
		chunked  bool
		want     int
		wantText string
	}{
		{name: "9 MiB from a partner, 64 MiB budget", budget: 64 * mib, path: "/api/webhooks/stored", body: big("big-1", 9*mib), want: http.StatusAccepted},
		{name: "31 MiB from a partner, 64 MiB budget", budget: 64 * mib, path: "/api/webhooks/stored", body: big("big-2", 31*mib), want: http.StatusAccepted},
		{name: "9 MiB from a partner, 8 MiB budget", budget: 8 * mib, path: "/api/webhooks/stored", body: big("big-3", 9*mib),
			want: http.StatusRequestEntityTooLarge, wantText: "(8 MiB)"},
		{name: "9 MiB before authentication, 16 MiB budget", budget: 16 * mib, path: "/api/webhooks/github", body: big("big-4", 9*mib),
			want: http.StatusRequestEntityTooLarge, wantText: "(8 MiB)"},
		{name: "no Content-Length, counted at the endpoint's 32 MiB, 16 MiB budget", budget: 16 * mib, path: "/api/webhooks/stored", body: big("small", 1024), chunked: true,
			want: http.StatusRequestEntityTooLarge, wantText: "without Content-Length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for i := range f.table.Endpoints {
				f.table.Endpoints[i].MaxBodyBytes = 32 * mib
			}
			rcv := startTestReceiver(t, f.table, func(o *Options) { o.MaxInflightBodyBytes = tc.budget })
			h := partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), tc.body)
			if tc.path == "/api/webhooks/github" {
				h = map[string]string{"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + hexMAC(endpointSecret, string(tc.body)), "X-GitHub-Delivery": "gh-big", "X-GitHub-Event": "push"}
			}
			send := func() response {
				req := newRequest(t, http.MethodPost, rcv.url+tc.path, h, tc.body)
				if tc.chunked {
					req.ContentLength, req.Body = -1, io.NopCloser(bytes.NewReader(tc.body))
				}
				return do(t, nil, req)
			}
			// Retried as a client would on 503: the answer must not stay 503.
			r := send()
			for i := 0; i < 2 && r.status == http.StatusServiceUnavailable; i++ {
				time.Sleep(time.Second)
				r = send()
			}
			if r.status != tc.want {
				t.Fatalf("%d bytes: %d %.200s, want %d", len(tc.body), r.status, r.raw, tc.want)
			}
			if msg, _ := r.body["message"].(string); !strings.Contains(msg, tc.wantText) {
				t.Errorf("message %q, want it to contain %q", msg, tc.wantText)
			}
		})
	}
}
