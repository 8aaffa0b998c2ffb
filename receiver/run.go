package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/scheme"
	"github.com/hookgate/hookgate/receiver/delivery"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/eventstatus"
	"github.com/hookgate/hookgate/receiver/store"
)

// Run serves until ctx ends, then shuts down gracefully: stop accepting, finish in-flight
// requests, close the store.
func Run(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	if opts.RoutingFile == "" && opts.KubeConfig == nil {
		return errors.New("either --routing-file or a cluster connection (KUBECONFIG or in-cluster) is needed")
	}
	opts.Log.V(1).Info("starting", "listen", opts.Listen, "probeListen", opts.ProbeListen, "dataDir", opts.DataDir,
		"routingFile", opts.RoutingFile, "namespace", opts.Namespace, "routingSecret", opts.RoutingSecret,
		"deliveryWorkers", opts.DeliveryWorkers, "storeRetention", opts.StoreRetention, "apiListen", opts.APIListen)
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	metrics := NewMetrics(opts.Registry)
	st, backend, err := openStore(ctx, opts, metrics.ObserveCommit)
	if err != nil {
		return err
	}
	opts.Log.Info("event store open", "store", backend)
	defer func() {
		if err := st.Close(); err != nil {
			opts.Log.Error(err, "closing the store")
		}
	}()

	holder := routing.NewHolder()
	onLoad := func(t *routing.Table) { metrics.ObserveTable(t.Serial) }
	bg, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopBackground(); wg.Wait() }()
	goBackground := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(bg); err != nil {
				opts.Log.Error(err, "background task stopped", "task", name)
			}
		}()
	}
	filterFailures := newFilterFailureLog()
	if opts.RoutingFile != "" {
		fw := &routing.FileWatcher{Path: opts.RoutingFile, Holder: holder, Log: opts.Log.WithName("routing"), OnLoad: onLoad}
		if err := fw.Load(); err != nil {
			return fmt.Errorf("routing file %s: %w", opts.RoutingFile, err)
		}
		goBackground("routing-file", fw.Start)
	} else {
		client, err := kubernetes.NewForConfig(withUserAgent(opts.KubeConfig, "hookgate-receiver/routing"))
		if err != nil {
			return err
		}
		log := opts.Log.WithName("routing")
		watcher := &routing.SecretWatcher{
			Client: client, Namespace: opts.Namespace, Name: opts.RoutingSecret, Holder: holder, Log: log,
			Cache: &routing.DiskCache{Path: filepath.Join(opts.DataDir, "routing-table.json.gz")}, OnLoad: onLoad,
		}
		reporter := &routing.LeaseReporter{Client: client, Namespace: opts.Namespace, Identity: replicaIdentity(opts), Holder: holder, PublicURL: strings.TrimSuffix(opts.PublicURL, "/"), Report: filterFailures.annotations, Log: log}
		goBackground("routing-secret", watcher.Start)
		goBackground("lease", reporter.Start)
	}

	guard := newEgressGuard(ctx, opts)
	var onCircuit func(string, bool)
	if opts.KubeConfig != nil {
		recorder, stopEvents, err := newEventRecorder(opts.KubeConfig)
		if err != nil {
			return err
		}
		defer stopEvents()
		onCircuit = circuitEvents(recorder, holder)
	}
	dispatcher := delivery.NewDispatcher(delivery.Options{
		Owner: delivery.DefaultOwner(replicaIdentity(opts)), PublicURL: opts.PublicURL, Store: st, Holder: holder, Log: opts.Log.WithName("delivery"), Workers: opts.DeliveryWorkers,
		RemovedGrace: opts.RemovedDestinationGrace, Egress: guard, Metrics: delivery.NewMetrics(opts.Registry), OnCircuit: onCircuit,
	})
	srv := NewServer(Config{
		Store: st, Holder: holder, TrustedProxies: opts.TrustedProxies, AuditLog: opts.AuditLog,
		Metrics: metrics, Gatherer: opts.Registry, Log: opts.Log, OnStored: dispatcher.Wake, Egress: guard, FilterFailures: filterFailures,
		MaxInflightBodyBytes: opts.MaxInflightBodyBytes, DefaultPartnerQuota: opts.MaxStoredBytesPerPartner, PublicURL: opts.PublicURL,
	})
	goBackground("delivery", dispatcher.Start)
	if listener, ok := st.(store.Listener); ok {
		// Another replica's ingest wakes this one's idle workers; polling stays the fallback.
		goBackground("listen", func(ctx context.Context) error { return listener.Listen(ctx, dispatcher.Wake) })
	}
	goBackground("usage", srv.usageLoop)
	goBackground("daily-counts", srv.usageFlushLoop)
	prune := func(ctx context.Context) error { return srv.pruneLoop(ctx, opts.StoreRetention) }
	switch {
	case opts.KubeConfig == nil:
		goBackground("prune", prune)
	case backend == backendEmbedded:
		// One process holds an embedded store: it is the only writer of its events' views.
		reflect, err := newReflection(opts, st, holder, dispatcher.Wake)
		if err != nil {
			return err
		}
		goBackground("prune", prune)
		goBackground("eventstatus", reflect)
	default:
		reflect, err := newReflection(opts, st, holder, dispatcher.Wake)
		if err != nil {
			return err
		}
		leader := &statusLeader{Config: opts.KubeConfig, Namespace: opts.Namespace, Name: opts.StatusLease,
			Identity: replicaIdentity(opts), Log: opts.Log.WithName("status-lease"), OnChange: metrics.ObserveStatusLeader}
		goBackground("status-lease", func(ctx context.Context) error {
			return leader.run(ctx, func(ctx context.Context) {
				var wg sync.WaitGroup
				wg.Go(func() { _ = prune(ctx) })
				if err := reflect(ctx); err != nil {
					opts.Log.Error(err, "status reflection stopped")
				}
				wg.Wait()
			})
		})
	}

	var lc net.ListenConfig
	if opts.APIListen != "" && opts.KubeConfig != nil {
		if err := serveEventsAPI(ctx, opts, st, dispatcher.Wake, goBackground); err != nil {
			return err
		}
	}
	webhookLn, err := lc.Listen(ctx, "tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", opts.Listen, err)
	}
	probeLn, err := lc.Listen(ctx, "tcp", opts.ProbeListen)
	if err != nil {
		_ = webhookLn.Close()
		return fmt.Errorf("listening on %s: %w", opts.ProbeListen, err)
	}
	webhook := newHTTPServer(srv.Handler())
	probe := newHTTPServer(srv.ProbeHandler())
	errs := make(chan error, 2)
	go func() { errs <- webhook.Serve(webhookLn) }()
	go func() { errs <- probe.Serve(probeLn) }()
	opts.Log.Info("receiver serving", "webhook", webhookLn.Addr().String(), "probe", probeLn.Addr().String(), "dataDir", opts.DataDir)
	if opts.Ready != nil {
		opts.Ready(webhookLn.Addr().String(), probeLn.Addr().String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	opts.Log.Info("shutting down: no new requests, finishing those in flight")
	shutdown, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := webhook.Shutdown(shutdown); err != nil {
		opts.Log.Error(err, "webhook server shutdown")
	}
	_ = probe.Shutdown(shutdown)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// newEgressGuard is the one guard of every outbound connection (deliveries and JWKS
// fetches): the admin's allow list and link-local switch, the API server's addresses
// (resolved now; none when standalone) and this pod's own addresses.
func newEgressGuard(ctx context.Context, opts Options) *egress.Guard {
	var apiServer []netip.Addr
	if opts.KubeConfig != nil {
		var err error
		if apiServer, err = egress.LookupHost(ctx, opts.KubeConfig.Host); err != nil {
			opts.Log.Error(err, "resolving the API server for the egress policy; its addresses are not refused as such")
		}
	}
	own := egress.OwnAddrs()
	opts.Log.V(1).Info("egress policy", "allowCIDRs", opts.DestinationAllowCIDRs, "allowLinkLocal", opts.AllowLinkLocalDestinations,
		"apiServer", apiServer, "own", own)
	return egress.New(egress.Config{
		AllowCIDRs: opts.DestinationAllowCIDRs, AllowLinkLocal: opts.AllowLinkLocalDestinations, APIServer: apiServer, Own: own,
	})
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// newReflection returns what follows the store's events for the control plane (a
// Partner's lastEventAt, an endpoint's redeliver-failed), run until ctx ends.
func newReflection(opts Options, st store.Store, holder *routing.Holder, wake func()) (func(context.Context) error, error) {
	cfg := withUserAgent(opts.KubeConfig, "hookgate-receiver/status")
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, fmt.Errorf("connecting to the API server: %w", err)
	}
	reporter := eventstatus.New(eventstatus.Options{Client: c, Store: st, Holder: holder, Log: opts.Log.WithName("eventstatus"), Wake: wake})
	return reporter.Start, nil
}

// replicaIdentity names this replica in its Leases: --identity, else POD_NAME or the
// host name.
func replicaIdentity(opts Options) string {
	if opts.Identity != "" {
		return opts.Identity
	}
	return routing.Identity()
}

// withUserAgent copies cfg, names the caller, and lets the status view write quickly:
// it is rate limited by its own batching, not by client-go's default 5 QPS.
func withUserAgent(cfg *rest.Config, agent string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.UserAgent = agent
	if c.QPS == 0 {
		c.QPS, c.Burst = 200, 400
	}
	return c
}
