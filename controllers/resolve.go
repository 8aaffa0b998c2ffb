package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/filter"
	"github.com/hookgate/hookgate/internal/routing"
)

// Field index names.
const (
	indexEndpointPath    = "hookgate.io/endpoint-path"
	indexEndpointSecrets = "hookgate.io/endpoint-secrets"
	indexEndpointService = "hookgate.io/endpoint-service"
	indexPartnerSecret   = "hookgate.io/partner-secret"
)

// resolvePartner turns a Partner and its credentials Secret into its routing entry.
func resolvePartner(ctx context.Context, r client.Reader, pol Policy, p *hookgatev1alpha1.Partner, now time.Time) (*routing.Partner, error) {
	var secret corev1.Secret
	name := p.CredentialsSecretName()
	if err := r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &problem{hookgatev1alpha1.ReasonSecretNotFound, fmt.Sprintf("credentials Secret %q does not exist yet", name)}
		}
		return nil, err
	}
	apiKey, signing := string(secret.Data[hookgatev1alpha1.SecretKeyAPIKey]), string(secret.Data[hookgatev1alpha1.SecretKeySigningSecret])
	if apiKey == "" || signing == "" {
		return nil, &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q needs non-empty keys %q and %q", name, hookgatev1alpha1.SecretKeyAPIKey, hookgatev1alpha1.SecretKeySigningSecret)}
	}
	for _, key := range []string{hookgatev1alpha1.SecretKeySigningSecret, hookgatev1alpha1.SecretKeyPreviousSigningSecret} {
		if err := pol.checkSecretSize(name, key, secret.Data[key]); err != nil {
			return nil, err
		}
	}
	entry := &routing.Partner{
		Namespace: p.Namespace, Name: p.Name, UID: string(p.UID),
		Suspended:   p.Spec.Suspended,
		Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(apiKey), SigningSecret: routing.SecretValue(signing)}},
		IPAllowlist: p.Spec.IPAllowlist,
		TenantID:    p.Spec.TenantID,
	}
	if t := p.Status.CredentialsRotatedAt; t != nil {
		rotated := t.UTC()
		entry.RotatedAt = &rotated
	}
	if notAfter, ok := previousNotAfter(&secret); ok && now.Before(notAfter) {
		prevKey, prevSigning := string(secret.Data[hookgatev1alpha1.SecretKeyPreviousAPIKey]), string(secret.Data[hookgatev1alpha1.SecretKeyPreviousSigningSecret])
		if prevKey != "" && prevSigning != "" {
			entry.Credentials = append(entry.Credentials, routing.Credential{
				APIKeySHA256: routing.HashAPIKey(prevKey), SigningSecret: routing.SecretValue(prevSigning), NotAfter: &notAfter,
			})
		}
	}
	if l := p.Spec.Limits; l != nil && l.MaxStoredBytes != nil {
		entry.MaxStoredBytes = l.MaxStoredBytes.Value()
	}
	if rl := p.Spec.RateLimit; rl != nil {
		burst := rl.Burst
		if burst == 0 {
			burst = max(rl.RequestsPerSecond, 1)
		}
		entry.RateLimit = &routing.RateLimit{RequestsPerSecond: rl.RequestsPerSecond, Burst: burst}
	}
	return entry, nil
}

