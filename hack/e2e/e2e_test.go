// Package e2e runs the real hookgate binary as operator and receiver against a local
// control plane, drives it with kubectl and `hookgate send`, and checks what a platform
// team would: the event is Delivered in `kubectl get webhookevents`, and `hookgate status`
// agrees.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/testcluster"
)

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// controlPlane is a local API server with the hookgate binary built for it and the
// namespaces the tests use.
type controlPlane struct {
	cluster  *testcluster.Cluster
	dir, bin string
	env      []string // for kubectl and hookgate: the cluster's kubeconfig, no ambient keys
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	cluster, err := testcluster.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	p := &controlPlane{cluster: cluster, dir: t.TempDir()}
	p.bin = filepath.Join(p.dir, "hookgate")
	if out, err := run(t, nil, "go", "build", "-o", p.bin, testcluster.RepoRoot()); err != nil {
		t.Fatalf("building hookgate: %v\n%s", err, out)
	}
	p.env = []string{"KUBECONFIG=" + cluster.Kubeconfig, "HOOKGATE_API_KEY=", "HOOKGATE_SIGNING_SECRET="}
	p.kubectl(t, "create", "namespace", "hookgate-system")
	p.kubectl(t, "create", "namespace", "partners")
	return p
}

func (p *controlPlane) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, p.env, p.cluster.Kubectl, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// eventsAPI prepares the receiver's events API: the flags to add to its command line,
// and register, to call once it started, which points the kube-apiserver at it.
func (p *controlPlane) eventsAPI(t *testing.T) (args []string, register func()) {
	t.Helper()
	api, err := p.cluster.PrepareEventsAPI(filepath.Join(p.dir, "events-api"))
	if err != nil {
		t.Fatal(err)
	}
	return api.Args, func() {
		t.Helper()
		if err := api.Register(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// start runs the binary as name (operator or receiver) until the test ends.
func (p *controlPlane) start(t *testing.T, name string, extraEnv []string, args ...string) {
	r := newReplica(t, p.dir, name, append(append(os.Environ(), p.env...), extraEnv...), args...)
	r.start(t, p.bin)
	t.Cleanup(func() { r.stop(); r.logOnFailure(t) })
}

func TestEndToEnd(t *testing.T) {
	p := startControlPlane(t)
	dir, bin, env := p.dir, p.bin, p.env
	kubectl := func(args ...string) string { t.Helper(); return p.kubectl(t, args...) }

	var delivered atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { delivered.Add(1) }))
	defer sink.Close()

	receiverAddr := freePort(t)
	start := func(name string, extraEnv []string, args ...string) { p.start(t, name, extraEnv, args...) }
	start("operator", nil, "operator", "--receiver-namespace", "hookgate-system", "--shared-path-namespaces", "partners", "--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0")
	apiArgs, registerAPI := p.eventsAPI(t)
	start("receiver", []string{"POD_NAME=receiver-0"}, append([]string{"receiver", "--namespace", "hookgate-system", "--data-dir", filepath.Join(dir, "data"),
		"--listen", receiverAddr, "--probe-listen", "127.0.0.1:0", "--destination-allow-cidrs", "127.0.0.0/8,::1/128"}, apiArgs...)...)
	registerAPI()

	manifest := filepath.Join(dir, "acme.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: hookgate.io/v1alpha1
kind: Partner
metadata:
  name: acme
spec:
  displayName: Acme Corp
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
`, sink.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-n", "partners", "-f", manifest)
	t.Log(strings.TrimSpace(kubectl("wait", "-n", "partners", "--for=condition=Ready", "partner/acme", "webhookendpoint/events", "--timeout=60s")))

	out, err := run(t, env, bin, "send", "--partner", "acme", "-n", "partners", "--url", "http://"+receiverAddr+"/api/webhooks/events",
		"--type", "order.created", "--data", `{"orderId":"ORD-456"}`, "--id", "evt_e2e")
	if err != nil || !strings.Contains(out, `"status": "Queued"`) {
		t.Fatalf("hookgate send: %v\n%s", err, out)
	}
	t.Logf("hookgate send:\n%s", out)

	deadline := time.Now().Add(30 * time.Second)
	var table string
	for {
		table = kubectl("get", "webhookevents", "-n", "partners", "-l", "hookgate.io/partner=acme")
		if strings.Contains(table, "Delivered") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Delivered within 30s:\n%s", table)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("kubectl get webhookevents -n partners:\n%s", table)
	if delivered.Load() < 1 {
		t.Fatal("the destination saw nothing")
	}
	out, err = run(t, env, bin, "status", "--partner", "acme", "-n", "partners", "--url", "http://"+receiverAddr, "evt_e2e")
	if err != nil || !strings.Contains(out, `"status": "Delivered"`) {
		t.Fatalf("hookgate status: %v\n%s", err, out)
	}
	t.Logf("hookgate status:\n%s", out)
}
