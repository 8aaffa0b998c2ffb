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

func secretSigningType(s *corev1.Secret) hookgatev1alpha1.SigningType {
	if t := s.Annotations[annotationSigningType]; t != "" {
		return hookgatev1alpha1.SigningType(t)
	}
	return hookgatev1alpha1.SigningStandardWebhooks
}

// ensureSigning makes, converts and rotates the destination's key in <name>-signing:
// created when absent, replaced when the signing type changed, rotated (the current key
// kept as "previous" for the grace period) when hookgate.io/rotate-signing takes a new
// value, and the previous key dropped once its grace period is over. It returns the
// Secret (nil when deliveries are unsigned) and when to look again.
func (r *WebhookEndpointReconciler) ensureSigning(ctx context.Context, e *hookgatev1alpha1.WebhookEndpoint, now time.Time) (*corev1.Secret, time.Duration, error) {
	d := e.Spec.Destination
	if d == nil || d.SigningTypeOf() == hookgatev1alpha1.SigningNone {
		return nil, 0, nil
	}
	want := d.SigningTypeOf()
	token := e.Annotations[hookgatev1alpha1.AnnotationRotateSigning]
	var secret corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: e.SigningSecretName()}, &secret)
	if apierrors.IsNotFound(err) {
		return r.createSigningSecret(ctx, e, want, token, now)
	}
	if err != nil {
		return nil, 0, err
	}
	if secret.Labels[hookgatev1alpha1.LabelManagedBy] != hookgatev1alpha1.ManagedByValue {
		return &secret, 0, nil // made by a user: theirs to change
	}
	updated := secret.DeepCopy()
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	changed := false
	switch {
	case secretSigningType(updated) != want:
		key, err := newSigningKey(want)
		if err != nil {
			return nil, 0, err
		}
		dropPreviousSigning(updated)
		updated.Data[hookgatev1alpha1.SecretKeyDefault] = key
		updated.Annotations[annotationSigningType] = string(want)
		updated.Annotations[annotationRotationHandled] = token
		updated.Annotations[annotationKeyMadeAt] = now.UTC().Format(time.RFC3339)
		r.Recorder.Eventf(e, nil, corev1.EventTypeNormal, "SigningKeyReplaced", "Rotate", "signing type is now %s: new key in Secret %q", want, secret.Name)
		changed = true
	case token != "" && token != updated.Annotations[annotationRotationHandled]:
		key, err := newSigningKey(want)
		if err != nil {
			return nil, 0, err
		}
		grace := signingGrace(d)
		dropPreviousSigning(updated)
		if grace > 0 {
			updated.Data[hookgatev1alpha1.SecretKeyPreviousSigning] = updated.Data[hookgatev1alpha1.SecretKeyDefault]
			updated.Annotations[annotationPreviousNotAfter] = now.Add(grace).UTC().Format(time.RFC3339Nano)
		}
		updated.Data[hookgatev1alpha1.SecretKeyDefault] = key
		updated.Annotations[annotationRotationHandled] = token
		updated.Annotations[annotationKeyMadeAt] = now.UTC().Format(time.RFC3339)
		r.Recorder.Eventf(e, nil, corev1.EventTypeNormal, "SigningKeyRotated", "Rotate", "new signing key in Secret %q; the previous one is used for %s more", secret.Name, grace)
		changed = true
	}
	var recheck time.Duration
	if notAfter, ok := previousNotAfter(updated); ok {
		if !now.Before(notAfter) {
			dropPreviousSigning(updated)
			changed = true
		} else {
			recheck = notAfter.Sub(now) + 50*time.Millisecond
		}
	}
	if changed {
		if err := r.Client.Update(ctx, updated); err != nil {
			return nil, 0, err
		}
	}
	return updated, recheck, nil
}

