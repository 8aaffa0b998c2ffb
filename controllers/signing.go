package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
)

// annotationSigningType on a signing Secret names the type its keys are for: a change of
// type makes a new key at once (a key of another type is of no use to the destination).
// Secrets from before it hold Standard Webhooks secrets.
const annotationSigningType = "hookgate.io/signing-type"

// annotationKeyMadeAt on a signing Secret is when its current key was made.
const annotationKeyMadeAt = "hookgate.io/key-made-at"

// newSigningKey makes a key for the type: a whsec_ secret, or an RSA key pair as PEM.
func newSigningKey(t hookgatev1alpha1.SigningType) ([]byte, error) {
	if t == hookgatev1alpha1.SigningStandardWebhooks {
		s, err := newSigningSecret()
		return []byte(s), err
	}
	return signing.NewRSAKey()
}

func signingGrace(d *hookgatev1alpha1.Destination) time.Duration {
	if d.Signing != nil && d.Signing.RotationGracePeriod != nil {
		return d.Signing.RotationGracePeriod.Duration
	}
	return 24 * time.Hour
}

// signingSlot is where one destination's key lives in the endpoint's signing Secret,
// with the annotations that describe it, and where its public keys go in the ConfigMap:
// the default destination's under the names used before fan-out, another's under names
// made of its own (destination names are DNS labels of at most 40 characters, so every
// one is a valid Secret key and annotation name).
type signingSlot struct {
	destination                                    string
	current, previous                              string // Secret data keys
	typeAnnotation, madeAtAnnotation               string
	previousNotAfterAnnotation, rotationAnnotation string
	currentPEM, previousPEM                        string // ConfigMap keys
}

func slotOf(destination string) signingSlot {
	if destination == hookgatev1alpha1.DefaultDestinationName {
		return signingSlot{
			destination: destination, current: hookgatev1alpha1.SecretKeyDefault, previous: hookgatev1alpha1.SecretKeyPreviousSigning,
			typeAnnotation: annotationSigningType, madeAtAnnotation: annotationKeyMadeAt,
			previousNotAfterAnnotation: annotationPreviousNotAfter, rotationAnnotation: annotationRotationHandled,
			currentPEM: "public.pem", previousPEM: "previous.pem",
		}
	}
	suffix := "." + destination
	return signingSlot{
		destination: destination, current: destination, previous: destination + ".previous",
		typeAnnotation: annotationSigningType + suffix, madeAtAnnotation: annotationKeyMadeAt + suffix,
		previousNotAfterAnnotation: annotationPreviousNotAfter + suffix, rotationAnnotation: annotationRotationHandled + suffix,
		currentPEM: destination + ".pem", previousPEM: destination + ".previous.pem",
	}
}

func (sl signingSlot) signingType(s *corev1.Secret) hookgatev1alpha1.SigningType {
	if t := s.Annotations[sl.typeAnnotation]; t != "" {
		return hookgatev1alpha1.SigningType(t)
	}
	return hookgatev1alpha1.SigningStandardWebhooks // Secrets from before the annotation
}

func (sl signingSlot) previousNotAfter(s *corev1.Secret) (time.Time, bool) {
	v, ok := s.Annotations[sl.previousNotAfterAnnotation]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

func (sl signingSlot) dropPrevious(s *corev1.Secret) {
	delete(s.Data, sl.previous)
	delete(s.Annotations, sl.previousNotAfterAnnotation)
}

// signedDestinations are the endpoint's destinations that sign their deliveries.
func signedDestinations(e *hookgatev1alpha1.WebhookEndpoint) []*hookgatev1alpha1.Destination {
	var out []*hookgatev1alpha1.Destination
	for _, d := range e.Spec.AllDestinations() {
		if d.SigningTypeOf() != hookgatev1alpha1.SigningNone {
			out = append(out, d)
		}
	}
	return out
}

// ensureSigning makes, converts and rotates each destination's key in <name>-signing:
// created when absent, replaced when its signing type changed, rotated (the current key
// kept as "previous" for the grace period) when hookgate.io/rotate-signing takes a new
// value, and the previous key dropped once its grace period is over; the keys of
// destinations no longer in the spec are removed. It returns the Secret (nil when no
// destination signs) and when to look again.
func (r *WebhookEndpointReconciler) ensureSigning(ctx context.Context, e *hookgatev1alpha1.WebhookEndpoint, now time.Time) (*corev1.Secret, time.Duration, error) {
	signed := signedDestinations(e)
	if len(signed) == 0 {
		return nil, 0, nil
	}
	token := e.Annotations[hookgatev1alpha1.AnnotationRotateSigning]
	var secret corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: e.SigningSecretName()}, &secret)
	creating := apierrors.IsNotFound(err)
	if err != nil && !creating {
		return nil, 0, err
	}
	if !creating && secret.Labels[hookgatev1alpha1.LabelManagedBy] != hookgatev1alpha1.ManagedByValue {
		return &secret, 0, nil // made by a user: theirs to change
	}
	updated := secret.DeepCopy()
	if creating {
		updated = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: e.SigningSecretName(), Namespace: e.Namespace,
				Labels: map[string]string{
					hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue,
					hookgatev1alpha1.LabelEndpoint:  hookgatev1alpha1.LabelValue(e.Name),
				},
			},
			Type: corev1.SecretTypeOpaque,
		}
		if err := controllerutil.SetControllerReference(e, updated, r.Client.Scheme()); err != nil {
			return nil, 0, err
		}
	}
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	if updated.Data == nil {
		updated.Data = map[string][]byte{}
	}
	changed := false
	var recheck time.Duration
	keep := map[string]bool{}
	for _, d := range signed {
		sl := slotOf(d.NameOrDefault())
		keep[sl.current], keep[sl.previous] = true, true
		c, next, err := r.ensureSlot(e, updated, sl, d, token, now, creating)
		if err != nil {
			return nil, 0, err
		}
		changed = changed || c
		if next > 0 && (recheck == 0 || next < recheck) {
			recheck = next
		}
	}
	for key := range updated.Data {
		if !keep[key] {
			delete(updated.Data, key) // a destination that left the spec, or stopped signing
			changed = true
		}
	}
	switch {
	case creating:
		if err := r.Client.Create(ctx, updated); err != nil {
			return nil, 0, err
		}
		r.Recorder.Eventf(e, nil, corev1.EventTypeNormal, "SigningSecretCreated", "Create", "created destination signing Secret %q", updated.Name)
	case changed:
		if err := r.Client.Update(ctx, updated); err != nil {
			return nil, 0, err
		}
	}
	return updated, recheck, nil
}

