package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// TestEventsAPIAtVolume: the system as make run starts it, on the embedded store. 20,000
// events accepted at full speed are all listed by kubectl get webhookevents
// --chunk-size=1000 right after the last 202, a label selector lists exactly one
// partner's, kubectl get -w prints a new event as it is stored, and the kube-apiserver
// holds no webhookevents object (apiserver_storage_objects). The times are printed,
// not asserted.
func TestEventsAPIAtVolume(t *testing.T) {
	p := startControlPlane(t)
	kubectl := func(args ...string) string { t.Helper(); return p.kubectl(t, args...) }
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer sink.Close()

	receiverAddr := freePort(t)
	p.start(t, "operator", nil, "operator", "--receiver-namespace", "hookgate-system", "--shared-path-namespaces", "partners", "--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0")
	apiArgs, registerAPI := p.eventsAPI(t)
	p.start(t, "receiver", []string{"POD_NAME=receiver-0"}, append([]string{"receiver", "--namespace", "hookgate-system", "--data-dir", filepath.Join(p.dir, "data"),
		"--listen", receiverAddr, "--probe-listen", "127.0.0.1:0", "--destination-allow-cidrs", "127.0.0.0/8,::1/128"}, apiArgs...)...)
	registerAPI()

	manifest := filepath.Join(p.dir, "volume.yaml")
	if err := os.WriteFile(manifest, fmt.Appendf(nil, `apiVersion: hookgate.io/v1alpha1
kind: Partner
metadata: {name: acme}
spec:
  rateLimit: {requestsPerSecond: 10000, burst: 10000}
---
apiVersion: hookgate.io/v1alpha1
kind: Partner
metadata: {name: globex}
spec:
  rateLimit: {requestsPerSecond: 10000, burst: 10000}
---
apiVersion: hookgate.io/v1alpha1
kind: WebhookEndpoint
metadata: {name: events}
spec:
  path: /api/webhooks/events
  partners: [acme, globex]
  destination: {url: %s/hooks}
`, sink.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-n", "partners", "-f", manifest)
	kubectl("wait", "-n", "partners", "--for=condition=Ready", "partner/acme", "partner/globex", "webhookendpoint/events", "--timeout=60s")
	credentials := func(partner string) (string, string) {
		t.Helper()
		var secret corev1.Secret
		if err := p.cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: "partners", Name: partner + "-credentials"}, &secret); err != nil {
			t.Fatal(err)
		}
		return string(secret.Data[hookgatev1alpha1.SecretKeyAPIKey]), string(secret.Data[hookgatev1alpha1.SecretKeySigningSecret])
	}
	acmeKey, acmeSecret := credentials("acme")
	globexKey, globexSecret := credentials("globex")

	const total, fromGlobex, clients = 20000, 2000, 64
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	httpClient := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	started := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				key, secret := acmeKey, acmeSecret
				if i < fromGlobex {
					key, secret = globexKey, globexSecret
				}
				if _, ok := send(httpClient, "http://"+receiverAddr, key, secret, fmt.Appendf(nil, `{"id":"evt_%d","type":"order.created"}`, i)); !ok {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	lastAck := time.Now()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d events were not accepted", failed.Load(), total)
	}
	t.Logf("%d events accepted in %s (%.0f/s, %d clients)", total, lastAck.Sub(started).Round(time.Millisecond), total/lastAck.Sub(started).Seconds(), clients)

	names := strings.Fields(kubectl("get", "webhookevents", "-n", "partners", "--chunk-size=1000", "-o", "name"))
	listed := time.Since(lastAck)
	if len(names) != total {
		t.Fatalf("kubectl get webhookevents listed %d events, want %d", len(names), total)
	}
	t.Logf("kubectl get webhookevents -n partners --chunk-size=1000 listed all %d, done %s after the last 202", total, listed.Round(time.Millisecond))
	if got := strings.Fields(kubectl("get", "webhookevents", "-n", "partners", "-l", "hookgate.io/partner=globex", "--chunk-size=1000", "-o", "jsonpath={range .items[*]}{.spec.partner}{\"\\n\"}{end}")); len(got) != fromGlobex || strings.Count(strings.Join(got, " "), "globex") != fromGlobex {
		t.Fatalf("-l hookgate.io/partner=globex listed %d events (%d of them globex's), want %d", len(got), strings.Count(strings.Join(got, " "), "globex"), fromGlobex)
	}
	for _, line := range strings.Split(kubectl("get", "--raw", "/metrics"), "\n") {
		if strings.HasPrefix(line, "apiserver_storage_objects") && strings.Contains(line, "webhookevents") {
			t.Fatalf("the kube-apiserver stores webhookevents: %s", line)
		}
	}

	// A watch prints a new event as it is stored.
	took := watchPrints(t, p.cluster.Kubectl, p.env, func() (string, bool) {
		return send(httpClient, "http://"+receiverAddr, globexKey, globexSecret, []byte(`{"id":"evt_watched","type":"order.created"}`))
	})
	t.Logf("kubectl get webhookevents -w printed the new event %s after its 202", took.Round(time.Millisecond))
}

// watchPrints runs kubectl get webhookevents -w for the event id evt_watched (so that it
// lists nothing first, whatever the namespace holds), sends that event once it watches,
// and returns how long after the event's 202 kubectl printed it.
func watchPrints(t *testing.T, kubectlBin string, env []string, send func() (string, bool)) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch := exec.CommandContext(ctx, kubectlBin, "get", "webhookevents", "-n", "partners", "-w", "--field-selector", "spec.eventId=evt_watched", "--output-watch-events", "-o", "name")
	watch.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	watch.Stderr = &stderr
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Process.Kill(); _ = watch.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()
	time.Sleep(2 * time.Second) // kubectl starts its watch
	uuid, ok := send()
	if !ok {
		t.Fatal("the watched event was not accepted")
	}
	acked := time.Now()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("kubectl get -w ended: %s", stderr.String())
			}
			if strings.Contains(line, uuid) {
				return time.Since(acked)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("kubectl get -w printed nothing of the new event within 10s")
		}
	}
}
