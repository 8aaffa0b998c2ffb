package receiver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/store"
	sys "golang.org/x/sys/unix"
)

// The test binary doubles as a receiver process: with HOOKGATE_TEST_CHILD set, TestMain
// runs Run instead of the tests, so that a test can SIGKILL a real receiver process.
func TestMain(m *testing.M) {
	if os.Getenv("HOOKGATE_TEST_CHILD") == "receiver" {
		os.Exit(childReceiver())
	}
	os.Exit(m.Run())
}

func childReceiver() int {
	if limit := os.Getenv("HOOKGATE_TEST_FSIZE"); limit != "" {
		// Play a full disk: writes past the limit fail with EFBIG instead of killing us.
		n, _ := strconv.ParseUint(limit, 10, 64)
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := DefaultOptions()
	opts.RoutingFile, opts.DataDir = os.Getenv("HOOKGATE_TEST_ROUTING"), os.Getenv("HOOKGATE_TEST_DATA")
	opts.Listen, opts.ProbeListen, opts.StoreRetention, opts.Log = "127.0.0.1:0", "127.0.0.1:0", time.Hour, logr.Discard()
	opts.Ready = func(webhook, probe string) { fmt.Printf("READY %s %s\n", webhook, probe) }
	if proxies := os.Getenv("HOOKGATE_TEST_TRUSTED_PROXIES"); proxies != "" {
		opts.TrustedProxies, _ = ParseTrustedProxies(proxies)
	}
	opts.DestinationAllowCIDRs = loopbackSinks // egress_test.go: the sinks are on loopback
	if engine := os.Getenv("HOOKGATE_TEST_ENGINE"); engine != "" {
		opts.EmbeddedEngine = engine
	}
	if reserve := os.Getenv("HOOKGATE_TEST_MIN_FREE"); reserve != "" {
		opts.MinFreeDiskBytes, _ = strconv.ParseInt(reserve, 10, 64)
	}
	err := Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		return 1
	}
	return 0
}

type childProcess struct {
	cmd           *exec.Cmd
	url, probeURL string
}

func startChild(t *testing.T, routingFile, dataDir string, env ...string) *childProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"HOOKGATE_TEST_CHILD=receiver", "HOOKGATE_TEST_ROUTING=" + routingFile, "HOOKGATE_TEST_DATA=" + dataDir}, env...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		for scanner.Scan() {
			if f := strings.Fields(scanner.Text()); len(f) == 3 && f[0] == "READY" {
				ready <- [2]string{f[1], f[2]}
			}
		}
	}()
	select {
	case addrs := <-ready:
		return &childProcess{cmd: cmd, url: "http://" + addrs[0], probeURL: "http://" + addrs[1]}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child receiver did not start")
	}
	return nil
}

func (c *childProcess) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

func (c *childProcess) terminate(t *testing.T) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("receiver exited with %v after SIGTERM", err)
	}
}

func crashTable(apiKey, secret string) *routing.Table {
	return &routing.Table{
		Partners: []routing.Partner{{Namespace: "p", Name: "acme", RateLimit: &routing.RateLimit{RequestsPerSecond: 1000000, Burst: 1000000},
			Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(apiKey), SigningSecret: routing.SecretValue(secret)}}}},
		Endpoints: []routing.Endpoint{{
			Namespace: "p", Name: "events", Path: "/api/webhooks/events",
			Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(72 * time.Hour)},
			MaxBodyBytes: 1 << 20,
			Destination:  &routing.Destination{URL: "http://127.0.0.1:9/", Timeout: routing.Duration(time.Second)},
		}},
	}
}

// load sends signed events from workers until stop closes, and returns the acknowledged
// ones (event id -> uuid) and counts.
func load(rcvURL, apiKey, secret string, workers, payloadBytes int, stop <-chan struct{}, prefix string) (map[string]string, int64, int64, int64) {
	var mu sync.Mutex
	acked := map[string]string{}
	var sent, failed, refused atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	filler := strings.Repeat("x", payloadBytes)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				body := []byte(fmt.Sprintf(`{"id":%q,"type":"order.created","data":{"pad":%q}}`, id, filler))
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, rcvURL+"/api/webhooks/events", strings.NewReader(string(body)))
				for k, v := range partnerHMACHeaders(apiKey, secret, time.Now(), body) {
					req.Header.Set(k, v)
				}
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				var answer acceptedBody
				_ = json.NewDecoder(resp.Body).Decode(&answer)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked[id] = answer.UUID
					mu.Unlock()
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return acked, sent.Load(), failed.Load(), refused.Load()
}

// TestCrashKeepsEveryAcknowledgedEvent kills a loaded receiver with SIGKILL, restarts it
// on the same data directory, and finds every event that got a 2xx.
func TestCrashKeepsEveryAcknowledgedEvent(t *testing.T) {
	for _, engine := range store.Engines {
		t.Run(engine, func(t *testing.T) { crashKeepsEveryAcknowledgedEvent(t, engine) })
	}
}

