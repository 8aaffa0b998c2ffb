package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hookgate/hookgate/controllers"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/scheme"
)

func runOperator(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts controllers.Options
	var watch string
	var qps float64
	var burst int
	fs.StringVar(&opts.ReceiverNamespace, "receiver-namespace", "", "namespace of the receiver, its routing Secret and Leases (required)")
	fs.StringVar(&opts.RoutingSecretName, "routing-secret", routing.DefaultSecretName, "name of the routing table Secret")
	fs.StringVar(&watch, "watch-namespaces", "", "comma-separated namespaces to watch (default: all)")
	fs.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8443", "metrics address (0 disables)")
	fs.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8082", "health probe address")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader, for more than one replica")
	fs.Float64Var(&qps, "kube-api-qps", 100, "requests per second to the API server")
	fs.IntVar(&burst, "kube-api-burst", 200, "burst of requests to the API server")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if opts.ReceiverNamespace == "" {
		fmt.Fprintln(stderr, "hookgate operator: --receiver-namespace is required")
		return 2
	}
	for _, ns := range strings.Split(watch, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			opts.WatchNamespaces = append(opts.WatchNamespaces, ns)
		}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts), zap.WriteTo(stderr)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintf(stderr, "hookgate operator: no cluster configuration (set KUBECONFIG): %v\n", err)
		return 1
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	mgr, _, err := controllers.NewManager(cfg, scheme.New(), opts)
	if err != nil {
		fmt.Fprintf(stderr, "hookgate operator: %v\n", err)
		return 1
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintf(stderr, "hookgate operator: %v\n", err)
		return 1
	}
	return 0
}
