package controllers

import (
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// NewManager builds the operator: the Partner and WebhookEndpoint controllers and the
// routing table publisher, sharing one cache.
func NewManager(cfg *rest.Config, scheme *runtime.Scheme, opts Options) (ctrl.Manager, *Publisher, error) {
	if err := opts.Validate(); err != nil {
		return nil, nil, err
	}
	cacheOpts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			// The data only of the Secrets the operator made (tenantSecretClient).
			&corev1.Secret{}: {Transform: dropForeignSecretData},
			// Only the public-key ConfigMaps it made, not every ConfigMap of the cluster.
			&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue})},
			// Only the receivers' Leases, not every Lease of the cluster.
			&coordinationv1.Lease{}: {
				Namespaces: map[string]cache.Config{opts.ReceiverNamespace: {}},
				Label:      labels.SelectorFromSet(labels.Set{routing.LabelRole: routing.RoleReceiver}),
			},
		},
	}
	if len(opts.WatchNamespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range opts.WatchNamespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(opts.KubeAPIQPS), opts.KubeAPIBurst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsBindAddress},
		HealthProbeBindAddress:        opts.HealthProbeBindAddress,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.ReceiverNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, nil, err
	}
	c := newTenantSecretClient(mgr.GetClient(), mgr.GetAPIReader())
	publisher := NewPublisher(c, mgr.GetAPIReader(), opts.ReceiverNamespace, opts.RoutingSecretName,
		mgr.GetLogger().WithName("routing"))
	publisher.Policy = NewPolicy(opts)
	if err := mgr.Add(publisher); err != nil {
		return nil, nil, err
	}
	if err := (&PartnerReconciler{
		Client: c, Recorder: mgr.GetEventRecorder("hookgate-operator"), Publisher: publisher,
	}).SetupWithManager(mgr); err != nil {
		return nil, nil, fmt.Errorf("setting up the Partner controller: %w", err)
	}
	if err := (&WebhookEndpointReconciler{
		Client: c, Recorder: mgr.GetEventRecorder("hookgate-operator"), Publisher: publisher,
	}).SetupWithManager(mgr); err != nil {
		return nil, nil, fmt.Errorf("setting up the WebhookEndpoint controller: %w", err)
	}
	if opts.EventsAPICertSecret != "" {
		if err := mgr.Add(&EventsAPICertRotator{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: opts.ReceiverNamespace,
			SecretName: opts.EventsAPICertSecret, Service: opts.EventsAPIServiceName, Log: mgr.GetLogger().WithName("events-api-cert"),
		}); err != nil {
			return nil, nil, err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, nil, err
	}
	return mgr, publisher, nil
}