func crashKeepsEveryAcknowledgedEvent(t *testing.T, engine string) {
	const apiKey, secret = "hgk_crash", "whsec_crash"
	dir := t.TempDir()
	routingFile := writeRoutingFile(t, dir, crashTable(apiKey, secret))
	dataDir := filepath.Join(dir, "data")
	allAcked := map[string]string{}
	for round := 1; round <= 3; round++ {
		child := startChild(t, routingFile, dataDir, "HOOKGATE_TEST_ENGINE="+engine)
		stop := make(chan struct{})
		killAfter := time.Duration(300*round) * time.Millisecond
		time.AfterFunc(killAfter, func() { child.kill(); close(stop) })
		acked, sent, failed, refused := load(child.url, apiKey, secret, 32, 512, stop, fmt.Sprintf("r%d", round))
		t.Logf("round %d: SIGKILL after %s under load: %d sent, %d acknowledged, %d cut off by the kill, %d refused", round, killAfter, sent, len(acked), failed, refused)
		if len(acked) == 0 {
			t.Fatalf("round %d acknowledged nothing", round)
		}
		for k, v := range acked {
			allAcked[k] = v
		}
	}

	child := startChild(t, routingFile, dataDir, "HOOKGATE_TEST_ENGINE="+engine)
	found := 0
	for id, uuid := range allAcked {
		r := do(t, nil, newRequest(t, http.MethodGet, child.url+"/api/webhooks/status?eventId="+id, map[string]string{"x-api-key": apiKey}, nil))
		if r.status == http.StatusOK && r.body["uuid"] == uuid {
			found++
		} else {
			t.Errorf("acknowledged event %s (uuid %s) is lost: %d %s", id, uuid, r.status, r.raw)
		}
	}
	child.terminate(t)
	st, err := store.OpenEmbedded(dataDir, store.EmbeddedOptions{Engine: engine, Log: logr.Discard()})
	if err != nil {
		t.Fatalf("the store does not open after the crashes: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("the store is inconsistent: %v", err)
	}
	stored, _ := st.Count()
	t.Logf("%s, after 3 SIGKILLs: %d of %d acknowledged events found through the restarted receiver; %d events in the store; consistency check passed", engine, found, len(allAcked), stored)
}

// TestFullDiskNeverAcknowledges fills the disk: writes that cannot be made get 503,
// /readyz turns false, and every event that got a 2xx is there after a restart with
// room. On Pebble the disk is full as the store sees it: the free space it keeps in
// reserve is set 16 MiB below what the test's filesystem has free, so that what the
// load writes takes it there (Pebble itself stops the process on a write that fails, so
// the reserve is what keeps it answering). That filesystem is a tmpfs of the test's own
// where the test may mount one, because on a shared disk another process freeing space
// while the load runs (a parallel test package removing its files) keeps the disk from
// ever filling. On bbolt it is a file size limit on the receiver process, its writes
// past it failing with EFBIG.
func TestFullDiskNeverAcknowledges(t *testing.T) {
	for _, tc := range []struct {
		engine string
		// full makes dir's disk fill soon and returns the environment that says so to
		// the receiver, and the one that restarts it with room.
		full func(t *testing.T, dir string) (fullEnv, roomEnv []string)
	}{
		{store.EnginePebble, func(t *testing.T, dir string) ([]string, []string) {
			room, margin := []string(nil), int64(16<<20)
			if privateFilesystem(t, dir, 128<<20) {
				// Pebble takes a few MiB when it opens (its WAL's first blocks, the
				// manifest): a wider margin leaves room for events before the refusals.
				room, margin = []string{"HOOKGATE_TEST_MIN_FREE=0"}, 32<<20 // the reserve lowered: what an operator does before growing the volume
			}
			var st sys.Statfs_t
			if err := sys.Statfs(dir, &st); err != nil {
				t.Fatal(err)
			}
			free := int64(st.Bavail) * st.Bsize //nolint:gosec // a real filesystem's counts
			return []string{"HOOKGATE_TEST_MIN_FREE=" + strconv.FormatInt(free-margin, 10)}, room
		}},
		{store.EngineBolt, func(*testing.T, string) ([]string, []string) {
			return []string{"HOOKGATE_TEST_FSIZE=" + strconv.Itoa(2<<20), "HOOKGATE_TEST_MIN_FREE=0"}, nil
		}},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			dir := t.TempDir()
			fullEnv, roomEnv := tc.full(t, dir)
			engine := "HOOKGATE_TEST_ENGINE=" + tc.engine
			fullDiskNeverAcknowledges(t, dir, append(fullEnv, engine), append(roomEnv, engine))
		})
	}
}

// privateFilesystem mounts a tmpfs of size bytes on dir, unmounted when the test ends,
// and reports whether it could (only root may; elsewhere the test uses the shared disk
// and says so).
func privateFilesystem(t *testing.T, dir string, size int) bool {
	if err := sys.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Logf("no tmpfs of the test's own (%v): filling the shared disk's free space instead", err)
		return false
	}
	t.Cleanup(func() {
		if err := sys.Unmount(dir, sys.MNT_DETACH); err != nil {
			t.Errorf("unmounting the test's tmpfs: %v", err)
		}
	})
	return true
}

