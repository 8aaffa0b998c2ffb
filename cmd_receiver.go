package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver"
)

func runReceiver(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts receiver.Options
	var trusted string
	fs.StringVar(&opts.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of the routing Secret and this replica's Lease")
	fs.StringVar(&opts.RoutingSecret, "routing-secret", routing.DefaultSecretName, "name of the routing table Secret")
	fs.StringVar(&opts.RoutingFile, "routing-file", "", "load the routing table from this file instead of the cluster (reloaded on change)")
	fs.StringVar(&opts.Listen, "listen", ":8080", "webhook address")
	fs.StringVar(&opts.ProbeListen, "probe-listen", ":8081", "probe and metrics address")
	fs.StringVar(&opts.DataDir, "data-dir", "/var/lib/hookgate", "directory of the event store")
	fs.StringVar(&trusted, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed")
	fs.DurationVar(&opts.EventRetention, "event-retention", 24*time.Hour, "how long WebhookEvent resources are kept")
	fs.DurationVar(&opts.StoreRetention, "store-retention", 7*24*time.Hour, "how long finished events are kept in the store (at least the longest dedup window)")
	fs.IntVar(&opts.MaxEventsPerNamespace, "max-events-per-namespace", 5000, "cap on WebhookEvent resources per namespace")
	fs.BoolVar(&opts.AllowLinkLocalDestinations, "allow-link-local-destinations", false, "let deliveries reach link-local addresses such as 169.254.169.254")
	fs.IntVar(&opts.DeliveryWorkers, "delivery-workers", 128, "concurrent deliveries at most (32 per destination)")
	fs.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 25*time.Second, "how long in-flight requests may finish on SIGTERM")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if opts.TrustedProxies, err = receiver.ParseTrustedProxies(trusted); err != nil {
		fmt.Fprintf(stderr, "hookgate receiver: --trusted-proxies: %v\n", err)
		return 2
	}
	if opts.RoutingFile == "" && opts.Namespace == "" {
		fmt.Fprintln(stderr, "hookgate receiver: --namespace is required (or --routing-file for standalone use)")
		return 2
	}
	zapOpts.Level = zapcore.InfoLevel
	logger := zap.New(zap.UseFlagOptions(&zapOpts), zap.WriteTo(stderr))
	ctrl.SetLogger(logger)
	opts.Log = logger.WithName("receiver")
	opts.AuditLog = receiver.NewAuditLogger()
	opts.Registry = crmetrics.Registry
	if opts.RoutingFile == "" {
		if opts.KubeConfig, err = ctrl.GetConfig(); err != nil {
			fmt.Fprintf(stderr, "hookgate receiver: no cluster configuration (set KUBECONFIG, or use --routing-file): %v\n", err)
			return 1
		}
	}
	if err := receiver.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		fmt.Fprintf(stderr, "hookgate receiver: %v\n", err)
		return 1
	}
	return 0
}