func (r *WebhookEndpointReconciler) createSigningSecret(ctx context.Context, e *hookgatev1alpha1.WebhookEndpoint, t hookgatev1alpha1.SigningType, token string, now time.Time) (*corev1.Secret, time.Duration, error) {
	key, err := newSigningKey(t)
	if err != nil {
		return nil, 0, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: e.SigningSecretName(), Namespace: e.Namespace,
			Labels: map[string]string{
				hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue,
				hookgatev1alpha1.LabelEndpoint:  hookgatev1alpha1.LabelValue(e.Name),
			},
			Annotations: map[string]string{
				annotationSigningType: string(t), annotationRotationHandled: token, annotationKeyMadeAt: now.UTC().Format(time.RFC3339),
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{hookgatev1alpha1.SecretKeyDefault: key},
	}
	if err := controllerutil.SetControllerReference(e, secret, r.Client.Scheme()); err != nil {
		return nil, 0, err
	}
	if err := r.Client.Create(ctx, secret); err != nil {
		return nil, 0, err
	}
	r.Recorder.Eventf(e, nil, corev1.EventTypeNormal, "SigningSecretCreated", "Create", "created destination signing Secret %q (%s)", secret.Name, t)
	return secret, 0, nil
}

func dropPreviousSigning(s *corev1.Secret) {
	delete(s.Data, hookgatev1alpha1.SecretKeyPreviousSigning)
	delete(s.Annotations, annotationPreviousNotAfter)
}

// publishSigning writes what the destination's owner needs into status.destinations and,
// for RSA keys, the public keys as PEM into the ConfigMap <name>-signing-public.
func (r *WebhookEndpointReconciler) publishSigning(ctx context.Context, e *hookgatev1alpha1.WebhookEndpoint, secret *corev1.Secret) error {
	d := e.Spec.Destination
	if d == nil {
		e.Status.Destinations = nil
		return nil
	}
	st := hookgatev1alpha1.DestinationStatus{Name: hookgatev1alpha1.DefaultDestinationName, Signing: d.SigningTypeOf()}
	if secret != nil {
		if t, err := time.Parse(time.RFC3339, secret.Annotations[annotationKeyMadeAt]); err == nil {
			st.RotatedAt = &metav1.Time{Time: t}
		}
	}
	e.Status.Destinations = []hookgatev1alpha1.DestinationStatus{st}
	if secret == nil || secretSigningType(secret) != st.Signing || (st.Signing != hookgatev1alpha1.SigningRSA && st.Signing != hookgatev1alpha1.SigningJWT) {
		return nil
	}
	current, err := publicKeyOf(secret.Data[hookgatev1alpha1.SecretKeyDefault])
	if err != nil {
		return &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q: %v", secret.Name, err)}
	}
	st.PublicKey, st.KeyID = current.base64, current.kid
	pems := map[string]string{"public.pem": string(current.pem)}
	if prev := secret.Data[hookgatev1alpha1.SecretKeyPreviousSigning]; len(prev) > 0 {
		if notAfter, ok := previousNotAfter(secret); ok {
			if p, err := publicKeyOf(prev); err == nil {
				st.PreviousPublicKey, st.PreviousKeyUntil = p.base64, &metav1.Time{Time: notAfter}
				pems["previous.pem"] = string(p.pem)
			}
		}
	}
	st.PublicKeyConfigMap = e.PublicKeysName()
	e.Status.Destinations = []hookgatev1alpha1.DestinationStatus{st}
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

// resolveSigning reads the destination's keys for the routing table: the current one,
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
	if secretSigningType(&secret) != t {
		return nil, &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q holds %s keys, not %s ones (the operator replaces keys it made)", name, secretSigningType(&secret), t)}
	}
	out := &routing.Signing{Type: string(t)}
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
	if len(secret.Data[hookgatev1alpha1.SecretKeyDefault]) == 0 {
		return nil, &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q has no key %q", name, hookgatev1alpha1.SecretKeyDefault)}
	}
	if err := add(hookgatev1alpha1.SecretKeyDefault, nil); err != nil {
		return nil, err
	}
	if notAfter, ok := previousNotAfter(&secret); ok && len(secret.Data[hookgatev1alpha1.SecretKeyPreviousSigning]) > 0 {
		if err := add(hookgatev1alpha1.SecretKeyPreviousSigning, &notAfter); err != nil {
			return nil, err
		}
	}
	return out, nil
}
