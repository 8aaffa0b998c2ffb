package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/testcluster"
	"github.com/hookgate/hookgate/receiver"
	"github.com/hookgate/hookgate/receiver/store/postgres/pgtest"
)

// replica is one receiver process of the scale-out test, restartable after a SIGKILL.
type replica struct {
	name, url, probe string
	args             []string
	env              []string
	log              *os.File
	cmd              *exec.Cmd
	exited           chan struct{}
}

// newReplica prepares a process whose output goes to <dir>/<name>.log.
func newReplica(t *testing.T, dir, name string, env []string, args ...string) *replica {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return &replica{name: name, env: env, log: log, args: args}
}

// logOnFailure prints the end of the process's log when the test failed.
func (r *replica) logOnFailure(t *testing.T) {
	if t.Failed() {
		raw, _ := os.ReadFile(r.log.Name())
		if i := bytes.Index(raw, []byte("panic")); i >= 0 && os.Getenv("DEBUG_PANIC") != "" {
			t.Logf("%s log at its first panic:\n%s", r.name, raw[max(0, i-3000):min(len(raw), i+3000)])
		}
		t.Logf("%s log (last 4 KB):\n%s", r.name, tail(raw, 4096))
	}
}

func (r *replica) start(t *testing.T, bin string) {
	t.Helper()
	cmd := exec.Command(bin, r.args...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(r.exited) }()
}

func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

func (r *replica) stop() {
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.kill()
	}
}