func previousNotAfter(s *corev1.Secret) (time.Time, bool) {
	v, ok := s.Annotations[annotationPreviousNotAfter]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// resolveEndpoint turns a WebhookEndpoint into its routing entry, or says what is missing.
func resolveEndpoint(ctx context.Context, r client.Reader, pol Policy, e *hookgatev1alpha1.WebhookEndpoint) (*routing.Endpoint, error) {
	path := e.EffectivePath()
	if err := pol.checkPath(e); err != nil {
		return nil, err
	}
	if owner, err := pathOwner(ctx, r, pol, path); err != nil {
		return nil, err
	} else if owner != nil && owner.UID != e.UID {
		return nil, &problem{hookgatev1alpha1.ReasonPathConflict, fmt.Sprintf("path %s is already served by WebhookEndpoint %s/%s, which is older", path, owner.Namespace, owner.Name)}
	}
	for _, name := range e.Spec.Partners {
		var p hookgatev1alpha1.Partner
		if err := r.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: name}, &p); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &problem{hookgatev1alpha1.ReasonPartnerNotFound, fmt.Sprintf("Partner %q listed in spec.partners does not exist", name)}
			}
			return nil, err
		}
	}
	v := e.Spec.Verification
	entry := &routing.Endpoint{
		Namespace: e.Namespace, Name: e.Name, UID: string(e.UID), Path: path,
		Partners:     e.Spec.Partners,
		EventTypes:   e.Spec.EventTypes,
		MaxBodyBytes: orDefault(e.Spec.MaxBodyBytes, 1<<20),
		Paused:       e.Spec.Paused,
		Verification: routing.Verification{
			Type:      v.Type.Effective(),
			Tolerance: durationOr(v.Tolerance, 5*time.Minute),
		},
		Retry: routing.Retry{
			MaxAttempts:    orDefault(e.Spec.Retry.MaxAttempts, 12),
			InitialBackoff: durationOr(e.Spec.Retry.InitialBackoff, 5*time.Second),
			MaxBackoff:     durationOr(e.Spec.Retry.MaxBackoff, time.Hour),
		},
	}
	if src := e.Spec.SubType; src != nil {
		entry.SubType = &routing.ValueSource{Header: src.Header, JSONPath: src.JSONPath}
	}
	if src := e.Spec.Tenant; src != nil {
		entry.Tenant = &routing.ValueSource{Header: src.Header, JSONPath: src.JSONPath}
	}
	if token := e.Annotations[hookgatev1alpha1.AnnotationRedeliverFailed]; token != "" {
		entry.Annotations = map[string]string{hookgatev1alpha1.AnnotationRedeliverFailed: token}
		if dest := e.Annotations[hookgatev1alpha1.AnnotationRedeliverDestination]; dest != "" {
			entry.Annotations[hookgatev1alpha1.AnnotationRedeliverDestination] = dest
		}
	}
	if v.SecretRef != nil {
		secret, err := secretValue(ctx, r, pol, e.Namespace, v.SecretRef.Name, orDefault(v.SecretRef.Key, hookgatev1alpha1.SecretKeyDefault))
		if err != nil {
			return nil, err
		}
		entry.Verification.Secret = routing.SecretValue(secret)
	}
	if v.JWT != nil {
		entry.Verification.JWKSURL, entry.Verification.Issuer, entry.Verification.Audience = v.JWT.JWKSURL, v.JWT.Issuer, v.JWT.Audience
	}
	if v.RSA != nil {
		entry.Verification.Header = v.RSA.Header
	}
	if v.HMAC != nil {
		entry.Verification.Header = v.HMAC.Header
		entry.Verification.Prefix = v.HMAC.Prefix
		entry.Verification.Encoding = string(v.HMAC.Encoding)
		entry.Verification.SignedContent = orDefault(v.HMAC.SignedContent, "{body}")
		entry.Verification.TimestampHeader = v.HMAC.TimestampHeader
	}
	if idem := e.Spec.Idempotency; idem != nil {
		entry.Idempotency = routing.Idempotency{Header: idem.Header, JSONPath: idem.JSONPath, Window: durationOr(idem.Window, 72*time.Hour)}
	} else {
		entry.Idempotency.Window = routing.Duration(72 * time.Hour)
	}
	// The shorthand stays in Destination, which receivers of the release before fan-out
	// read; a list goes to Destinations.
	for _, d := range e.Spec.AllDestinations() {
		dest, err := resolveDestination(ctx, r, pol, e, d)
		if err != nil {
			return nil, err
		}
		if e.Spec.Destination != nil {
			entry.Destination = dest
		} else {
			entry.Destinations = append(entry.Destinations, dest)
		}
	}
	return entry, nil
}