// ensureSlot brings one destination's key in the Secret up to date; it reports whether
// it changed anything and when its previous key's grace period ends.
func (r *WebhookEndpointReconciler) ensureSlot(e *hookgatev1alpha1.WebhookEndpoint, s *corev1.Secret, sl signingSlot, d *hookgatev1alpha1.Destination, token string, now time.Time, creating bool) (bool, time.Duration, error) {
	want := d.SigningTypeOf()
	changed := false
	switch {
	case len(s.Data[sl.current]) == 0 || sl.signingType(s) != want:
		key, err := newSigningKey(want)
		if err != nil {
			return false, 0, err
		}
		if len(s.Data[sl.current]) > 0 && !creating {
			r.Recorder.Eventf(e, nil, corev1.EventTypeNormal, "SigningKeyReplaced", "Rotate", "destination %q signs with %s now: new key in Secret %q", sl.destination, want, s.Name)
		}
		sl.dropPrevious(s)
		s.Data[sl.current] = key
		s.Annotations[sl.typeAnnotation] = string(want)
		s.Annotations[sl.rotationAnnotation] = token
		s.Annotations[sl.madeAtAnnotation] = now.UTC().Format(time.RFC3339)
		changed = true
	case token != "" && token != s.Annotations[sl.rotationAnnotation]:
		key, err := newSigningKey(want)
		if err != nil {
			return false, 0, err
		}
		grace := signingGrace(d)
		sl.dropPrevious(s)
		if grace > 0 {
			s.Data[sl.previous] = s.Data[sl.current]
			s.Annotations[sl.previousNotAfterAnnotation] = now.Add(grace).UTC().Format(time.RFC3339Nano)
		}
		s.Data[sl.current] = key
		s.Annotations[sl.rotationAnnotation] = token
		s.Annotations[sl.madeAtAnnotation] = now.UTC().Format(time.RFC3339)
		r.Recorder.Eventf(e, nil, corev1.EventTypeNormal, "SigningKeyRotated", "Rotate", "destination %q: new signing key in Secret %q; the previous one is used for %s more", sl.destination, s.Name, grace)
		changed = true
	}
	var recheck time.Duration
	if notAfter, ok := sl.previousNotAfter(s); ok {
		if !now.Before(notAfter) {
			sl.dropPrevious(s)
			changed = true
		} else {
			recheck = notAfter.Sub(now) + 50*time.Millisecond
		}
	}
	return changed, recheck, nil
}

