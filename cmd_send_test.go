package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver"
)

func TestSendAndStatus(t *testing.T) {
	const apiKey, secret = "hgk_cli", "whsec_cli"
	table := &routing.Table{
		Partners: []routing.Partner{{Namespace: "p", Name: "acme", Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(apiKey), SigningSecret: secret}}}},
		Endpoints: []routing.Endpoint{{Namespace: "p", Name: "events", Path: "/api/webhooks/events", MaxBodyBytes: 1 << 20,
			Verification: routing.Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: routing.Duration(5 * time.Minute)},
			Idempotency:  routing.Idempotency{Window: routing.Duration(time.Hour)}}},
	}
	dir := t.TempDir()
	raw, _ := json.Marshal(table)
	file := filepath.Join(dir, "routing.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		opts := receiver.DefaultOptions()
		opts.RoutingFile, opts.DataDir, opts.Listen, opts.ProbeListen = file, filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0"
		opts.Log, opts.Registry, opts.Ready = logr.Discard(), prometheus.NewRegistry(), func(w, _ string) { ready <- "http://" + w }
		opts.DestinationAllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")} // loopback sinks, as in tests
		done <- receiver.Run(ctx, opts)
	}()
	base := <-ready
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("receiver: %v", err)
		}
	}()
	data := filepath.Join(dir, "data.json")
	if err := os.WriteFile(data, []byte(`{"orderId":"ORD-456"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKGATE_API_KEY", "")
	t.Setenv("HOOKGATE_SIGNING_SECRET", "")
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-such-kubeconfig"))
	creds := []string{"--api-key", apiKey, "--signing-secret", secret}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"send from flags", append([]string{"send", "--url", base + "/api/webhooks/events", "--type", "order.created", "--data", "@" + data, "--id", "evt_cli_1"}, creds...), nil, 0, `"status": "Stored"`, ""},
		{"send from the environment", []string{"send", "--url", base + "/api/webhooks/events", "--type", "order.created", "--id", "evt_cli_2"}, map[string]string{"HOOKGATE_API_KEY": apiKey, "HOOKGATE_SIGNING_SECRET": secret}, 0, `"eventId": "evt_cli_2"`, ""},
		{"send a duplicate", append([]string{"send", "--url", base + "/api/webhooks/events", "--type", "order.created", "--id", "evt_cli_1"}, creds...), nil, 0, `"duplicate": true`, ""},
		{"status", append([]string{"status", "--url", base}, append(creds, "evt_cli_1")...), nil, 0, `"eventId": "evt_cli_1"`, ""},
		{"status of an unknown event", append([]string{"status", "--url", base}, append(creds, "evt_nope")...), nil, 1, "", "404 Not Found"},
		{"send with a wrong secret", []string{"send", "--url", base + "/api/webhooks/events", "--type", "x", "--api-key", apiKey, "--signing-secret", "whsec_wrong"}, nil, 1, "", "401 Unauthorized"},
		{"send without --url", append([]string{"send", "--type", "x"}, creds...), nil, 2, "", "--url is required"},
		{"send with bad JSON", append([]string{"send", "--url", base, "--type", "x", "--data", "{nope"}, creds...), nil, 2, "", "--data is not valid JSON"},
		{"send without credentials or cluster", []string{"send", "--url", base + "/api/webhooks/events", "--type", "x", "--partner", "acme", "-n", "p"}, nil, 1, "", "KUBECONFIG"},
		{"status without an event id", append([]string{"status", "--url", base}, creds...), nil, 2, "", "usage: hookgate status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), c.args, &stdout, &stderr)
			if code != c.wantCode || !strings.Contains(stdout.String(), c.wantOut) || !strings.Contains(stderr.String(), c.wantErr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, c.wantCode, stdout.String(), stderr.String())
			}
		})
	}
}

func TestFlagSet(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("gc-percent", 400, "")
	fs.Int("other", 0, "")
	if err := fs.Parse([]string{"--other", "3"}); err != nil {
		t.Fatal(err)
	}
	if flagSet(fs, "gc-percent") || !flagSet(fs, "other") {
		t.Fatalf("flagSet: gc-percent %t (want false), other %t (want true)", flagSet(fs, "gc-percent"), flagSet(fs, "other"))
	}
}