func fullDiskNeverAcknowledges(t *testing.T, dir string, fullEnv, roomEnv []string) {
	const apiKey, secret = "hgk_full", "whsec_full"
	routingFile := writeRoutingFile(t, dir, crashTable(apiKey, secret))
	dataDir := filepath.Join(dir, "data")
	child := startChild(t, routingFile, dataDir, fullEnv...)
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		// Stop the load once the store has refused for a while.
		deadline := time.After(20 * time.Second)
		for {
			select {
			case <-deadline:
				once.Do(func() { close(stop) })
				return
			case <-time.After(50 * time.Millisecond):
			}
			r, err := http.Get(child.probeURL + "/readyz")
			if err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusServiceUnavailable {
					time.Sleep(200 * time.Millisecond)
					once.Do(func() { close(stop) })
					return
				}
			}
		}
	}()
	acked, sent, failed, refused := load(child.url, apiKey, secret, 8, 8192, stop, "full")
	t.Logf("%v: %d sent, %d acknowledged, %d refused, %d transport errors", fullEnv, sent, len(acked), refused, failed)
	if refused == 0 {
		t.Fatal("the store never refused a write: the disk did not fill")
	}
	r := do(t, nil, newRequest(t, http.MethodGet, child.probeURL+"/readyz", nil, nil))
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with a full disk, want 503", r.status)
	}
	r = do(t, nil, newRequest(t, http.MethodGet, child.url+"/api/health", nil, nil))
	if r.status != http.StatusServiceUnavailable || r.body["store"] != "unavailable" {
		t.Errorf("/api/health = %d %s with a full disk", r.status, r.raw)
	}
	body := []byte(fmt.Sprintf(`{"id":"after-full","type":"order.created","pad":%q}`, strings.Repeat("x", 8192)))
	r = do(t, nil, newRequest(t, http.MethodPost, child.url+"/api/webhooks/events", partnerHMACHeaders(apiKey, secret, time.Now(), body), body))
	if r.status != http.StatusServiceUnavailable || r.body["error"] != "Service unavailable" {
		t.Errorf("a POST that does not fit on the full disk got %d %s, want 503", r.status, r.raw)
	}
	child.terminate(t)

	child = startChild(t, routingFile, dataDir, roomEnv...)
	defer child.terminate(t)
	for id, uuid := range acked {
		r := do(t, nil, newRequest(t, http.MethodGet, child.url+"/api/webhooks/status?eventId="+id, map[string]string{"x-api-key": apiKey}, nil))
		if r.status != http.StatusOK || r.body["uuid"] != uuid {
			t.Errorf("acknowledged event %s is lost: %d %s", id, r.status, r.raw)
		}
	}
	t.Logf("all %d acknowledged events found after restarting with room", len(acked))
}

// TestRestartDuringDelivery kills the receiver while deliveries are in flight and
// restarts it: every acknowledged event reaches the destination at least once.
func TestRestartDuringDelivery(t *testing.T) {
	const apiKey, secret = "hgk_restart", "whsec_restart"
	var mu sync.Mutex
	seen := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // slower than ingest: a backlog builds up
		mu.Lock()
		seen[r.Header.Get("X-Hookgate-Event-Id")]++
		mu.Unlock()
	}))
	defer sink.Close()
	table := crashTable(apiKey, secret)
	table.Endpoints[0].Destination.URL = sink.URL
	table.Endpoints[0].Retry = routing.Retry{MaxAttempts: 12, InitialBackoff: routing.Duration(50 * time.Millisecond), MaxBackoff: routing.Duration(time.Second)}
	dir := t.TempDir()
	routingFile := writeRoutingFile(t, dir, table)
	dataDir := filepath.Join(dir, "data")

	child := startChild(t, routingFile, dataDir)
	stop := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(stop) })
	acked, sent, _, _ := load(child.url, apiKey, secret, 16, 256, stop, "d")
	mu.Lock()
	deliveredBeforeKill := len(seen)
	mu.Unlock()
	child.kill()
	t.Logf("%d sent, %d acknowledged; %d delivered when the receiver was killed", sent, len(acked), deliveredBeforeKill)
	if deliveredBeforeKill >= len(acked) {
		t.Fatalf("no delivery was pending at the kill; the test proves nothing")
	}

	child = startChild(t, routingFile, dataDir)
	defer child.terminate(t)
	deadline := time.Now().Add(90 * time.Second)
	var missing int
	for {
		mu.Lock()
		missing = 0
		for id := range acked {
			if seen[id] == 0 {
				missing++
			}
		}
		duplicates := 0
		for _, n := range seen {
			duplicates += n - 1
		}
		mu.Unlock()
		if missing == 0 {
			t.Logf("after the restart all %d acknowledged events were delivered (%d deliveries repeated: at least once)", len(acked), duplicates)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never reached the destination", missing, len(acked))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
