package receiver

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowUnauthenticatedBodiesDoNotStarveAPartner runs a receiver process while 200
// clients, each from its own address, trickle 1 MiB bodies that will fail authentication
// (GitHub signatures are checked over the body), and a partner sends events. The
// receiver's memory stays bounded by its in-flight body budget and the partner's events
// are accepted, or refused only with 503 and Retry-After. Peak RSS and the partner's p99
// are logged.
func TestSlowUnauthenticatedBodiesDoNotStarveAPartner(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	child := startChild(t, writeRoutingFile(t, dir, f.table), filepath.Join(dir, "data"), "HOOKGATE_TEST_TRUSTED_PROXIES=127.0.0.1/32")
	defer child.terminate(t)
	addr := strings.TrimPrefix(child.url, "http://")
	const attackers, runFor = 200, 10 * time.Second
	deadline := time.Now().Add(runFor)

	var wg sync.WaitGroup
	chunk := make([]byte, 16<<10)
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				fmt.Fprintf(conn, "POST /api/webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Forwarded-For: 10.%d.%d.1\r\nX-Hub-Signature-256: sha256=00\r\nX-GitHub-Delivery: d\r\nContent-Length: %d\r\n\r\n",
					i/250, i%250, 1<<20)
				sent := 0
				for sent < 1<<20 && time.Now().Before(deadline) {
					n, err := conn.Write(chunk[:min(len(chunk), 1<<20-sent)])
					if err != nil {
						break // answered (503) and closed
					}
					sent += n
					time.Sleep(150 * time.Millisecond)
				}
				_ = conn.Close()
			}
		}()
	}

	var mu sync.Mutex
	var latencies []time.Duration
	statuses := map[int]int{}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				body := []byte(fmt.Sprintf(`{"id":"partner-%d-%d","type":"order.created","pad":%q}`, w, i, strings.Repeat("p", 1000)))
				req := newRequest(t, http.MethodPost, child.url+"/api/webhooks/stored", partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body)
				req.Header.Set("X-Forwarded-For", "203.0.113.7")
				started := time.Now()
				resp, err := client.Do(req)
				took := time.Since(started)
				if err != nil {
					t.Errorf("partner request failed: %v", err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				latencies = append(latencies, took)
				mu.Unlock()
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	peak := vmHWM(t, child.cmd.Process.Pid)
	slices.Sort(latencies)
	p99 := latencies[len(latencies)*99/100]
	t.Logf("%d slow unauthenticated clients for %s; partner: %d requests %v, p99 %s; receiver peak RSS %d MiB",
		attackers, runFor, len(latencies), statuses, p99.Round(time.Millisecond), peak>>20)
	for code, n := range statuses {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("partner got %d x %d", n, code)
		}
	}
	if statuses[http.StatusAccepted] < len(latencies)*9/10 {
		t.Errorf("only %d of %d partner events accepted", statuses[http.StatusAccepted], len(latencies))
	}
	// 64 MiB of bodies at most, plus the process itself: far from 200 MiB of bodies.
	if peak > 200<<20 {
		t.Errorf("peak RSS %d MiB: the in-flight body budget did not hold", peak>>20)
	}
}

// vmHWM is a process's peak resident set size, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