// TestScaleOut: three receivers share one PostgreSQL database under load from three
// clients; the one holding the status Lease is SIGKILLed mid-load and restarted. Every
// acknowledged event reaches the destination, duplicate deliveries stay under 2%, the
// Lease moves to a live replica, and every WebhookEvent reaches its final phase.
func TestScaleOut(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	cluster, err := testcluster.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cluster.Stop() }()
	dir := t.TempDir()
	bin := filepath.Join(dir, "hookgate")
	if out, err := run(t, nil, "go", "build", "-o", bin, testcluster.RepoRoot()); err != nil {
		t.Fatalf("building hookgate: %v\n%s", err, out)
	}
	env := append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := cluster.RunKubectl(t, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	kubectl("create", "namespace", "hookgate-system")
	kubectl("create", "namespace", "partners")

	var mu sync.Mutex
	deliveries := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		deliveries[r.Header.Get("webhook-id")]++
		mu.Unlock()
	}))
	defer sink.Close()

	operator := newReplica(t, dir, "operator", env, "operator", "--receiver-namespace", "hookgate-system",
		"--shared-path-namespaces", "partners", "--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0")
	operator.start(t, bin)
	defer func() { operator.stop(); operator.logOnFailure(t) }()

	// Every replica serves the events API; the kube-apiserver is pointed at the first
	// (on loopback a Service has one address).
	api, err := cluster.PrepareEventsAPI(filepath.Join(dir, "events-api"))
	if err != nil {
		t.Fatal(err)
	}
	replicas := make([]*replica, 3)
	for i := range replicas {
		name := fmt.Sprintf("receiver-%d", i)
		listen, probe := freePort(t), freePort(t)
		apiArgs := api.Args
		if i > 0 {
			apiArgs = []string{"--api-listen", freePort(t), "--api-cert-dir", filepath.Join(dir, "events-api")}
		}
		r := newReplica(t, dir, name, append(env, "POD_NAME="+name, "HOOKGATE_DATABASE_URL="+dsn),
			append([]string{"receiver", "--namespace", "hookgate-system", "--data-dir", filepath.Join(dir, name),
				"--listen", listen, "--probe-listen", probe, "--destination-allow-cidrs", "127.0.0.0/8,::1/128"}, apiArgs...)...)
		r.url, r.probe = "http://"+listen, "http://"+probe
		r.start(t, bin)
		replicas[i] = r
	}
	defer func() {
		for _, r := range replicas {
			r.stop()
			r.logOnFailure(t)
		}
	}()
	if err := api.Register(context.Background()); err != nil {
		t.Fatal(err)
	}

	manifest := filepath.Join(dir, "acme.yaml")
	if err := os.WriteFile(manifest, fmt.Appendf(nil, `apiVersion: hookgate.io/v1alpha1
kind: Partner
metadata:
  name: acme
spec:
  displayName: Acme Corp
  rateLimit: {requestsPerSecond: 5000, burst: 5000}
---
apiVersion: hookgate.io/v1alpha1
kind: WebhookEndpoint
metadata:
  name: events
spec:
  path: /api/webhooks/events
  partners: [acme]
  destination:
    url: %s/hooks
`, sink.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-n", "partners", "-f", manifest)
	kubectl("wait", "-n", "partners", "--for=condition=Ready", "partner/acme", "webhookendpoint/events", "--timeout=60s")
	var secret corev1.Secret
	if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: "partners", Name: "acme-credentials"}, &secret); err != nil {
		t.Fatal(err)
	}
	apiKey, signingSecret := string(secret.Data[hookgatev1alpha1.SecretKeyAPIKey]), string(secret.Data[hookgatev1alpha1.SecretKeySigningSecret])
	for _, r := range replicas {
		testcluster.Eventually(t, 30*time.Second, r.name+" ready", func() error { return ready(r.probe) })
	}
	leaseHolder := func() string {
		var lease coordinationv1.Lease
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: "hookgate-system", Name: receiver.DefaultStatusLease}, &lease); err != nil || lease.Spec.HolderIdentity == nil {
			return ""
		}
		return *lease.Spec.HolderIdentity
	}
	var leader string
	testcluster.Eventually(t, 30*time.Second, "a status Lease holder", func() error {
		if leader = leaseHolder(); leader == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	var victim *replica
	for _, r := range replicas {
		if strings.HasPrefix(leader, r.name) {
			victim = r
		}
	}
	if victim == nil {
		t.Fatalf("the status Lease is held by %q, not one of the replicas", leader)
	}

	// Load: three clients, each going round the replicas as a Service would, bounded in
	// rate and time; a request to the killed replica fails and goes to the next one.
	const loadFor, killAt, restartAt = 14 * time.Second, 4 * time.Second, 8 * time.Second
	var (
		ackMu        sync.Mutex
		acknowledged = map[string]bool{}
		refused      int
		wg           sync.WaitGroup
	)
	started := time.Now()
	httpClient := &http.Client{Timeout: 15 * time.Second}
	for c := range 3 {
		wg.Go(func() {
			for i := 0; time.Since(started) < loadFor; i++ {
				body := fmt.Appendf(nil, `{"id":"evt_%d_%d","type":"order.created","data":{"n":%d}}`, c, i, i)
				for try := range len(replicas) {
					uuid, ok := send(httpClient, replicas[(c+i+try)%len(replicas)].url, apiKey, signingSecret, body)
					ackMu.Lock()
					if ok {
						acknowledged[uuid] = true
					} else {
						refused++
					}
					ackMu.Unlock()
					if ok {
						break
					}
				}
				time.Sleep(8 * time.Millisecond)
			}
		})
	}
	time.Sleep(killAt)
	victim.kill()
	killedAt := time.Now()
	t.Logf("SIGKILLed %s (status Lease holder) at %s", victim.name, killedAt.Sub(started).Round(time.Millisecond))
	var newLeader string
	moved := testcluster.Eventually(t, 30*time.Second, "the status Lease moving to a live replica", func() error {
		if newLeader = leaseHolder(); newLeader == "" || newLeader == leader {
			return fmt.Errorf("held by %q", newLeader)
		}
		return nil
	})
	t.Logf("status Lease moved from %s to %s %s after the kill", leader, newLeader, moved.Round(time.Millisecond))
	time.Sleep(time.Until(started.Add(restartAt)))
	victim.start(t, bin)
	wg.Wait()
	loadEnded := time.Now()

	ackMu.Lock()
	acked := len(acknowledged)
	ackMu.Unlock()
	waited := testcluster.Eventually(t, 2*time.Minute, "every acknowledged event delivered", func() error {
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		for uuid := range acknowledged {
			if deliveries[uuid] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d not delivered", missing, acked)
		}
		return nil
	})
	mu.Lock()
	repeated := 0
	for _, n := range deliveries {
		repeated += n - 1
	}
	mu.Unlock()
	ratio := float64(repeated) / float64(acked)
	t.Logf("%d events acknowledged in %s (%d requests refused or cut, retried on another replica); all delivered %s after the load; %d deliveries repeated (%.2f%%)",
		acked, loadFor, refused, waited.Round(time.Millisecond), repeated, 100*ratio)
	if ratio >= 0.02 {
		t.Errorf("%.2f%% of deliveries were repeats, want under 2%%", 100*ratio)
	}

	final := testcluster.Eventually(t, 3*time.Minute, "every WebhookEvent Delivered", func() error {
		done, listed := 0, 0
		opts := []client.ListOption{client.InNamespace("partners"), client.Limit(1000)}
		for {
			var list eventsv1alpha1.WebhookEventList
			if err := cluster.Client.List(context.Background(), &list, opts...); err != nil {
				return err
			}
			listed += len(list.Items)
			for i := range list.Items {
				if list.Items[i].Status.Phase == hookgatev1alpha1.PhaseDelivered {
					done++
				}
			}
			if list.Continue == "" {
				break
			}
			opts = []client.ListOption{client.InNamespace("partners"), client.Limit(1000), client.Continue(list.Continue)}
		}
		if done < acked {
			return fmt.Errorf("%d of %d WebhookEvents Delivered (%d listed)", done, acked, listed)
		}
		return nil
	})
	t.Logf("every WebhookEvent Delivered %s after the load ended (%s after the kill)", (time.Since(loadEnded)).Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))
	_ = final

	// kubectl get -w, served by the first replica, prints an event sent through the last.
	took := watchPrints(t, cluster.Kubectl, []string{"KUBECONFIG=" + cluster.Kubeconfig}, func() (string, bool) {
		return send(httpClient, replicas[len(replicas)-1].url, apiKey, signingSecret, []byte(`{"id":"evt_watched","type":"order.created"}`))
	})
	t.Logf("kubectl get webhookevents -w (served by %s) printed an event sent through %s %s after its 202", replicas[0].name, replicas[len(replicas)-1].name, took.Round(time.Millisecond))
}

// send posts one signed event; it reports the uuid of a 202 or a 200 duplicate.
func send(c *http.Client, base, apiKey, secret string, body []byte) (string, bool) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	req, err := http.NewRequest(http.MethodPost, base+"/api/webhooks/events", bytes.NewReader(body))
	if err != nil {
		return "", false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("x-timestamp", ts)
	req.Header.Set("x-webhook-signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := c.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var answer struct {
		UUID string `json:"uuid"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &answer) != nil || answer.UUID == "" {
		return "", false
	}
	return answer.UUID, true
}

func ready(probe string) error {
	resp, err := http.Get(probe + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz %d", resp.StatusCode)
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
