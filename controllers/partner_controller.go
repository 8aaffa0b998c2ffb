package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// PartnerReconciler gives each Partner its credentials Secret, rotates it on request, and
// reports whether the receivers serve the partner.
type PartnerReconciler struct {
	Client    client.Client
	Recorder  events.EventRecorder
	Publisher *Publisher
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Reconcile fetches the Partner, runs reconcile, and writes the status once.
func (r *PartnerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileStatus(ctx, r.Client, r.Publisher, req, &hookgatev1alpha1.Partner{},
		func(o *hookgatev1alpha1.Partner) any { return &o.Status }, r.reconcile)
}

func (r *PartnerReconciler) reconcile(ctx context.Context, p *hookgatev1alpha1.Partner) (ctrl.Result, error) {
	p.Status.ObservedGeneration = p.Generation
	var result ctrl.Result
	credsErr := r.reconcileCredentials(ctx, p, &result)
	var prob *problem
	if credsErr != nil && !errors.As(credsErr, &prob) {
		return result, credsErr
	}
	if prob != nil {
		r.setCondition(p, hookgatev1alpha1.ConditionCredentialsReady, false, prob.Reason, prob.Message)
		r.setCondition(p, hookgatev1alpha1.ConditionReady, false, hookgatev1alpha1.ReasonCredentialsNotReady, "the credentials Secret is not usable: "+prob.Message)
		return result, nil
	}

	if p.Spec.Suspended {
		r.setCondition(p, hookgatev1alpha1.ConditionReady, false, hookgatev1alpha1.ReasonSuspended, "the partner is suspended: its requests get 403")
		return result, nil
	}
	if _, err := resolvePartner(ctx, r.Client, r.Publisher.Policy, p, r.Now()); err != nil {
		if !errors.As(err, &prob) {
			return result, err
		}
		r.setCondition(p, hookgatev1alpha1.ConditionReady, false, prob.Reason, prob.Message)
		return result, nil
	}
	if prob := r.Publisher.exclusion(kindPartner, p.Namespace, p.Name); prob != nil {
		r.setCondition(p, hookgatev1alpha1.ConditionReady, false, prob.Reason, prob.Message)
		return result, nil
	}
	table := r.Publisher.Current()
	var entryRev uint64
	if table != nil {
		if entry, ok := table.Partner(p.Namespace, p.Name); ok {
			entryRev = entry.Rev
		}
	}
	if entryRev == 0 {
		r.setCondition(p, hookgatev1alpha1.ConditionReady, false, hookgatev1alpha1.ReasonPublishing, "waiting for the partner to enter the routing table")
		return result, nil
	}
	ready, reason, message, err := r.Publisher.readiness(ctx, entryRev)
	if err != nil {
		return result, err
	}
	replicas, err := r.Publisher.liveReceivers(ctx)
	if err != nil {
		return result, err
	}
	p.Status.RateLimit = effectiveRate(p, replicas)
	r.setCondition(p, hookgatev1alpha1.ConditionReady, ready, reason, message)
	// Leases expire without an event: look again once they could have.
	result.RequeueAfter = minPositive(result.RequeueAfter, leaseRecheck)
	return result, nil
}

// effectiveRate says what the receivers let the partner send: each replica keeps its own
// bucket (sharing one would put a store round trip on every request), so the rate a
// partner reaches is the per-replica rate times the live replicas its traffic is spread
// over.
func effectiveRate(p *hookgatev1alpha1.Partner, replicas int) string {
	rate := int64(hookgatev1alpha1.DefaultRequestsPerSecond)
	if p.Spec.RateLimit != nil {
		rate = int64(p.Spec.RateLimit.RequestsPerSecond)
	}
	if replicas <= 1 {
		return fmt.Sprintf("%d/s", rate)
	}
	return fmt.Sprintf("%d/s per receiver, %d receivers: up to %d/s", rate, replicas, rate*int64(replicas))
}

func (r *PartnerReconciler) setCondition(p *hookgatev1alpha1.Partner, typ string, ok bool, reason, message string) {
	setCondition(r.Recorder, p, &p.Status.Conditions, typ, ok, reason, message)
}

// reconcileCredentials makes sure the credentials Secret exists and holds usable keys,
// rotates it when asked, and drops previous credentials when their grace period ends. It
// returns a *problem when the Secret is not usable.
func (r *PartnerReconciler) reconcileCredentials(ctx context.Context, p *hookgatev1alpha1.Partner, result *ctrl.Result) error {
	name := p.CredentialsSecretName()
	p.Status.SecretName = name
	var secret corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &secret)
	if apierrors.IsNotFound(err) {
		return r.createCredentials(ctx, p, name)
	}
	if err != nil {
		return err
	}
	now := r.Now()
	owned := metav1.IsControlledBy(&secret, p)
	if !owned {
		// A Secret the operator did not create is read, never written.
		if len(secret.Data[hookgatev1alpha1.SecretKeyAPIKey]) == 0 || len(secret.Data[hookgatev1alpha1.SecretKeySigningSecret]) == 0 {
			return &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q was not created by hookgate and lacks key %q or %q", name, hookgatev1alpha1.SecretKeyAPIKey, hookgatev1alpha1.SecretKeySigningSecret)}
		}
		if token := p.Annotations[hookgatev1alpha1.AnnotationRotate]; token != "" {
			message := fmt.Sprintf("Secret %q was not created by hookgate, so it cannot be rotated: write new keys into it", name)
			r.markCredentialsReady(p, &secret, hookgatev1alpha1.ReasonRotationNotPossible, message)
			return nil
		}
		r.markCredentialsReady(p, &secret, hookgatev1alpha1.ReasonCredentialsFound, fmt.Sprintf("using Secret %q provided by the user", name))
		return nil
	}

	updated := secret.DeepCopy()
	changed := false
	if len(updated.Data[hookgatev1alpha1.SecretKeyAPIKey]) == 0 || len(updated.Data[hookgatev1alpha1.SecretKeySigningSecret]) == 0 {
		// Someone emptied the operator's own Secret: make it whole again.
		if err := fillCredentials(updated); err != nil {
			return err
		}
		changed = true
	}
	if token := p.Annotations[hookgatev1alpha1.AnnotationRotate]; token != "" && token != updated.Annotations[annotationRotationHandled] {
		if err := rotate(updated, token, gracePeriod(p), now); err != nil {
			return err
		}
		p.Status.CredentialsRotatedAt = &metav1.Time{Time: now}
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, "CredentialsRotated", "Rotate", "new credentials in Secret %q; previous ones valid for %s", name, gracePeriod(p))
		changed = true
	}
	if notAfter, ok := previousNotAfter(updated); ok {
		if !now.Before(notAfter) {
			dropPrevious(updated)
			changed = true
		} else {
			result.RequeueAfter = minPositive(result.RequeueAfter, notAfter.Sub(now)+50*time.Millisecond)
		}
	}
	if changed {
		if err := r.Client.Update(ctx, updated); err != nil {
			return err
		}
	}
	r.markCredentialsReady(p, updated, hookgatev1alpha1.ReasonCredentialsCreated, fmt.Sprintf("credentials in Secret %q", name))
	return nil
}

