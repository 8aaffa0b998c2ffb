package controllers

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/hookgate/hookgate/internal/routing"
)

// Options configure `hookgate operator` (docs/reference.md lists the flags). Start from
// DefaultOptions: NewManager uses the values as given and refuses invalid ones.
type Options struct {
	ReceiverNamespace      string
	RoutingSecretName      string
	WatchNamespaces        []string
	MetricsBindAddress     string
	HealthProbeBindAddress string
	LeaderElection         bool
	LeaderElectionID       string
	// SharedPathNamespaces may serve any path under /api/webhooks/.
	SharedPathNamespaces []string
	// MaxSecretBytes and MaxNamespaceTableBytes bound what one tenant puts in the shared
	// routing table.
	MaxSecretBytes         int
	MaxNamespaceTableBytes int
	// KubeAPIQPS and KubeAPIBurst bound the operator's requests to the API server.
	KubeAPIQPS   float64
	KubeAPIBurst int
	// EventsAPICertSecret, when set, is the Secret in the receiver namespace that holds
	// the events API's serving certificate, which the operator makes and renews, keeping
	// the APIService's caBundle in step; EventsAPIServiceName is the receiver Service it
	// is for.
	EventsAPICertSecret  string
	EventsAPIServiceName string
}

// DefaultOptions are the operator's defaults, the flags' defaults among them.
func DefaultOptions() Options {
	return Options{
		RoutingSecretName:      routing.DefaultSecretName,
		MetricsBindAddress:     ":8443",
		HealthProbeBindAddress: ":8082",
		LeaderElectionID:       "hookgate-operator.hookgate.io",
		MaxSecretBytes:         16 << 10,
		MaxNamespaceTableBytes: 256 << 10,
		KubeAPIQPS:             100,
		KubeAPIBurst:           200,
		EventsAPIServiceName:   "hookgate-receiver",
	}
}

// BindFlags binds the command-line flags to o, with o's current values as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.ReceiverNamespace, "receiver-namespace", o.ReceiverNamespace, "namespace of the receiver, its routing Secret and Leases (required)")
	fs.StringVar(&o.RoutingSecretName, "routing-secret", o.RoutingSecretName, "name of the routing table Secret")
	fs.Func("watch-namespaces", "comma-separated namespaces to watch (default: all)", func(v string) error {
		o.WatchNamespaces = splitList(v)
		return nil
	})
	fs.Func("shared-path-namespaces", "comma-separated namespaces whose endpoints may serve any path under /api/webhooks/ (default: none; the others only /api/webhooks/<namespace>/...)", func(v string) error {
		o.SharedPathNamespaces = splitList(v)
		return nil
	})
	fs.IntVar(&o.MaxSecretBytes, "max-secret-bytes", o.MaxSecretBytes, "largest secret value (signing secret, secretRef key) copied into the routing table")
	fs.IntVar(&o.MaxNamespaceTableBytes, "max-namespace-table-bytes", o.MaxNamespaceTableBytes, "most bytes one namespace's partners and endpoints may take in the routing table")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "metrics address (0 disables)")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "health probe address")
	fs.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "elect a leader, for more than one replica")
	fs.StringVar(&o.EventsAPICertSecret, "events-api-cert-secret", o.EventsAPICertSecret, "Secret (in --receiver-namespace) of the events API's serving certificate, which the operator makes and renews, setting the APIService's caBundle (empty: not managed)")
	fs.StringVar(&o.EventsAPIServiceName, "events-api-service", o.EventsAPIServiceName, "the receiver Service through which the kube-apiserver reaches the events API (the certificate's name)")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "requests per second to the API server")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "burst of requests to the API server")
}

// Validate reports every option that cannot work, naming its flag.
func (o *Options) Validate() error {
	var errs []error
	if o.ReceiverNamespace == "" {
		errs = append(errs, errors.New("--receiver-namespace is required"))
	}
	if o.RoutingSecretName == "" {
		errs = append(errs, errors.New("--routing-secret must not be empty"))
	}
	if o.LeaderElection && o.LeaderElectionID == "" {
		errs = append(errs, errors.New("leader election needs an election id"))
	}
	if o.MaxSecretBytes < 256 || o.MaxNamespaceTableBytes < 4096 {
		errs = append(errs, fmt.Errorf("--max-secret-bytes must be at least 256 and --max-namespace-table-bytes at least 4096, got %d and %d", o.MaxSecretBytes, o.MaxNamespaceTableBytes))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive, got %g and %d", o.KubeAPIQPS, o.KubeAPIBurst))
	}
	return errors.Join(errs...)
}

// splitList reads a comma-separated list, ignoring blanks.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
