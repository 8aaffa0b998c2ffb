package controllers_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

func destinationInTable(ns, name string) (*routing.Destination, error) {
	table, _, err := publishedTable()
	if err != nil {
		return nil, err
	}
	e, ok := table.Endpoint(ns, name)
	if !ok || e.Destination == nil {
		return nil, fmt.Errorf("endpoint %s/%s with a destination not in the table", ns, name)
	}
	return e.Destination, nil
}

func destinationStatus(t *testing.T, ns, name string) (hookgatev1alpha1.DestinationStatus, error) {
	t.Helper()
	var e hookgatev1alpha1.WebhookEndpoint
	if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &e); err != nil {
		return hookgatev1alpha1.DestinationStatus{}, err
	}
	if len(e.Status.Destinations) != 1 {
		return hookgatev1alpha1.DestinationStatus{}, fmt.Errorf("%d destination statuses", len(e.Status.Destinations))
	}
	return e.Status.Destinations[0], nil
}

// pemMatches reports whether a PEM public key is the Base64 DER one.
func pemMatches(pemText, b64 string) bool {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return false
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return false
	}
	return base64.StdEncoding.EncodeToString(block.Bytes) == b64
}

// testDestinationSigning: an RSA destination gets a key pair, its public key in the status
// (Base64 DER) and in a ConfigMap (PEM); rotation keeps the previous key published and in
// the table for the grace period, then drops it; a change to JWT makes a new key with a
// kid; JWT without an audience is refused by the API server.
func testDestinationSigning(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "signing")
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	e := newEndpoint(ns, "orders", "")
	e.Spec.Destination = &hookgatev1alpha1.Destination{URL: "https://orders.example.com/hooks", Signing: &hookgatev1alpha1.DestinationSigning{
		Type: hookgatev1alpha1.SigningRSA, RSA: &hookgatev1alpha1.RSASigning{Header: "X-Asteroid-Signature"},
		RotationGracePeriod: &metav1.Duration{Duration: 3 * time.Second},
	}}
	if err := cluster.Client.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var first hookgatev1alpha1.DestinationStatus
	took := eventually(t, 20*time.Second, "RSA public key published", func() error {
		st, err := destinationStatus(t, ns, "orders")
		if err != nil {
			return err
		}
		if st.Signing != hookgatev1alpha1.SigningRSA || st.PublicKey == "" || st.PublicKeyConfigMap != "orders-signing-public" {
			return fmt.Errorf("status %+v", st)
		}
		var cm corev1.ConfigMap
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: st.PublicKeyConfigMap}, &cm); err != nil {
			return err
		}
		if !pemMatches(cm.Data["public.pem"], st.PublicKey) {
			return fmt.Errorf("ConfigMap public.pem is not the status key")
		}
		if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Name != "orders" {
			return fmt.Errorf("ConfigMap owners %v", cm.OwnerReferences)
		}
		d, err := destinationInTable(ns, "orders")
		if err != nil {
			return err
		}
		if d.Signing == nil || d.Signing.Type != "RSA" || d.Signing.Header != "X-Asteroid-Signature" || len(d.Signing.Keys) != 1 {
			return fmt.Errorf("table signing %+v", d.Signing)
		}
		first = st
		return nil
	})
	t.Logf("RSA key made and published %s after the endpoint", took.Round(time.Millisecond))
	if strings.Contains(first.PublicKey, "PRIVATE") {
		t.Fatal("a private key in the status")
	}

	annotate := func(key, value string) {
		t.Helper()
		updateEndpoint(t, ns, "orders", func(e *hookgatev1alpha1.WebhookEndpoint) { metav1.SetMetaDataAnnotation(&e.ObjectMeta, key, value) })
	}
	annotate(hookgatev1alpha1.AnnotationRotateSigning, "2026-12-01")
	rotated := time.Now()
	eventually(t, 10*time.Second, "both public keys published and both keys in the table", func() error {
		st, err := destinationStatus(t, ns, "orders")
		if err != nil {
			return err
		}
		if st.PreviousPublicKey != first.PublicKey || st.PublicKey == first.PublicKey || st.PreviousKeyUntil == nil {
			return fmt.Errorf("status %+v", st)
		}
		var cm corev1.ConfigMap
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: st.PublicKeyConfigMap}, &cm); err != nil {
			return err
		}
		if !pemMatches(cm.Data["previous.pem"], first.PublicKey) || !pemMatches(cm.Data["public.pem"], st.PublicKey) {
			return fmt.Errorf("ConfigMap does not hold both keys")
		}
		d, err := destinationInTable(ns, "orders")
		if err != nil {
			return err
		}
		if len(d.Signing.Keys) != 2 || d.Signing.Keys[1].NotAfter == nil {
			return fmt.Errorf("%d keys in the table", len(d.Signing.Keys))
		}
		return nil
	})
	eventually(t, 15*time.Second, "the previous key dropped after the 3s grace", func() error {
		st, err := destinationStatus(t, ns, "orders")
		if err != nil {
			return err
		}
		if st.PreviousPublicKey != "" {
			return fmt.Errorf("previous key still published")
		}
		d, err := destinationInTable(ns, "orders")
		if err != nil {
			return err
		}
		if len(d.Signing.Keys) != 1 {
			return fmt.Errorf("%d keys in the table", len(d.Signing.Keys))
		}
		return nil
	})
	t.Logf("previous RSA key gone %s after the rotation (grace 3s)", time.Since(rotated).Round(time.Millisecond))

	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur hookgatev1alpha1.WebhookEndpoint
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, &cur); err != nil {
			return err
		}
		cur.Spec.Destination.Signing = &hookgatev1alpha1.DestinationSigning{Type: hookgatev1alpha1.SigningJWT, JWT: &hookgatev1alpha1.JWTSigning{Audience: "test-tenant"}}
		return cluster.Client.Update(ctx, &cur)
	}); err != nil {
		t.Fatal(err)
	}
	// The issuer is the namespace's own, under the public URL the receivers report.
	eventually(t, 20*time.Second, "a JWT key with a kid and the namespace's issuer", func() error {
		st, err := destinationStatus(t, ns, "orders")
		if err != nil {
			return err
		}
		d, err := destinationInTable(ns, "orders")
		if err != nil {
			return err
		}
		if st.Signing != hookgatev1alpha1.SigningJWT || st.KeyID == "" || st.Issuer != testPublicURL+"/issuers/"+ns || d.Signing.Type != hookgatev1alpha1.SigningJWT || d.Signing.Audience != "test-tenant" || d.Signing.Keys[0].ID != st.KeyID {
			return fmt.Errorf("status %+v, table %+v", st, d.Signing)
		}
		return nil
	})

	bad := newEndpoint(ns, "no-audience", "")
	bad.Spec.Destination = &hookgatev1alpha1.Destination{URL: "https://x.example.com/", Signing: &hookgatev1alpha1.DestinationSigning{Type: hookgatev1alpha1.SigningJWT}}
	if err := cluster.Client.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "signing.jwt") {
		t.Fatalf("JWT without an audience: %v", err)
	}
}