// publishSigning writes what each destination's owner needs into status.destinations
// and, for RSA keys, the public keys as PEM into the ConfigMap <name>-signing-public.
func (r *WebhookEndpointReconciler) publishSigning(ctx context.Context, e *hookgatev1alpha1.WebhookEndpoint, secret *corev1.Secret) error {
	e.Status.Destinations = nil
	publicURL, filterFailures, err := r.Publisher.receiverReports(ctx)
	if err != nil {
		return err
	}
	issuer := signing.IssuerURL(publicURL, e.Namespace)
	pems := map[string]string{}
	for _, d := range e.Spec.AllDestinations() {
		sl := slotOf(d.NameOrDefault())
		st := hookgatev1alpha1.DestinationStatus{Name: sl.destination, Signing: d.SigningTypeOf()}
		if secret != nil && st.Signing != hookgatev1alpha1.SigningNone {
			if t, err := time.Parse(time.RFC3339, secret.Annotations[sl.madeAtAnnotation]); err == nil {
				st.RotatedAt = &metav1.Time{Time: t}
			}
		}
		if secret != nil && sl.signingType(secret) == st.Signing && (st.Signing == hookgatev1alpha1.SigningRSA || st.Signing == hookgatev1alpha1.SigningJWT) {
			current, err := publicKeyOf(secret.Data[sl.current])
			if err != nil {
				return &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q key %q: %v", secret.Name, sl.current, err)}
			}
			st.PublicKey, st.KeyID = current.base64, current.kid
			pems[sl.currentPEM] = string(current.pem)
			if prev := secret.Data[sl.previous]; len(prev) > 0 {
				if notAfter, ok := sl.previousNotAfter(secret); ok {
					if p, err := publicKeyOf(prev); err == nil {
						st.PreviousPublicKey, st.PreviousKeyUntil = p.base64, &metav1.Time{Time: notAfter}
						pems[sl.previousPEM] = string(p.pem)
					}
				}
			}
			st.PublicKeyConfigMap = e.PublicKeysName()
		}
		if st.Signing == hookgatev1alpha1.SigningJWT {
			st.Issuer = issuer
		}
		if d.Filter != nil && d.Filter.Expression != "" {
			st.FilterError = filterFailures[e.Namespace+"/"+e.Name+"/"+sl.destination]
		}
		e.Status.Destinations = append(e.Status.Destinations, st)
	}
	if len(pems) == 0 {
		return nil
	}
	return r.writePublicKeys(ctx, e, pems)
}

type publicKey struct {
	base64, kid string
	pem         []byte
}

func publicKeyOf(privatePEM []byte) (publicKey, error) {
	key, err := signing.ParseRSAKey(privatePEM)
	if err != nil {
		return publicKey{}, err
	}
	var out publicKey
	if out.base64, err = signing.PublicKeyBase64(&key.PublicKey); err != nil {
		return out, err
	}
	if out.kid, err = signing.KeyID(&key.PublicKey); err != nil {
		return out, err
	}
	out.pem, err = signing.PublicKeyPEM(&key.PublicKey)
	return out, err
}

// writePublicKeys creates or updates the endpoint's public-key ConfigMap, owned by it.
func (r *WebhookEndpointReconciler) writePublicKeys(ctx context.Context, e *hookgatev1alpha1.WebhookEndpoint, pems map[string]string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: e.PublicKeysName()}}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && fmt.Sprint(cm.Data) == fmt.Sprint(pems) {
		return nil
	}
	cm.Labels = map[string]string{
		hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue,
		hookgatev1alpha1.LabelEndpoint:  hookgatev1alpha1.LabelValue(e.Name),
	}
	cm.Data = pems
	if err := controllerutil.SetControllerReference(e, cm, r.Client.Scheme()); err != nil {
		return err
	}
	if apierrors.IsNotFound(err) {
		return r.Client.Create(ctx, cm)
	}
	return r.Client.Update(ctx, cm)
}

// resolveSigning reads a destination's keys for the routing table: the current one,
// and the previous one while its grace period lasts.
func resolveSigning(ctx context.Context, r client.Reader, pol Policy, e *hookgatev1alpha1.WebhookEndpoint, d *hookgatev1alpha1.Destination) (*routing.Signing, error) {
	t := d.SigningTypeOf()
	if t == hookgatev1alpha1.SigningNone {
		return nil, nil
	}
	var secret corev1.Secret
	name := e.SigningSecretName()
	if err := r.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &problem{hookgatev1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %q does not exist", name)}
		}
		return nil, err
	}
	sl := slotOf(d.NameOrDefault())
	if sl.signingType(&secret) != t {
		return nil, &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q holds %s keys for destination %q, not %s ones (the operator replaces keys it made)", name, sl.signingType(&secret), sl.destination, t)}
	}
	out := &routing.Signing{Type: t}
	if t == hookgatev1alpha1.SigningRSA {
		out.Header = "X-Hookgate-Signature"
		if d.Signing.RSA != nil && d.Signing.RSA.Header != "" {
			out.Header = d.Signing.RSA.Header
		}
	}
	if t == hookgatev1alpha1.SigningJWT {
		out.Audience = d.Signing.JWT.Audience
	}
	add := func(key string, notAfter *time.Time) error {
		v := secret.Data[key]
		if err := pol.checkSecretSize(name, key, v); err != nil {
			return err
		}
		k := routing.SigningKey{Key: routing.SecretValue(v), NotAfter: notAfter}
		if t != hookgatev1alpha1.SigningStandardWebhooks {
			pub, err := publicKeyOf(v)
			if err != nil {
				return &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q key %q: %v", name, key, err)}
			}
			k.ID = pub.kid
		}
		out.Keys = append(out.Keys, k)
		return nil
	}
	if len(secret.Data[sl.current]) == 0 {
		return nil, &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q has no key %q", name, sl.current)}
	}
	if err := add(sl.current, nil); err != nil {
		return nil, err
	}
	if notAfter, ok := sl.previousNotAfter(&secret); ok && len(secret.Data[sl.previous]) > 0 {
		if err := add(sl.previous, &notAfter); err != nil {
			return nil, err
		}
	}
	return out, nil
}
