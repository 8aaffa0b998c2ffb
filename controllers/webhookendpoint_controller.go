package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// WebhookEndpointReconciler checks that everything an endpoint names exists, creates its
// destination signing Secret, and reports whether the receivers serve it.
type WebhookEndpointReconciler struct {
	Client    client.Client
	Recorder  events.EventRecorder
	Publisher *Publisher
}

// Reconcile fetches the endpoint, runs reconcile, and writes the status once.
func (r *WebhookEndpointReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileStatus(ctx, r.Client, r.Publisher, req, &hookgatev1alpha1.WebhookEndpoint{},
		func(o *hookgatev1alpha1.WebhookEndpoint) any { return &o.Status }, r.reconcile)
}

func (r *WebhookEndpointReconciler) reconcile(ctx context.Context, e *hookgatev1alpha1.WebhookEndpoint) (ctrl.Result, error) {
	e.Status.ObservedGeneration = e.Generation
	e.Status.URL = e.EffectivePath()
	secret, recheck, err := r.ensureSigning(ctx, e, time.Now())
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.publishSigning(ctx, e, secret); err != nil {
		var prob *problem
		if !errors.As(err, &prob) {
			return ctrl.Result{}, err
		}
		r.setReady(e, false, prob.Reason, prob.Message)
		return ctrl.Result{}, nil
	}
	if _, err := resolveEndpoint(ctx, r.Client, r.Publisher.Policy, e); err != nil {
		var prob *problem
		if !errors.As(err, &prob) {
			return ctrl.Result{}, err
		}
		r.setReady(e, false, prob.Reason, prob.Message)
		return ctrl.Result{RequeueAfter: recheck}, nil
	}
	if prob := r.Publisher.exclusion(kindEndpoint, e.Namespace, e.Name); prob != nil {
		r.setReady(e, false, prob.Reason, prob.Message)
		return ctrl.Result{}, nil
	}
	table := r.Publisher.Current()
	var entry *routing.Endpoint
	if table != nil {
		if found, ok := table.EndpointByPath(e.EffectivePath()); ok && found.Namespace == e.Namespace && found.Name == e.Name {
			entry = found
		}
	}
	if entry == nil {
		r.setReady(e, false, hookgatev1alpha1.ReasonPublishing, "waiting for the endpoint to enter the routing table (every partner it names must be ready)")
		return ctrl.Result{}, nil
	}
	ready, reason, message, err := r.Publisher.readiness(ctx, entry.Rev)
	if err != nil {
		return ctrl.Result{}, err
	}
	if ready {
		message = fmt.Sprintf("partners can post to %s; %s", e.Status.URL, message)
	}
	r.setReady(e, ready, reason, message)
	return ctrl.Result{RequeueAfter: minPositive(recheck, leaseRecheck)}, nil
}

func (r *WebhookEndpointReconciler) setReady(e *hookgatev1alpha1.WebhookEndpoint, ok bool, reason, message string) {
	setCondition(r.Recorder, e, &e.Status.Conditions, hookgatev1alpha1.ConditionReady, ok, reason, message)
}

// SetupWithManager registers the controller, its indexes and watches.
func (r *WebhookEndpointReconciler) SetupWithManager(mgr ctrl.Manager) error {
	indexer := mgr.GetFieldIndexer()
	ctx := context.Background()
	if err := indexer.IndexField(ctx, &hookgatev1alpha1.WebhookEndpoint{}, indexEndpointPath, func(o client.Object) []string {
		return []string{o.(*hookgatev1alpha1.WebhookEndpoint).EffectivePath()}
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &hookgatev1alpha1.WebhookEndpoint{}, indexEndpointSecrets, func(o client.Object) []string {
		e := o.(*hookgatev1alpha1.WebhookEndpoint)
		names := []string{e.SigningSecretName()}
		if ref := e.Spec.Verification.SecretRef; ref != nil {
			names = append(names, ref.Name)
		}
		return names
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &hookgatev1alpha1.WebhookEndpoint{}, indexEndpointService, func(o client.Object) []string {
		var names []string
		for _, d := range o.(*hookgatev1alpha1.WebhookEndpoint).Spec.AllDestinations() {
			if d.Service != nil && !slices.Contains(names, d.Service.Name) {
				names = append(names, d.Service.Name)
			}
		}
		return names
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&hookgatev1alpha1.WebhookEndpoint{}).
		Owns(&corev1.Secret{}).
		Owns(&corev1.ConfigMap{}).
		// When an endpoint goes or moves, the ones waiting for its path get another look.
		Watches(&hookgatev1alpha1.WebhookEndpoint{}, handler.EnqueueRequestsFromMapFunc(r.endpointsOnSamePath)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexEndpointSecrets))).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexEndpointService))).
		// A headless Service's addresses are its endpoints: they change with its pods.
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.bySliceService)).
		Watches(&hookgatev1alpha1.Partner{}, handler.EnqueueRequestsFromMapFunc(r.endpointsInNamespace)).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(r.allEndpoints), builder.WithPredicates(receiverLeaseChanged())).
		WatchesRawSource(source.Channel(r.Publisher.EndpointEvents, &handler.EnqueueRequestForObject{})).
		Named("webhookendpoint").
		Complete(r)
}

func (r *WebhookEndpointReconciler) list(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list hookgatev1alpha1.WebhookEndpointList
	if err := r.Client.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "listing webhook endpoints")
		return nil
	}
	return requestsFor(list.Items)
}

func (r *WebhookEndpointReconciler) endpointsOnSamePath(ctx context.Context, o client.Object) []reconcile.Request {
	return r.list(ctx, client.MatchingFields{indexEndpointPath: o.(*hookgatev1alpha1.WebhookEndpoint).EffectivePath()})
}

func (r *WebhookEndpointReconciler) byIndex(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.list(ctx, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()})
	}
}

func (r *WebhookEndpointReconciler) bySliceService(ctx context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[discoveryv1.LabelServiceName]
	if name == "" {
		return nil
	}
	return r.list(ctx, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexEndpointService: name})
}

func (r *WebhookEndpointReconciler) endpointsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.list(ctx, client.InNamespace(o.GetNamespace()))
}

func (r *WebhookEndpointReconciler) allEndpoints(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.list(ctx)
}

// receiverLeaseChanged passes receiver Lease events that change what a receiver serves:
// one appearing or going, a new serial, a new public URL (the JWT issuers' base) or new
// filter failures.
// Renewals alone do not pass.
func receiverLeaseChanged() predicate.Predicate {
	isReceiver := func(o client.Object) bool { return o.GetLabels()[routing.LabelRole] == routing.RoleReceiver }
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return isReceiver(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return isReceiver(e.Object) },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			changed := func(key string) bool { return e.ObjectOld.GetAnnotations()[key] != e.ObjectNew.GetAnnotations()[key] }
			return isReceiver(e.ObjectNew) && (changed(routing.AnnotationSerial) || changed(routing.AnnotationPublicURL) || changed(routing.AnnotationFilterFailures))
		},
	}
}