// testDestinationFilter: a filter expression that does not compile makes the endpoint
// Ready=False, reason InvalidFilter, with the compiler's message; once it is mended the
// filter reaches the routing table.
func testDestinationFilter(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "filters")
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	e := newEndpoint(ns, "big-orders", "")
	e.Spec.Destination = &hookgatev1alpha1.Destination{URL: "https://orders.example.com/hooks", Filter: &hookgatev1alpha1.DestinationFilter{
		Types: []string{"orders/*"}, Expression: "event.data.amount >",
	}}
	if err := cluster.Client.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "InvalidFilter", func() error {
		if err := endpointCondition(ns, "big-orders", metav1.ConditionFalse, hookgatev1alpha1.ReasonInvalidFilter)(); err != nil {
			return err
		}
		var cur hookgatev1alpha1.WebhookEndpoint
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "big-orders"}, &cur); err != nil {
			return err
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == hookgatev1alpha1.ConditionReady && !strings.Contains(c.Message, "Syntax error") {
				return fmt.Errorf("message %q does not carry the compiler's", c.Message)
			}
		}
		return nil
	})
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur hookgatev1alpha1.WebhookEndpoint
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "big-orders"}, &cur); err != nil {
			return err
		}
		cur.Spec.Destination.Filter.Expression = "event.data.amount > 100"
		return cluster.Client.Update(ctx, &cur)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the filter in the table", func() error {
		d, err := destinationInTable(ns, "big-orders")
		if err != nil {
			return err
		}
		if d.Filter == nil || d.Filter.Expression != "event.data.amount > 100" || len(d.Filter.Types) != 1 {
			return fmt.Errorf("filter %+v", d.Filter)
		}
		return nil
	})

	// A receiver whose filter failed to evaluate says so on its Lease; the endpoint's
	// status shows it for that destination, and drops it when the receiver goes.
	const failure = "the filter expression could not be evaluated: no such key: amount"
	reporting := startReceiverWith(t, "hookgate-receiver-filters", clientset)
	reporting.setReport(map[string]string{routing.AnnotationFilterFailures: `{"` + ns + `/big-orders/default":"` + failure + `"}`})
	filterError := func(want string) func() error {
		return func() error {
			st, err := destinationStatus(t, ns, "big-orders")
			if err != nil {
				return err
			}
			if st.FilterError != want {
				return fmt.Errorf("filterError %q, want %q", st.FilterError, want)
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, "the filter failure in the status", filterError(failure))
	reporting.stop()
	eventually(t, 30*time.Second, "no filter failure once the receiver is gone", filterError(""))
}

// testSigningPerDestination: each destination of spec.destinations has its own key in the
// one <endpoint>-signing Secret, under its name, its own public keys in status and the
// ConfigMap, and its own entry in the table; a rotation makes each a new key and keeps
// each previous one; a destination taken out of the spec loses its key.
func testSigningPerDestination(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "fanout-signing")
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	e := newEndpoint(ns, "orders", "")
	hour := &metav1.Duration{Duration: time.Hour}
	e.Spec.Destinations = []hookgatev1alpha1.Destination{
		{Name: "billing", URL: "https://billing.example.com/hooks", Signing: &hookgatev1alpha1.DestinationSigning{Type: hookgatev1alpha1.SigningStandardWebhooks, RotationGracePeriod: hour}},
		{Name: "risk", URL: "https://risk.example.com/hooks", Signing: &hookgatev1alpha1.DestinationSigning{Type: hookgatev1alpha1.SigningRSA, RotationGracePeriod: hour}},
	}
	if err := cluster.Client.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	secret := func() (*corev1.Secret, error) {
		var s corev1.Secret
		err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-signing"}, &s)
		return &s, err
	}
	var first *corev1.Secret
	eventually(t, 20*time.Second, "one key per destination, both in the table", func() error {
		s, err := secret()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(s.Data["billing"]), "whsec_") || !strings.Contains(string(s.Data["risk"]), "PRIVATE KEY") || len(s.Data["secret"]) != 0 {
			return fmt.Errorf("Secret keys %v", keysOf(s.Data))
		}
		table, _, err := publishedTable()
		if err != nil {
			return err
		}
		ep, ok := table.Endpoint(ns, "orders")
		if !ok || len(ep.Destinations) != 2 || ep.Destinations[0].Signing == nil || ep.Destinations[1].Signing == nil ||
			ep.Destinations[1].Signing.Type != hookgatev1alpha1.SigningRSA {
			return fmt.Errorf("table destinations %+v", ep)
		}
		first = s
		return nil
	})
	var cm corev1.ConfigMap
	eventually(t, 20*time.Second, "risk's public key in status and the ConfigMap", func() error {
		var got hookgatev1alpha1.WebhookEndpoint
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(e), &got); err != nil {
			return err
		}
		if len(got.Status.Destinations) != 2 || got.Status.Destinations[1].Name != "risk" || got.Status.Destinations[1].PublicKey == "" {
			return fmt.Errorf("status.destinations %+v", got.Status.Destinations)
		}
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-signing-public"}, &cm); err != nil {
			return err
		}
		if !pemMatches(cm.Data["risk.pem"], got.Status.Destinations[1].PublicKey) {
			return fmt.Errorf("ConfigMap keys %v", keysOf(cm.Data))
		}
		return nil
	})

	updateEndpoint(t, ns, "orders", func(e *hookgatev1alpha1.WebhookEndpoint) {
		metav1.SetMetaDataAnnotation(&e.ObjectMeta, hookgatev1alpha1.AnnotationRotateSigning, "r1")
	})
	eventually(t, 20*time.Second, "each destination rotated, each previous key kept", func() error {
		s, err := secret()
		if err != nil {
			return err
		}
		for _, d := range []string{"billing", "risk"} {
			if string(s.Data[d+".previous"]) != string(first.Data[d]) || string(s.Data[d]) == string(first.Data[d]) {
				return fmt.Errorf("%s not rotated: keys %v", d, keysOf(s.Data))
			}
		}
		return nil
	})

	updateEndpoint(t, ns, "orders", func(e *hookgatev1alpha1.WebhookEndpoint) { e.Spec.Destinations = e.Spec.Destinations[:1] })
	eventually(t, 20*time.Second, "the removed destination's keys are gone", func() error {
		s, err := secret()
		if err != nil {
			return err
		}
		if len(s.Data["risk"]) != 0 || len(s.Data["risk.previous"]) != 0 || len(s.Data["billing"]) == 0 {
			return fmt.Errorf("Secret keys %v", keysOf(s.Data))
		}
		return nil
	})
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// updateEndpoint changes an endpoint, reading it again on a conflict.
func updateEndpoint(t *testing.T, ns, name string, change func(*hookgatev1alpha1.WebhookEndpoint)) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur hookgatev1alpha1.WebhookEndpoint
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cur); err != nil {
			return err
		}
		change(&cur)
		return cluster.Client.Update(context.Background(), &cur)
	}); err != nil {
		t.Fatal(err)
	}
}
