package receiver

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/delivery"
	"github.com/hookgate/hookgate/receiver/store"
	"github.com/hookgate/hookgate/receiver/store/postgres"
)

// Options configure `hookgate receiver` (docs/reference.md lists the flags). Start from
// DefaultOptions: Run uses the values as given and refuses invalid ones.
type Options struct {
	Namespace      string
	RoutingSecret  string
	RoutingFile    string
	Listen         string
	ProbeListen    string
	DataDir        string
	TrustedProxies []netip.Prefix
	StoreRetention time.Duration
	// AllowLinkLocalDestinations lets deliveries reach link-local addresses.
	AllowLinkLocalDestinations bool
	// DestinationAllowCIDRs are private or loopback ranges that url destinations and JWKS
	// URLs may reach; without them only public addresses (and, for service destinations,
	// the cluster's private ranges) are dialled.
	DestinationAllowCIDRs []netip.Prefix
	// DeliveryWorkers bounds concurrent deliveries.
	DeliveryWorkers int
	// RemovedDestinationGrace is how long a destination or endpoint may be missing from
	// the routing table before its queued deliveries are finished as Failed.
	RemovedDestinationGrace time.Duration
	// ShutdownTimeout bounds how long in-flight requests may finish after SIGTERM.
	ShutdownTimeout time.Duration
	// MaxInflightBodyBytes bounds the request bodies held in memory at once.
	MaxInflightBodyBytes int64
	// MaxStoredBytesPerPartner is the stored-bytes quota of partners that set none.
	MaxStoredBytesPerPartner int64
	// DatabaseURL selects the PostgreSQL store instead of the embedded one; its password
	// may come from DatabasePasswordFile instead (a mounted Secret key).
	DatabaseURL          string
	DatabasePasswordFile string
	// DatabaseMaxConns sizes the connection pool (0: postgres.DefaultMaxConns, or the
	// URL's pool_max_conns); DatabaseStatementTimeout bounds each statement.
	DatabaseMaxConns         int
	DatabaseStatementTimeout time.Duration
	// EmbeddedEngine is the embedded store's engine (store.EnginePebble or EngineBolt);
	// MinFreeDiskBytes the free space it keeps on the data directory's filesystem.
	EmbeddedEngine   string
	MinFreeDiskBytes int64
	// PublicURL is how destinations reach the receiver (the ingress): the issuer of
	// JWT-signed deliveries, and where their keys are served.
	PublicURL string
	// StatusLease names the Lease that elects, among replicas sharing a PostgreSQL store,
	// the one that writes WebhookEvents and prunes.
	StatusLease string
	// APIListen is the events API's address (the WebhookEvent aggregated API; "" serves
	// none; without a cluster connection none is served either), APICertDir the directory of its serving certificate (tls.crt, tls.key,
	// reloaded when renewed; "" makes a self-signed one at start).
	APIListen, APICertDir string

	// KubeConfig is the cluster connection: the routing table (unless RoutingFile is
	// set) and the WebhookEvent status view. Without it the receiver runs standalone.
	KubeConfig *rest.Config
	Identity   string
	Log        logr.Logger
	AuditLog   *zap.Logger
	// Registry takes the receiver's metrics and serves them on /metrics.
	Registry Registry
	// Ready, when set, receives the bound webhook and probe addresses once serving.
	Ready func(webhook, probe string)
	// APIReady, when set, receives the events API's bound address once it listens.
	APIReady func(addr string)
}

// Registry registers and gathers metrics.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// DefaultOptions are the receiver's defaults, the flags' defaults among them.
func DefaultOptions() Options {
	return Options{
		Namespace:                os.Getenv("POD_NAMESPACE"),
		RoutingSecret:            routing.DefaultSecretName,
		StatusLease:              DefaultStatusLease,
		DatabaseURL:              os.Getenv("HOOKGATE_DATABASE_URL"),
		Listen:                   ":8080",
		ProbeListen:              ":8081",
		APIListen:                ":8443",
		DataDir:                  "/var/lib/hookgate",
		StoreRetention:           7 * 24 * time.Hour,
		DeliveryWorkers:          delivery.DefaultWorkers,
		RemovedDestinationGrace:  delivery.DefaultRemovedGrace,
		DatabaseStatementTimeout: postgres.DefaultStatementTimeout,
		ShutdownTimeout:          25 * time.Second,
		MaxInflightBodyBytes:     64 << 20,
		MaxStoredBytesPerPartner: 1 << 30,
		EmbeddedEngine:           store.EnginePebble,
		MinFreeDiskBytes:         store.DefaultMinFreeDiskBytes,
	}
}