func resolveDestination(ctx context.Context, r client.Reader, pol Policy, e *hookgatev1alpha1.WebhookEndpoint, d *hookgatev1alpha1.Destination) (*routing.Destination, error) {
	dest := &routing.Destination{URL: d.URL, Timeout: durationOr(d.Timeout, 30*time.Second)}
	for name, value := range d.Headers {
		if dest.Headers == nil {
			dest.Headers = make(map[string]string, len(d.Headers))
		}
		dest.Headers[name] = string(value)
	}
	if s := d.Service; s != nil {
		var svc corev1.Service
		if err := r.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: s.Name}, &svc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &problem{hookgatev1alpha1.ReasonServiceNotFound, fmt.Sprintf("destination Service %q does not exist", s.Name)}
			}
			return nil, err
		}
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			// Its name resolves to whatever host the Service names, in or out of the
			// cluster, so it would carry the private-range allowance anywhere.
			return nil, &problem{hookgatev1alpha1.ReasonServiceExternalName, fmt.Sprintf(
				"destination Service %q is of type ExternalName, an alias of another host, which a service destination may not reach; give that host as destination.url instead", s.Name)}
		}
		found := false
		for _, p := range svc.Spec.Ports {
			found = found || p.Port == s.Port
		}
		if !found {
			return nil, &problem{hookgatev1alpha1.ReasonServicePortNotFound, fmt.Sprintf("destination Service %q has no port %d", s.Name, s.Port)}
		}
		dest.URL = fmt.Sprintf("http://%s.%s.svc:%d%s", s.Name, e.Namespace, s.Port, orDefault(s.Path, "/"))
		dest.Service = true
		addrs, err := serviceAddresses(ctx, r, &svc)
		if err != nil {
			return nil, err
		}
		dest.Addresses = addrs
	}
	dest.Name = d.NameOrDefault()
	if rp := d.Retry; rp != nil {
		dest.Retry = &routing.Retry{MaxAttempts: max(rp.MaxAttempts, 1), InitialBackoff: durationOr(rp.InitialBackoff, 5*time.Second), MaxBackoff: durationOr(rp.MaxBackoff, time.Hour)}
	}
	dest.MetadataPrefix = "X-Hookgate-"
	if m := d.MetadataHeaders; m != nil {
		dest.MetadataPrefix = m.Prefix
	}
	if f := d.Filter; f != nil {
		dest.Filter = &routing.Filter{Types: f.Types, SubTypes: f.SubTypes, Tenants: f.Tenants, Expression: f.Expression}
		if _, err := filter.Compile(filter.Filter{Types: f.Types, SubTypes: f.SubTypes, Tenants: f.Tenants, Expression: f.Expression}); err != nil {
			return nil, &problem{hookgatev1alpha1.ReasonInvalidFilter, fmt.Sprintf("destination %q: filter.expression: %v", dest.Name, err)}
		}
	}
	signing, err := resolveSigning(ctx, r, pol, e, d)
	if err != nil {
		return nil, err
	}
	dest.Signing = signing
	if signing != nil && signing.Type == hookgatev1alpha1.SigningStandardWebhooks {
		dest.SigningSecret = signing.Keys[0].Key
	}
	return dest, nil
}

// serviceAddresses are the addresses a Service's name resolves to in the cluster DNS:
// its cluster IPs, or a headless Service's endpoints in its own EndpointSlices. The
// receiver lets a service destination reach private addresses only among these, so that
// the name cannot be made to point at another namespace's pods or the cluster's hosts.
// Sorted, so that an unchanged Service leaves the table unchanged.
func serviceAddresses(ctx context.Context, r client.Reader, svc *corev1.Service) ([]string, error) {
	var out []string
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	if len(out) == 0 {
		var list discoveryv1.EndpointSliceList
		if err := r.List(ctx, &list, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
			return nil, err
		}
		for _, sl := range list.Items {
			for _, ep := range sl.Endpoints {
				out = append(out, ep.Addresses...)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

func secretValue(ctx context.Context, r client.Reader, pol Policy, namespace, name, key string) (string, error) {
	var secret corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &problem{hookgatev1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %q does not exist", name)}
		}
		return "", err
	}
	v := secret.Data[key]
	if len(v) == 0 {
		return "", &problem{hookgatev1alpha1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q has no key %q", name, key)}
	}
	if err := pol.checkSecretSize(name, key, v); err != nil {
		return "", err
	}
	return string(v), nil
}

// pathOwner is the endpoint that keeps a path: the oldest of those permitted to serve
// it, then the first by namespace and name, so that every reader agrees. An endpoint
// that may not serve the path never keeps it from one that may.
func pathOwner(ctx context.Context, r client.Reader, pol Policy, path string) (*hookgatev1alpha1.WebhookEndpoint, error) {
	var list hookgatev1alpha1.WebhookEndpointList
	if err := r.List(ctx, &list, client.MatchingFields{indexEndpointPath: path}); err != nil {
		return nil, err
	}
	var owner *hookgatev1alpha1.WebhookEndpoint
	for i := range list.Items {
		c := &list.Items[i]
		if !c.DeletionTimestamp.IsZero() || !pol.pathPermitted(c.Namespace, path) {
			continue
		}
		if owner == nil || olderThan(c, owner) {
			owner = c
		}
	}
	return owner, nil
}

func olderThan(a, b *hookgatev1alpha1.WebhookEndpoint) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return routing.Key(a.Namespace, a.Name) < routing.Key(b.Namespace, b.Name)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func durationOr(d *metav1.Duration, def time.Duration) routing.Duration {
	if d == nil {
		return routing.Duration(def)
	}
	return routing.Duration(d.Duration)
}
