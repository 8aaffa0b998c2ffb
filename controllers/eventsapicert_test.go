package controllers_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookgate/hookgate/controllers"
)

// TestEventsAPICertRotation: the operator makes the events API's serving certificate for
// the receiver Service, sets the APIService's caBundle to its CA and verification on,
// changes nothing while all is in order, renews the certificate past two thirds of its
// life under the same CA, and a new CA past two thirds of the CA's, keeping the old one
// trusted beside it.
func TestEventsAPICertRotation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "events-api-certs")
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": controllers.EventsAPIService},
		"spec": map[string]any{"group": "events.hookgate.io", "version": "v1alpha1", "groupPriorityMinimum": int64(1000), "versionPriority": int64(15),
			"service": map[string]any{"namespace": ns, "name": "hookgate-receiver", "port": int64(443)}, "insecureSkipTLSVerify": true},
	}}
	if err := cluster.Client.Create(ctx, apiService); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(context.Background(), apiService) })
	now := time.Now()
	r := &controllers.EventsAPICertRotator{Client: cluster.Client, Reader: cluster.Client, Namespace: ns, SecretName: "events-api-tls",
		Service: "hookgate-receiver", Log: logr.Discard(), Now: func() time.Time { return now }}

	read := func() (*corev1.Secret, string, bool) {
		t.Helper()
		var s corev1.Secret
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "events-api-tls"}, &s); err != nil {
			t.Fatal(err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(apiService.GroupVersionKind())
		if err := cluster.Client.Get(ctx, client.ObjectKey{Name: controllers.EventsAPIService}, got); err != nil {
			t.Fatal(err)
		}
		bundle, _, _ := unstructured.NestedString(got.Object, "spec", "caBundle")
		insecure, _, _ := unstructured.NestedBool(got.Object, "spec", "insecureSkipTLSVerify")
		return &s, bundle, insecure
	}
	verify := func(s *corev1.Secret, at time.Time) *x509.Certificate {
		t.Helper()
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(s.Data["ca-bundle.crt"]) {
			t.Fatal("no CA in ca-bundle.crt")
		}
		b, _ := pem.Decode(s.Data[corev1.TLSCertKey])
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: "hookgate-receiver." + ns + ".svc", Roots: roots, CurrentTime: at}); err != nil {
			t.Fatalf("the serving certificate does not verify for the Service's name: %v", err)
		}
		return cert
	}

	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s, bundle, insecure := read()
	first := verify(s, now)
	if insecure || bundle == "" {
		t.Fatalf("the APIService: insecureSkipTLSVerify %v, caBundle %d bytes; want verification with the CA", insecure, len(bundle))
	}
	version := s.ResourceVersion

	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _, _ = read(); s.ResourceVersion != version {
		t.Fatal("a second check rewrote a Secret that was in order")
	}

	now = now.Add(61 * 24 * time.Hour) // past two thirds of 90 days
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s, _, _ = read()
	renewed := verify(s, now)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the certificate was not renewed past two thirds of its life")
	}
	oldCA := string(s.Data["ca.crt"])

	now = now.Add(2 * 365 * 24 * time.Hour) // past two thirds of the CA's three years
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s, bundle2, _ := read()
	verify(s, now)
	if string(s.Data["ca.crt"]) == oldCA {
		t.Fatal("the CA was not renewed past two thirds of its life")
	}
	if string(s.Data["ca-bundle.crt"]) != string(s.Data["ca.crt"])+oldCA || bundle2 == bundle {
		t.Fatal("the bundle does not hold the new CA and the previous one, or the APIService kept the old bundle")
	}
}
