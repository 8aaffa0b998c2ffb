package controllers

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"maps"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/certs"
)

// The events API's serving certificate: the receiver serves the aggregated API with it
// (mounted from the Secret, --api-cert-dir), the kube-apiserver checks it with the
// APIService's caBundle. The operator makes both and keeps them in step.
// +kubebuilder:rbac:groups=apiregistration.k8s.io,resources=apiservices,resourceNames=v1alpha1.events.hookgate.io,verbs=get;patch

// EventsAPIService is the events API's APIService.
const EventsAPIService = "v1alpha1.events.hookgate.io"

// Lifetimes: a certificate is renewed once two thirds of its life have passed, so a
// renewal that fails is retried for weeks before anything expires.
const (
	eventsAPICAValidity   = 3 * 365 * 24 * time.Hour
	eventsAPICertValidity = 90 * 24 * time.Hour
	eventsAPICertCheck    = time.Hour
)

// Keys of the certificate Secret: what the receiver mounts (tls.crt, tls.key), the CA
// that signs it and its key, and the CAs the kube-apiserver trusts (the current one, and
// the previous one while certificates it signed may still be served).
const (
	keyCACert   = "ca.crt"
	keyCAKey    = "ca.key"
	keyCABundle = "ca-bundle.crt"
)

var apiServiceGVK = schema.GroupVersionKind{Group: "apiregistration.k8s.io", Version: "v1", Kind: "APIService"}

// EventsAPICertRotator keeps the events API's serving certificate Secret and the
// APIService's caBundle in step. Only the leader runs it.
type EventsAPICertRotator struct {
	Client client.Client
	Reader client.Reader
	// Namespace and SecretName name the Secret; Service is the receiver Service the
	// kube-apiserver reaches the API through (the certificate's names).
	Namespace, SecretName, Service string
	Log                            logr.Logger
	Now                            func() time.Time
}

// NeedLeaderElection: one writer of the Secret and the APIService.
func (r *EventsAPICertRotator) NeedLeaderElection() bool { return true }

// Start checks every hour until ctx ends (a minute after a failure).
func (r *EventsAPICertRotator) Start(ctx context.Context) error {
	for {
		wait := eventsAPICertCheck
		if err := r.Ensure(ctx); err != nil {
			r.Log.Error(err, "keeping the events API's serving certificate")
			wait = time.Minute
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Ensure makes or renews the certificate when it is missing, unusable, for other names,
// or past two thirds of its life (and the CA likewise), and sets the APIService's
// caBundle to the Secret's, verifying its certificate from then on. It changes nothing
// when all is in order. A missing APIService (not installed) is left alone.
func (r *EventsAPICertRotator) Ensure(ctx context.Context) error {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	secret := &corev1.Secret{}
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}, secret)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	names := []string{r.Service + "." + r.Namespace + ".svc", r.Service + "." + r.Namespace + ".svc.cluster.local"}
	data, changed, err := renewed(secret.Data, names, now)
	if err != nil {
		return err
	}
	if changed {
		secret.Data = data
		if !exists {
			secret.ObjectMeta = metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName, Labels: map[string]string{hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue}}
			secret.Type = corev1.SecretTypeTLS
			err = r.Client.Create(ctx, secret)
		} else {
			err = r.Client.Update(ctx, secret)
		}
		if err != nil {
			return fmt.Errorf("writing the events API's certificate Secret: %w", err)
		}
		r.Log.Info("events API serving certificate written", "secret", r.Namespace+"/"+r.SecretName)
	}
	apiService := &unstructured.Unstructured{}
	apiService.SetGroupVersionKind(apiServiceGVK)
	if err := r.Reader.Get(ctx, client.ObjectKey{Name: EventsAPIService}, apiService); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	bundle, _, _ := unstructured.NestedString(apiService.Object, "spec", "caBundle")
	insecure, _, _ := unstructured.NestedBool(apiService.Object, "spec", "insecureSkipTLSVerify")
	want := data[keyCABundle]
	encoded := base64.StdEncoding.EncodeToString(want)
	if !insecure && bundle == encoded {
		return nil
	}
	patch := fmt.Appendf(nil, `{"spec":{"caBundle":%q,"insecureSkipTLSVerify":false}}`, encoded)
	if err := r.Client.Patch(ctx, apiService, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("setting the events APIService's caBundle: %w", err)
	}
	r.Log.Info("events APIService verifies the serving certificate", "apiService", EventsAPIService)
	return nil
}

// renewed returns the Secret data to have at now, and whether it differs from data.
func renewed(data map[string][]byte, names []string, now time.Time) (map[string][]byte, bool, error) {
	ca, caOK := usable(data[keyCACert], data[keyCAKey], nil, now)
	out := maps.Clone(data)
	if out == nil {
		out = map[string][]byte{}
	}
	changed := false
	if !caOK {
		previous := data[keyCACert]
		var err error
		if ca, err = certs.NewCA(certs.Request{CommonName: "hookgate events API CA", NotBefore: now, Validity: eventsAPICAValidity}); err != nil {
			return nil, false, err
		}
		out[keyCACert], out[keyCAKey] = ca.CertPEM, ca.KeyPEM
		// The previous CA stays trusted until the certificates it signed are replaced.
		out[keyCABundle] = append(bytes.Clone(ca.CertPEM), previous...)
		changed = true
	}
	if leaf, ok := usable(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey], names, now); !ok || changed || leaf.Cert.CheckSignatureFrom(ca.Cert) != nil {
		leaf, err := ca.Sign(certs.Request{CommonName: names[0], DNSNames: names, Usage: x509.ExtKeyUsageServerAuth, NotBefore: now, Validity: eventsAPICertValidity})
		if err != nil {
			return nil, false, err
		}
		out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey] = leaf.CertPEM, leaf.KeyPEM
		changed = true
	}
	if len(out[keyCABundle]) == 0 {
		out[keyCABundle] = out[keyCACert]
		changed = true
	}
	return out, changed, nil
}

// usable reads a certificate and its key, and reports whether they may go on being used
// at now: they match, the certificate covers names, and less than two thirds of its
// life have passed.
func usable(certPEM, keyPEM []byte, names []string, now time.Time) (*certs.Pair, bool) {
	p, ok := certs.Parse(certPEM, keyPEM)
	if !ok {
		return nil, false
	}
	renewAt := p.Cert.NotBefore.Add(p.Cert.NotAfter.Sub(p.Cert.NotBefore) * 2 / 3)
	if now.Before(p.Cert.NotBefore) || !now.Before(renewAt) {
		return nil, false
	}
	for _, n := range names {
		if p.Cert.VerifyHostname(n) != nil {
			return nil, false
		}
	}
	return p, true
}