func (r *PartnerReconciler) createCredentials(ctx context.Context, p *hookgatev1alpha1.Partner, name string) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: p.Namespace,
			Labels: map[string]string{
				hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue,
				hookgatev1alpha1.LabelPartner:   hookgatev1alpha1.LabelValue(p.Name),
			},
			Annotations: map[string]string{annotationRotationHandled: p.Annotations[hookgatev1alpha1.AnnotationRotate]},
		},
		Type: corev1.SecretTypeOpaque,
	}
	if err := fillCredentials(secret); err != nil {
		return err
	}
	if err := controllerutil.SetControllerReference(p, secret, r.Client.Scheme()); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, secret); err != nil {
		// AlreadyExists: the cache had not seen it yet; the watch brings us back.
		return err
	}
	r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, hookgatev1alpha1.ReasonCredentialsCreated, "Create", "created credentials Secret %q", name)
	r.markCredentialsReady(p, secret, hookgatev1alpha1.ReasonCredentialsCreated, fmt.Sprintf("credentials in Secret %q", name))
	return nil
}

func (r *PartnerReconciler) markCredentialsReady(p *hookgatev1alpha1.Partner, secret *corev1.Secret, reason, message string) {
	key := string(secret.Data[hookgatev1alpha1.SecretKeyAPIKey])
	p.Status.APIKeyPrefix = key[:min(8, len(key))]
	r.setCondition(p, hookgatev1alpha1.ConditionCredentialsReady, true, reason, message)
}