// BindFlags binds the command-line flags to o, with o's current values as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace of the routing Secret and this replica's Lease (default $POD_NAMESPACE)")
	fs.StringVar(&o.RoutingSecret, "routing-secret", o.RoutingSecret, "name of the routing table Secret")
	fs.StringVar(&o.RoutingFile, "routing-file", o.RoutingFile, "load the routing table from this file instead of the cluster (reloaded on change)")
	fs.StringVar(&o.Listen, "listen", o.Listen, "webhook address")
	fs.StringVar(&o.APIListen, "api-listen", o.APIListen, "HTTPS address of the events API (WebhookEvents from the store, behind an APIService for events.hookgate.io; served only with a cluster connection, not with --routing-file; empty: not served)")
	fs.StringVar(&o.APICertDir, "api-cert-dir", o.APICertDir, "directory of the events API's serving certificate, tls.crt and tls.key, reloaded when they change (empty: a self-signed one made at start)")
	fs.StringVar(&o.ProbeListen, "probe-listen", o.ProbeListen, "probe and metrics address")
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "directory of the embedded event store (and the routing table's disk copy)")
	fs.StringVar(&o.EmbeddedEngine, "embedded-engine", o.EmbeddedEngine, "engine of the embedded store: pebble (a bbolt events.db in --data-dir, from an earlier release, is converted at start and kept as events.db.converted), or bbolt")
	fs.Int64Var(&o.MinFreeDiskBytes, "min-free-disk-bytes", o.MinFreeDiskBytes, "free space the embedded store keeps on the data directory's disk: below it new events get 503 and /readyz fails (0: none kept)")
	fs.StringVar(&o.DatabaseURL, "database-url", o.DatabaseURL, "postgres:// URL of a PostgreSQL event store instead of the embedded one (default $HOOKGATE_DATABASE_URL); never logged")
	fs.StringVar(&o.PublicURL, "public-url", o.PublicURL, "the receiver's URL as partners and destinations reach it, such as https://hooks.example.com: the base of the JWT-signed deliveries' issuers, one per namespace at <public-url>/issuers/<namespace>, each serving its namespace's keys at <issuer>/.well-known/jwks.json")
	fs.StringVar(&o.StatusLease, "status-lease", o.StatusLease, "Lease (in --namespace) electing the one replica of a PostgreSQL store that writes WebhookEvents and prunes")
	fs.StringVar(&o.DatabasePasswordFile, "database-password-file", o.DatabasePasswordFile, "file holding the database password, such as a mounted Secret key")
	fs.IntVar(&o.DatabaseMaxConns, "database-max-conns", o.DatabaseMaxConns, fmt.Sprintf("with --database-url: connections this replica's pool opens at most (0: %d, or the URL's pool_max_conns); one partner's event-list requests hold at most a %dth of them at once", postgres.DefaultMaxConns, postgres.PartnerShareDivisor))
	fs.DurationVar(&o.DatabaseStatementTimeout, "database-statement-timeout", o.DatabaseStatementTimeout, "with --database-url: the longest one statement may run (migrations excepted); a request whose statement is cut off answers 503")
	cidrListVar(fs, &o.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed")
	// The WebhookEvent custom resources they bounded are gone (the events API serves the
	// store): still taken, so that an upgrade's old arguments start the receiver.
	_ = fs.Duration("event-retention", 24*time.Hour, "ignored: WebhookEvents are served from the store, kept for --store-retention")
	_ = fs.Int("max-events-per-namespace", 5000, "ignored: WebhookEvents are served from the store, with no cap")
	fs.DurationVar(&o.StoreRetention, "store-retention", o.StoreRetention, "how long finished events are kept in the store (at least the longest dedup window)")
	fs.BoolVar(&o.AllowLinkLocalDestinations, "allow-link-local-destinations", o.AllowLinkLocalDestinations, "let deliveries reach link-local addresses such as 169.254.169.254")
	cidrListVar(fs, &o.DestinationAllowCIDRs, "destination-allow-cidrs", "comma-separated CIDRs that url destinations and JWKS URLs may reach besides public addresses (for example 10.20.0.0/16)")
	fs.IntVar(&o.DeliveryWorkers, "delivery-workers", o.DeliveryWorkers, fmt.Sprintf("concurrent deliveries at most (%d per destination)", delivery.DefaultPerDestination))
	fs.DurationVar(&o.RemovedDestinationGrace, "removed-destination-grace", o.RemovedDestinationGrace, "how long a destination, or its endpoint, may be missing from the routing table before its queued deliveries are finished as Failed with reason DestinationRemoved (a redelivery queues them again)")
	fs.Int64Var(&o.MaxInflightBodyBytes, "max-inflight-body-bytes", o.MaxInflightBodyBytes, "request body bytes held in memory at once across all requests; past it requests get 503 with Retry-After")
	fs.Int64Var(&o.MaxStoredBytesPerPartner, "max-stored-bytes-per-partner", o.MaxStoredBytesPerPartner, "payload bytes one partner may have stored, unless its spec.limits.maxStoredBytes says otherwise; past it its events get 507")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long in-flight requests may finish on SIGTERM")
}

