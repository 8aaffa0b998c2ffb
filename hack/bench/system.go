package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// system is the whole system as `make run` starts it: a local control plane and the
// operator, a Partner and two endpoints applied with kubectl (events: one destination;
// fanout: three), and a receiver started for each measurement with a store of its own.
type system struct {
	hookgate, work string
	env            []string
	kubectl        func(stdin string, args ...string) (string, error)
	key, secret    string
	sink           *sink   // endpoint events' destination
	fanout         []*sink // endpoint fanout's destinations a, b and c
	receiverFlags  map[string]bool
	closers        []func()
}

// Paths of the system's endpoints.
const (
	systemEventsPath = "/api/webhooks/events"
	systemFanoutPath = "/api/webhooks/fanout"
)

// startSystem starts the control plane (controlPlane is the local-control-plane binary;
// crdDir, if set, the CRDs it installs) and the operator, and applies the resources.
func startSystem(hookgate, work, controlPlane, crdDir string) (sys *system, err error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set (make bench sets it)")
	}
	dir, err := os.MkdirTemp(work, "system-")
	if err != nil {
		return nil, err
	}
	s := &system{hookgate: hookgate, work: work, receiverFlags: flagsOf(hookgate, "receiver")}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	args := []string{"--write-kubeconfig", kubeconfig}
	if crdDir != "" {
		args = append(args, "--crd-dir", crdDir)
	}
	cp := exec.Command(controlPlane, args...)
	cpOut, _ := cp.StdoutPipe()
	if err := cp.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", controlPlane, err)
	}
	s.closers = append(s.closers, func() { _ = cp.Process.Signal(os.Interrupt); _ = cp.Wait() })
	buf := make([]byte, 4096)
	if n, _ := cpOut.Read(buf); !strings.Contains(string(buf[:n]), "ready") {
		return nil, fmt.Errorf("control plane: %s", buf[:n])
	}
	go func() { _, _ = io.Copy(io.Discard, cpOut) }()
	s.env = []string{"KUBECONFIG=" + kubeconfig}
	s.kubectl = func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(assets, "kubectl"), args...)
		cmd.Env = append(os.Environ(), s.env...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, ns := range []string{"hookgate-system", "bench"} {
		if out, err := s.kubectl("", "create", "namespace", ns); err != nil {
			return nil, fmt.Errorf("%w: %s", err, out)
		}
	}
	operator := exec.Command(hookgate, "operator", "--receiver-namespace", "hookgate-system", "--shared-path-namespaces", "bench", "--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0")
	operator.Env = append(os.Environ(), s.env...)
	if err := operator.Start(); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = operator.Process.Signal(os.Interrupt); _ = operator.Wait() })
	for range 4 {
		sk, err := startSink()
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { _ = sk.srv.Close() })
		if s.sink == nil {
			s.sink = sk
		} else {
			s.fanout = append(s.fanout, sk)
		}
	}
	manifest := fmt.Sprintf(`apiVersion: hookgate.io/v1alpha1
kind: Partner
metadata: {name: acme}
spec: {rateLimit: {requestsPerSecond: 1000000, burst: 1000000}}
---
apiVersion: hookgate.io/v1alpha1
kind: WebhookEndpoint
metadata: {name: events}
spec:
  path: %s
  destination: {url: %q, signing: {type: None}}
---
apiVersion: hookgate.io/v1alpha1
kind: WebhookEndpoint
metadata: {name: fanout}
spec:
  path: %s
  destinations:
  - {name: a, url: %q, signing: {type: None}}
  - {name: b, url: %q, signing: {type: None}}
  - {name: c, url: %q, signing: {type: None}}
`, systemEventsPath, s.sink.url, systemFanoutPath, s.fanout[0].url, s.fanout[1].url, s.fanout[2].url)
	if out, err := s.kubectl(manifest, "apply", "-n", "bench", "-f", "-"); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	// Ready needs a receiver serving the table, which each measurement starts: here the
	// partner's credentials are enough.
	if out, err := s.kubectl("", "wait", "-n", "bench", "--for=condition=CredentialsReady", "partner/acme", "--timeout=60s"); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	key, err := s.kubectl("", "get", "secret", "-n", "bench", "acme-credentials", "-o", "jsonpath={.data.apiKey}")
	if err != nil {
		return nil, err
	}
	sec, err := s.kubectl("", "get", "secret", "-n", "bench", "acme-credentials", "-o", "jsonpath={.data.signingSecret}")
	if err != nil {
		return nil, err
	}
	s.key, s.secret = decode(key), decode(sec)
	return s, nil
}

func (s *system) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// startReceiver starts a receiver on st (an embedded store of its own, or a fresh
// PostgreSQL schema) that serves the cluster's routing table, and returns once it
// accepts events.
func (s *system) startReceiver(st store) (*receiverProc, func(), error) {
	storeEnv, dropSchema, err := st.environment()
	if err != nil {
		return nil, nil, err
	}
	env := append(append([]string{}, s.env...), append(storeEnv, "POD_NAME=receiver-0")...)
	args := append([]string{"--namespace", "hookgate-system"}, st.args()...)
	if s.receiverFlags["api-listen"] {
		args = append(args, "--api-listen", "127.0.0.1:0") // served, as make run does, though not registered here
	}
	p, err := startReceiver(s.hookgate, s.work, nil, env, args...)
	if err != nil {
		dropSchema()
		return nil, nil, err
	}
	stop := func() { p.stop(); dropSchema() }
	// The routing table comes from the cluster after the receiver is up: wait until both
	// endpoints take events (warm-up events, which no measurement counts).
	deadline := time.Now().Add(60 * time.Second)
	warmClient := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{systemEventsPath, systemFanoutPath} {
		for i := 0; ; i++ {
			code, err := postEvent(warmClient, p.url+path, s.key, s.secret, fmt.Sprintf("evt_warm_%d", i), 1<<10)
			if err == nil && code == http.StatusAccepted {
				break
			}
			if time.Now().After(deadline) {
				stop()
				return nil, nil, fmt.Errorf("the receiver accepted no event on %s within 60s (last: HTTP %d, %w)", path, code, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return p, stop, nil
}

// flagsOf are the flags of hookgate's subcommand, read from its --help: a binary from an
// older commit (bench-compare's base) may lack some.
func flagsOf(hookgate, subcommand string) map[string]bool {
	out, _ := exec.Command(hookgate, subcommand, "--help").CombinedOutput() //nolint:gosec // the binary under test
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z0-9-]+)`).FindAllSubmatch(out, -1) {
		flags[string(m[1])] = true
	}
	return flags
}