func fillCredentials(s *corev1.Secret) error {
	apiKey, err := newAPIKey()
	if err != nil {
		return err
	}
	signing, err := newSigningSecret()
	if err != nil {
		return err
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[hookgatev1alpha1.SecretKeyAPIKey] = []byte(apiKey)
	s.Data[hookgatev1alpha1.SecretKeySigningSecret] = []byte(signing)
	return nil
}

// rotate moves the current credentials aside for the grace period and makes new ones.
func rotate(s *corev1.Secret, token string, grace time.Duration, now time.Time) error {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	dropPrevious(s)
	if grace > 0 {
		s.Data[hookgatev1alpha1.SecretKeyPreviousAPIKey] = s.Data[hookgatev1alpha1.SecretKeyAPIKey]
		s.Data[hookgatev1alpha1.SecretKeyPreviousSigningSecret] = s.Data[hookgatev1alpha1.SecretKeySigningSecret]
		s.Annotations[annotationPreviousNotAfter] = now.Add(grace).UTC().Format(time.RFC3339Nano)
	}
	s.Annotations[annotationRotationHandled] = token
	return fillCredentials(s)
}

func dropPrevious(s *corev1.Secret) {
	delete(s.Data, hookgatev1alpha1.SecretKeyPreviousAPIKey)
	delete(s.Data, hookgatev1alpha1.SecretKeyPreviousSigningSecret)
	delete(s.Annotations, annotationPreviousNotAfter)
}

func gracePeriod(p *hookgatev1alpha1.Partner) time.Duration {
	if g := p.Spec.Credentials.RotationGracePeriod; g != nil {
		return g.Duration
	}
	return 24 * time.Hour
}

// leaseRecheck is how often a partner or endpoint looks at receiver Leases again, since a
// Lease that stops being renewed sends no event.
const leaseRecheck = 30 * time.Second

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

// SetupWithManager registers the controller and its watches.
func (r *PartnerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &hookgatev1alpha1.Partner{}, indexPartnerSecret,
		func(o client.Object) []string { return []string{o.(*hookgatev1alpha1.Partner).CredentialsSecretName()} }); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&hookgatev1alpha1.Partner{}).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.partnersUsingSecret)).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(r.allPartners), builder.WithPredicates(receiverLeaseChanged())).
		WatchesRawSource(source.Channel(r.Publisher.PartnerEvents, &handler.EnqueueRequestForObject{})).
		Named("partner").
		Complete(r)
}

func (r *PartnerReconciler) partnersUsingSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list hookgatev1alpha1.PartnerList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexPartnerSecret: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing partners by credentials Secret")
		return nil
	}
	return requestsFor(list.Items)
}

func (r *PartnerReconciler) allPartners(ctx context.Context, _ client.Object) []reconcile.Request {
	var list hookgatev1alpha1.PartnerList
	if err := r.Client.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "listing partners")
		return nil
	}
	return requestsFor(list.Items)
}

func requestsFor[T any, PT interface {
	*T
	client.Object
}](items []T) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(items))
	for i := range items {
		o := PT(&items[i])
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
	}
	return out
}