// cidrListVar binds a flag holding a comma-separated list of CIDRs or addresses.
func cidrListVar(fs *flag.FlagSet, dst *[]netip.Prefix, name, usage string) {
	fs.Func(name, usage, func(v string) error {
		cidrs, err := ParseTrustedProxies(v)
		*dst = cidrs
		return err
	})
}

// Validate reports the first option that cannot work, naming its flag.
func (o *Options) Validate() error {
	var errs []error
	if o.RoutingFile == "" && o.Namespace == "" {
		errs = append(errs, errors.New("--namespace is required (or --routing-file for standalone use)"))
	}
	if o.PublicURL != "" {
		if u, err := url.Parse(o.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("--public-url must be an http or https URL without query or fragment, such as https://hooks.example.com, got %q", o.PublicURL))
		}
	}
	if o.DatabaseURL != "" && o.RoutingFile == "" && o.StatusLease == "" {
		errs = append(errs, errors.New("--status-lease must not be empty with --database-url"))
	}
	if o.RoutingFile == "" && o.RoutingSecret == "" {
		errs = append(errs, errors.New("--routing-secret must not be empty"))
	}
	for flagName, v := range map[string]string{"--listen": o.Listen, "--probe-listen": o.ProbeListen, "--data-dir": o.DataDir} {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s must not be empty", flagName))
		}
	}
	for flagName, d := range map[string]time.Duration{"--store-retention": o.StoreRetention, "--shutdown-timeout": o.ShutdownTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", flagName, d))
		}
	}
	if o.MaxInflightBodyBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("--max-inflight-body-bytes must be at least 1 MiB, got %d", o.MaxInflightBodyBytes))
	}
	if o.DatabaseMaxConns < 0 || o.DatabaseMaxConns > 1000 {
		errs = append(errs, fmt.Errorf("--database-max-conns must be between 0 and 1000, got %d", o.DatabaseMaxConns))
	}
	if o.DatabaseStatementTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--database-statement-timeout must be at least 1s, got %s", o.DatabaseStatementTimeout))
	}
	if o.DatabasePasswordFile != "" && o.DatabaseURL == "" {
		errs = append(errs, errors.New("--database-password-file needs --database-url"))
	}
	if o.MaxStoredBytesPerPartner < 1 {
		errs = append(errs, fmt.Errorf("--max-stored-bytes-per-partner must be positive, got %d", o.MaxStoredBytesPerPartner))
	}
	if o.RemovedDestinationGrace < time.Minute {
		errs = append(errs, fmt.Errorf("--removed-destination-grace must be at least 1m (a routing table swap must not fail a destination's events), got %s", o.RemovedDestinationGrace))
	}
	if o.DeliveryWorkers < 1 {
		errs = append(errs, fmt.Errorf("--delivery-workers must be at least 1, got %d", o.DeliveryWorkers))
	}
	if !slices.Contains(store.Engines, o.EmbeddedEngine) {
		errs = append(errs, fmt.Errorf("--embedded-engine must be one of %s, got %q", strings.Join(store.Engines, ", "), o.EmbeddedEngine))
	}
	if o.MinFreeDiskBytes < 0 {
		errs = append(errs, fmt.Errorf("--min-free-disk-bytes must not be negative, got %d", o.MinFreeDiskBytes))
	}
	return errors.Join(errs...)
}
