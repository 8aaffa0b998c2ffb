package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// TestOperator runs in order: the first step needs a cluster with no receiver yet and
// starts the receiver the others share. Any step also runs alone (go test -run
// 'TestOperator/rotation'): it then starts the shared receiver itself.
func TestOperator(t *testing.T) {
	var rcv *receiver
	t.Cleanup(func() {
		if rcv != nil {
			rcv.stop()
		}
	})
	withReceiver := func(step func(*testing.T)) func(*testing.T) {
		return func(t *testing.T) {
			if rcv == nil {
				rcv = startReceiver(t, "hookgate-receiver-0")
			}
			step(t)
		}
	}
	t.Run("partner Ready waits for a receiver", func(t *testing.T) { rcv = testReadyWaitsForReceiver(t) })
	t.Run("credentials Secret", withReceiver(testCredentialsSecret))
	t.Run("the rate column counts the receivers", withReceiver(testRateAcrossReceivers))
	t.Run("user-made Secret is never modified", withReceiver(testUserSecretUntouched))
	t.Run("rotation with grace period", withReceiver(testRotation))
	t.Run("destination signing keys and their rotation", withReceiver(testDestinationSigning))
	t.Run("a signing key per destination", withReceiver(testSigningPerDestination))
	t.Run("destination filters are compiled", withReceiver(testDestinationFilter))
	t.Run("path conflicts", withReceiver(testPathConflicts))
	t.Run("paths belong to their namespace", withReceiver(testPathsPerNamespace))
	t.Run("reserved default paths", withReceiver(testReservedDefaultPath))
	t.Run("service destinations reach their own Service only", withReceiver(testServiceDestinationAddresses))
	t.Run("tenant limits keep the table publishing", withReceiver(testTenantTableLimits))
	t.Run("endpoint readiness reasons", withReceiver(testEndpointReasons))
	t.Run("status writes survive concurrent edits", withReceiver(testStatusWritesDoNotConflict))
	t.Run("changes reach the routing table", withReceiver(testChangesPropagate))
	t.Run("a thousand partners", withReceiver(testThousandPartners))
}

func testReadyWaitsForReceiver(t *testing.T) *receiver {
	ctx := context.Background()
	ns := newNamespace(t, "ready")
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "Ready=False WaitingForReceiver",
		partnerCondition(ns, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionFalse, hookgatev1alpha1.ReasonWaitingForReceiver))
	// Still not ready a moment later: nothing but a receiver can make it so.
	time.Sleep(time.Second)
	if err := partnerCondition(ns, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionFalse, hookgatev1alpha1.ReasonWaitingForReceiver)(); err != nil {
		t.Fatal(err)
	}

	// The receiver's generated role lets it read the routing Secret and nothing else.
	if _, err := receiverClientset.CoreV1().Secrets(receiverNamespace).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the receiver may list every Secret of its namespace: %v", err)
	}
	if _, err := receiverClientset.CoreV1().Secrets(ns).Get(ctx, "acme-credentials", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the receiver may read a partner's credentials Secret: %v", err)
	}
	// Its Lease rights are its own Lease's: it cannot renew or take the operator's leader
	// Lease (or any other) in the namespace it shares with the operator.
	other := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "hookgate-operator.hookgate.io", Namespace: receiverNamespace}}
	if _, err := clientset.CoordinationV1().Leases(receiverNamespace).Create(ctx, other, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := receiverClientset.CoordinationV1().Leases(receiverNamespace).Get(ctx, other.Name, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the receiver may read the operator's leader Lease: %v", err)
	}
	if _, err := receiverClientset.CoordinationV1().Leases(receiverNamespace).Update(ctx, other, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the receiver may update the operator's leader Lease: %v", err)
	}
	_ = clientset.CoordinationV1().Leases(receiverNamespace).Delete(ctx, other.Name, metav1.DeleteOptions{})
	rcv := startReceiver(t, "hookgate-receiver-0")
	took := eventually(t, 15*time.Second, "Ready=True once the receiver serves the table",
		partnerCondition(ns, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, hookgatev1alpha1.ReasonReconciled))
	t.Logf("partner Ready %s after the receiver started", took.Round(time.Millisecond))

	// The receiver's Lease carries the serial it loaded, and that table holds the partner.
	lease, err := clientset.CoordinationV1().Leases(receiverNamespace).Get(ctx, "hookgate-receiver-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loaded := rcv.holder.Current()
	if loaded == nil || routing.SerialString(loaded.Serial) != lease.Annotations[routing.AnnotationSerial] {
		t.Fatalf("Lease serial %q does not match the loaded table %+v", lease.Annotations[routing.AnnotationSerial], loaded)
	}
	if _, ok := loaded.Partner(ns, "acme"); !ok {
		t.Fatal("the receiver's table does not hold the partner")
	}
	out, err := cluster.RunKubectl(t, "wait", "--for=condition=Ready", "partner/acme", "-n", ns, "--timeout=30s")
	if err != nil {
		t.Fatalf("kubectl wait: %v\n%s", err, out)
	}
	t.Logf("kubectl wait --for=condition=Ready partner/acme: %s", strings.TrimSpace(out))
	return rcv
}

// testRateAcrossReceivers: each receiver keeps its own bucket, so the Partner's Rate
// column (status.rateLimit) says what the partner may reach across the live receivers,
// and follows a second receiver starting and stopping.
func testRateAcrossReceivers(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "rates")
	partner := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns},
		Spec: hookgatev1alpha1.PartnerSpec{RateLimit: &hookgatev1alpha1.RateLimit{RequestsPerSecond: 50}}}
	if err := cluster.Client.Create(ctx, partner); err != nil {
		t.Fatal(err)
	}
	rate := func(want string) func() error {
		return func() error {
			var p hookgatev1alpha1.Partner
			if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "acme"}, &p); err != nil {
				return err
			}
			if p.Status.RateLimit != want {
				return fmt.Errorf("status.rateLimit %q, want %q", p.Status.RateLimit, want)
			}
			return nil
		}
	}
	eventually(t, 15*time.Second, "one receiver's rate", rate("50/s"))
	second := startReceiverWith(t, "hookgate-receiver-rates", clientset)
	eventually(t, 20*time.Second, "two receivers' rate", rate("50/s per receiver, 2 receivers: up to 100/s"))
	out, err := cluster.RunKubectl(t, "get", "partner", "acme", "-n", ns)
	if err != nil || !strings.Contains(out, "50/s per receiver, 2 receivers: up to 100/s") {
		t.Fatalf("kubectl get partner: %v\n%s", err, out)
	}
	second.stop()
	eventually(t, 20*time.Second, "one receiver's rate again", rate("50/s"))
}

func testCredentialsSecret(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "creds")
	partner := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	if err := cluster.Client.Create(ctx, partner); err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	took := eventually(t, 5*time.Second, "credentials Secret with both keys", func() error {
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "acme-credentials"}, &secret); err != nil {
			return err
		}
		if !strings.HasPrefix(string(secret.Data[hookgatev1alpha1.SecretKeyAPIKey]), hookgatev1alpha1.APIKeyPrefix) || !strings.HasPrefix(string(secret.Data[hookgatev1alpha1.SecretKeySigningSecret]), hookgatev1alpha1.SigningSecretPrefix) {
			return fmt.Errorf("keys missing or malformed")
		}
		return nil
	})
	t.Logf("credentials Secret ready %s after the Partner was created", took.Round(time.Millisecond))
	if !metav1.IsControlledBy(&secret, partner) {
		t.Fatalf("Secret is not controlled by the Partner: %+v", secret.OwnerReferences)
	}
	if len(secret.Data[hookgatev1alpha1.SecretKeyAPIKey]) != len(hookgatev1alpha1.APIKeyPrefix)+43 {
		t.Errorf("apiKey has %d characters, want hgk_ + 43 (32 bytes base64url)", len(secret.Data[hookgatev1alpha1.SecretKeyAPIKey]))
	}
	eventually(t, 10*time.Second, "status filled in", func() error {
		p := getPartner(t, ns, "acme")
		if p.Status.SecretName != "acme-credentials" || p.Status.APIKeyPrefix != string(secret.Data[hookgatev1alpha1.SecretKeyAPIKey][:8]) {
			return fmt.Errorf("status %+v", p.Status)
		}
		return conditionIs(p.Status.Conditions, hookgatev1alpha1.ConditionCredentialsReady, metav1.ConditionTrue, "")
	})

	// Deleting the Partner deletes its Secret (the garbage collector follows the owner reference).
	if err := cluster.Client.Delete(ctx, partner); err != nil {
		t.Fatal(err)
	}
	took = eventually(t, 60*time.Second, "Secret deleted with its Partner", func() error {
		err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "acme-credentials"}, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%w)", err)
	})
	t.Logf("credentials Secret garbage-collected %s after the Partner was deleted", took.Round(time.Millisecond))
}

func testUserSecretUntouched(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "usersecret")
	user := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "globex-keys", Namespace: ns},
		Data:       map[string][]byte{hookgatev1alpha1.SecretKeyAPIKey: []byte("user-chosen-key"), hookgatev1alpha1.SecretKeySigningSecret: []byte("user-chosen-secret")},
	}
	if err := cluster.Client.Create(ctx, user); err != nil {
		t.Fatal(err)
	}
	incomplete := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "initech-keys", Namespace: ns}, Data: map[string][]byte{hookgatev1alpha1.SecretKeyAPIKey: []byte("only-a-key")}}
	if err := cluster.Client.Create(ctx, incomplete); err != nil {
		t.Fatal(err)
	}
	rvUser, rvIncomplete := user.ResourceVersion, incomplete.ResourceVersion
	for name, secretName := range map[string]string{"globex": "globex-keys", "initech": "initech-keys"} {
		p := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		p.Spec.Credentials.SecretName = secretName
		if err := cluster.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the user's Secret is used", partnerCondition(ns, "globex", hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, ""))
	eventually(t, 10*time.Second, "a Secret without signingSecret is reported",
		partnerCondition(ns, "initech", hookgatev1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, hookgatev1alpha1.ReasonSecretKeyMissing))

	// A rotation request cannot touch the user's Secret either.
	updatePartner(t, ns, "globex", func(p *hookgatev1alpha1.Partner) {
		p.Annotations = map[string]string{hookgatev1alpha1.AnnotationRotate: "1"}
	})
	eventually(t, 10*time.Second, "rotation refused with a reason",
		partnerCondition(ns, "globex", hookgatev1alpha1.ConditionCredentialsReady, metav1.ConditionTrue, hookgatev1alpha1.ReasonRotationNotPossible))
	table, _, err := publishedTable()
	if err != nil {
		t.Fatal(err)
	}
	entry, ok := table.Partner(ns, "globex")
	if !ok || entry.Credentials[0].APIKeySHA256 != routing.HashAPIKey("user-chosen-key") {
		t.Fatalf("the table does not carry the user's key: %+v", entry)
	}
	for name, rv := range map[string]string{"globex-keys": rvUser, "initech-keys": rvIncomplete} {
		var now corev1.Secret
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &now); err != nil {
			t.Fatal(err)
		}
		if now.ResourceVersion != rv {
			t.Errorf("Secret %s was modified: resourceVersion %s -> %s", name, rv, now.ResourceVersion)
		}
	}
}

func signingSecretsInTable(ns, name string) ([]string, error) {
	table, _, err := publishedTable()
	if err != nil {
		return nil, err
	}
	entry, ok := table.Partner(ns, name)
	if !ok {
		return nil, fmt.Errorf("partner %s/%s not in the table", ns, name)
	}
	var out []string
	for _, c := range entry.Credentials {
		out = append(out, string(c.SigningSecret))
	}
	return out, nil
}

func testRotation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "rotation")
	p := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	p.Spec.Credentials.RotationGracePeriod = &metav1.Duration{Duration: 2 * time.Second}
	if err := cluster.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	var oldSecret string
	eventually(t, 10*time.Second, "partner in the table", func() error {
		secrets, err := signingSecretsInTable(ns, "acme")
		if err != nil {
			return err
		}
		oldSecret = secrets[0]
		return nil
	})

	updatePartner(t, ns, "acme", func(p *hookgatev1alpha1.Partner) {
		p.Annotations = map[string]string{hookgatev1alpha1.AnnotationRotate: "2026-11-23"}
	})
	rotatedAt := time.Now()
	var newSecret string
	eventually(t, 5*time.Second, "old and new signing secrets both in the table", func() error {
		secrets, err := signingSecretsInTable(ns, "acme")
		if err != nil {
			return err
		}
		if len(secrets) != 2 || secrets[1] != oldSecret || secrets[0] == oldSecret {
			return fmt.Errorf("table has %d secrets", len(secrets))
		}
		newSecret = secrets[0]
		return nil
	})
	t.Logf("both secrets in the table %s after the rotate annotation", time.Since(rotatedAt).Round(time.Millisecond))
	eventually(t, 8*time.Second, "only the new signing secret after the 2s grace", func() error {
		secrets, err := signingSecretsInTable(ns, "acme")
		if err != nil {
			return err
		}
		if len(secrets) != 1 || secrets[0] != newSecret {
			return fmt.Errorf("table has %d secrets", len(secrets))
		}
		return nil
	})
	t.Logf("old secret gone from the table %s after the rotation (grace 2s)", time.Since(rotatedAt).Round(time.Millisecond))
	if got := getPartner(t, ns, "acme").Status.CredentialsRotatedAt; got == nil {
		t.Error("status.credentialsRotatedAt not set")
	}
}

func newEndpoint(ns, name, path string) *hookgatev1alpha1.WebhookEndpoint {
	return &hookgatev1alpha1.WebhookEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       hookgatev1alpha1.WebhookEndpointSpec{Path: path},
	}
}

func testPathConflicts(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "paths")
	const path = "/api/webhooks/shared"
	older := newEndpoint(ns, "older", path)
	if err := cluster.Client.Create(ctx, older); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "older endpoint Ready", endpointCondition(ns, "older", metav1.ConditionTrue, ""))
	// Creation timestamps have a resolution of one second.
	time.Sleep(1100 * time.Millisecond)
	if err := cluster.Client.Create(ctx, newEndpoint(ns, "newer", path)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "newer endpoint gets PathConflict", endpointCondition(ns, "newer", metav1.ConditionFalse, hookgatev1alpha1.ReasonPathConflict))
	if err := endpointCondition(ns, "older", metav1.ConditionTrue, "")(); err != nil {
		t.Fatalf("the older endpoint lost its path: %v", err)
	}
	assertPathOwner(t, path, "older")

	if err := cluster.Client.Delete(ctx, older); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "newer endpoint takes the path when the older goes", endpointCondition(ns, "newer", metav1.ConditionTrue, ""))
	assertPathOwner(t, path, "newer")

	// And the other way: an endpoint created later on the path now held by "newer" waits.
	time.Sleep(1100 * time.Millisecond)
	if err := cluster.Client.Create(ctx, newEndpoint(ns, "latest", path)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "latest gets PathConflict", endpointCondition(ns, "latest", metav1.ConditionFalse, hookgatev1alpha1.ReasonPathConflict))
	assertPathOwner(t, path, "newer")
}

func assertPathOwner(t *testing.T, path, name string) {
	t.Helper()
	eventually(t, 5*time.Second, "routing table path owner", func() error {
		table, _, err := publishedTable()
		if err != nil {
			return err
		}
		e, ok := table.EndpointByPath(path)
		if !ok || e.Name != name {
			return fmt.Errorf("path %s served by %+v, want %s", path, e, name)
		}
		return nil
	})
}

func testEndpointReasons(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "reasons")
	cases := []struct {
		name   string
		spec   hookgatev1alpha1.WebhookEndpointSpec
		reason string
	}{
		{"unknown-partner", hookgatev1alpha1.WebhookEndpointSpec{Partners: []string{"nobody"}}, hookgatev1alpha1.ReasonPartnerNotFound},
		{"missing-secret", hookgatev1alpha1.WebhookEndpointSpec{Partners: []string{"acme"}, Verification: hookgatev1alpha1.Verification{
			Type: hookgatev1alpha1.VerificationGitHub, SecretRef: &hookgatev1alpha1.SecretKeySelector{Name: "absent", Key: "secret"}}}, hookgatev1alpha1.ReasonSecretNotFound},
		{"missing-service", hookgatev1alpha1.WebhookEndpointSpec{Destination: &hookgatev1alpha1.Destination{
			Service: &hookgatev1alpha1.ServiceDestination{Name: "orders", Port: 8080}}}, hookgatev1alpha1.ReasonServiceNotFound},
	}
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		e := &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns}, Spec: tc.spec}
		if err := cluster.Client.Create(ctx, e); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		eventually(t, 10*time.Second, tc.name, endpointCondition(ns, tc.name, metav1.ConditionFalse, tc.reason))
	}
	// The missing Service appears with the wrong port, then the right one.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if err := cluster.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "wrong port", endpointCondition(ns, "missing-service", metav1.ConditionFalse, hookgatev1alpha1.ReasonServicePortNotFound))
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		svc.Spec.Ports[0].Port = 8080
		return cluster.Client.Update(ctx, svc)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "service fixed", endpointCondition(ns, "missing-service", metav1.ConditionTrue, ""))
	var signing corev1.Secret
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "missing-service-signing"}, &signing); err != nil {
		t.Fatalf("destination signing Secret: %v", err)
	}
	if !strings.HasPrefix(string(signing.Data[hookgatev1alpha1.SecretKeyDefault]), hookgatev1alpha1.SigningSecretPrefix) {
		t.Error("signing Secret has no whsec_ secret")
	}
	table, _, err := publishedTable()
	if err != nil {
		t.Fatal(err)
	}
	e, _ := table.EndpointByPath("/api/webhooks/reasons/missing-service")
	if e == nil || e.Destination == nil || e.Destination.URL != "http://orders.reasons.svc:8080/" || string(e.Destination.SigningSecret) != string(signing.Data[hookgatev1alpha1.SecretKeyDefault]) {
		t.Fatalf("destination in the table: %+v", e)
	}
	var ep hookgatev1alpha1.WebhookEndpoint
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "missing-service"}, &ep); err != nil {
		t.Fatal(err)
	}
	if ep.Status.URL != "/api/webhooks/reasons/missing-service" {
		t.Errorf("status.url = %q", ep.Status.URL)
	}
}

func testChangesPropagate(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "changes")
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	hmacKey := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "github", Namespace: ns}, Data: map[string][]byte{hookgatev1alpha1.SecretKeyDefault: []byte("v1")}}
	if err := cluster.Client.Create(ctx, hmacKey); err != nil {
		t.Fatal(err)
	}
	endpoint := &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "gh", Namespace: ns}, Spec: hookgatev1alpha1.WebhookEndpointSpec{
		Partners:     []string{"acme"},
		Verification: hookgatev1alpha1.Verification{Type: hookgatev1alpha1.VerificationGitHub, SecretRef: &hookgatev1alpha1.SecretKeySelector{Name: "github", Key: "secret"}},
	}}
	if err := cluster.Client.Create(ctx, endpoint); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "endpoint Ready", endpointCondition(ns, "gh", metav1.ConditionTrue, ""))

	inTable := func(check func(*routing.Table) error) func() error {
		return func() error {
			table, _, err := publishedTable()
			if err != nil {
				return err
			}
			return check(table)
		}
	}
	changes := []struct {
		what   string
		change func() error
		check  func(*routing.Table) error
	}{
		{"partner rate limit", func() error {
			updatePartner(t, ns, "acme", func(p *hookgatev1alpha1.Partner) {
				p.Spec.RateLimit = &hookgatev1alpha1.RateLimit{RequestsPerSecond: 7, Burst: 9}
			})
			return nil
		}, func(table *routing.Table) error {
			if p, ok := table.Partner(ns, "acme"); !ok || p.RateLimit == nil || p.RateLimit.RequestsPerSecond != 7 {
				return fmt.Errorf("rate limit not in the table")
			}
			return nil
		}},
		{"endpoint event types", func() error {
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var e hookgatev1alpha1.WebhookEndpoint
				if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(endpoint), &e); err != nil {
					return err
				}
				e.Spec.EventTypes = []string{"push"}
				return cluster.Client.Update(ctx, &e)
			})
		}, func(table *routing.Table) error {
			if e, ok := table.EndpointByPath("/api/webhooks/changes/gh"); !ok || len(e.EventTypes) != 1 {
				return fmt.Errorf("event types not in the table")
			}
			return nil
		}},
		{"referenced Secret", func() error {
			hmacKey.Data[hookgatev1alpha1.SecretKeyDefault] = []byte("v2")
			return cluster.Client.Update(ctx, hmacKey)
		}, func(table *routing.Table) error {
			if e, ok := table.EndpointByPath("/api/webhooks/changes/gh"); !ok || e.Verification.Secret != "v2" {
				return fmt.Errorf("new secret not in the table")
			}
			return nil
		}},
		{"partner suspended", func() error {
			updatePartner(t, ns, "acme", func(p *hookgatev1alpha1.Partner) { p.Spec.Suspended = true })
			return nil
		}, func(table *routing.Table) error {
			if p, ok := table.Partner(ns, "acme"); !ok || !p.Suspended {
				return fmt.Errorf("suspension not in the table")
			}
			return nil
		}},
	}
	for _, c := range changes {
		if err := c.change(); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		took := eventually(t, 5*time.Second, c.what+" in the routing table", inTable(c.check))
		t.Logf("%s in the routing table after %s", c.what, took.Round(time.Millisecond))
	}

	// Let in-flight work settle (grace periods, requeues), then nothing may move for 10 s.
	_, rv, err := publishedTable()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "routing Secret stops changing", func() error {
		time.Sleep(2 * time.Second)
		_, now, err := publishedTable()
		if err != nil {
			return err
		}
		if now != rv {
			rv = now
			return fmt.Errorf("still moving")
		}
		return nil
	})
	builds0, writes0 := publisher.Stats()
	time.Sleep(10 * time.Second)
	_, after, err := publishedTable()
	if err != nil {
		t.Fatal(err)
	}
	builds1, writes1 := publisher.Stats()
	if after != rv || writes1 != writes0 {
		t.Fatalf("routing Secret moved with nothing changing: resourceVersion %s -> %s, writes %d -> %d", rv, after, writes0, writes1)
	}
	t.Logf("10 s idle: routing Secret resourceVersion stayed %s (%d builds, 0 writes)", rv, builds1-builds0)
}

func testThousandPartners(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "scale")
	const n = 1000
	_, writesBefore := publisher.Stats()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	names := make(chan string, n)
	for i := range n {
		names <- fmt.Sprintf("partner-%04d", i)
	}
	close(names)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
					failed.Add(1)
					t.Errorf("creating %s: %v", name, err)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	created := time.Since(start)
	inTable := eventually(t, 120*time.Second, "all partners in the routing table", func() error {
		table, _, err := publishedTable()
		if err != nil {
			return err
		}
		count := 0
		for _, p := range table.Partners {
			if p.Namespace == ns {
				count++
			}
		}
		if count != n {
			return fmt.Errorf("%d of %d in the table", count, n)
		}
		return nil
	})
	allReady := eventually(t, 120*time.Second, "all partners Ready", func() error {
		var list hookgatev1alpha1.PartnerList
		if err := cluster.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for i := range list.Items {
			if conditionIs(list.Items[i].Status.Conditions, hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, "") == nil {
				ready++
			}
		}
		if ready != n {
			return fmt.Errorf("%d of %d Ready", ready, n)
		}
		return nil
	})
	_, writesAfter := publisher.Stats()
	table, _, _ := publishedTable()
	data, _ := routing.Encode(table)
	t.Logf("%d partners: created in %s; all in the routing table %s after the first create; all Ready %s after the first create; %d routing Secret writes; table %d bytes compressed",
		n, created.Round(time.Millisecond), (created + inTable).Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
		writesAfter-writesBefore, len(data))
	_ = allReady
}

// testStatusWritesDoNotConflict changes a Partner's spec and annotations from two
// goroutines while the operator reconciles it: a status write that conflicted with those
// edits would show up as a reconcile error in the controller's metrics.
func testStatusWritesDoNotConflict(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "conflicts")
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "Ready", partnerCondition(ns, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, ""))

	errorsBefore := reconcileErrors(t, "partner")
	deadline := time.Now().Add(5 * time.Second)
	var edits atomic.Int64
	var wg sync.WaitGroup
	patch := func(body func(i int) string) {
		defer wg.Done()
		for i := 0; time.Now().Before(deadline); i++ {
			p := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
			if err := cluster.Client.Patch(ctx, p, client.RawPatch(types.MergePatchType, []byte(body(i)))); err != nil {
				t.Errorf("patch: %v", err)
				return
			}
			edits.Add(1)
		}
	}
	wg.Add(2)
	// Toggling suspended changes the generation, so that every reconcile writes status.
	go patch(func(i int) string {
		time.Sleep(50 * time.Millisecond)
		return fmt.Sprintf(`{"spec":{"suspended":%v}}`, i%2 == 0)
	})
	go patch(func(i int) string { return fmt.Sprintf(`{"metadata":{"annotations":{"example.com/touch":"%d"}}}`, i) })
	wg.Wait()
	updatePartner(t, ns, "acme", func(p *hookgatev1alpha1.Partner) { p.Spec.Suspended = false })
	eventually(t, 15*time.Second, "Ready again, for the latest generation", partnerCondition(ns, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, ""))
	if got := reconcileErrors(t, "partner") - errorsBefore; got != 0 {
		t.Errorf("%v reconcile errors while %d edits raced the status writes, want 0", got, edits.Load())
	}
	t.Logf("%d concurrent edits raced the status writes", edits.Load())
}

// reconcileErrors reads controller-runtime's error counter of one controller.
func reconcileErrors(t *testing.T, controller string) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// testPathsPerNamespace: namespace evil creates an endpoint on payments' default path
// first; it does not get it, payments' endpoint does, and evil's own endpoint is served.
func testPathsPerNamespace(t *testing.T) {
	ctx := context.Background()
	payments, evil := newNamespace(t, "payments"), newNamespace(t, "evil")
	const path = "/api/webhooks/payments/orders"
	if err := cluster.Client.Create(ctx, newEndpoint(evil, "squatter", path)); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Create(ctx, newEndpoint(evil, "own", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "squatter gets PathNotPermitted", endpointCondition(evil, "squatter", metav1.ConditionFalse, hookgatev1alpha1.ReasonPathNotPermitted))
	eventually(t, 10*time.Second, "evil's own endpoint Ready", endpointCondition(evil, "own", metav1.ConditionTrue, ""))
	time.Sleep(1100 * time.Millisecond) // the squatter is older by a whole second
	if err := cluster.Client.Create(ctx, newEndpoint(payments, "orders", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "payments' endpoint Ready on its default path", endpointCondition(payments, "orders", metav1.ConditionTrue, ""))
	table, _, err := publishedTable()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := table.EndpointByPath(path); !ok || e.Namespace != payments || e.Name != "orders" {
		t.Fatalf("path %s served by %+v, want payments/orders", path, e)
	}
}

// testReservedDefaultPath: the default path of an endpoint in a namespace named events is
// under /api/webhooks/events/, which the partner API answers; the endpoint is not Ready
// and not published, instead of Ready with every POST answered 405.
func testReservedDefaultPath(t *testing.T) {
	ctx := context.Background()
	events := newNamespace(t, "events")
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: events}}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Create(ctx, newEndpoint(events, "orders", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the endpoint gets PathReserved", endpointCondition(events, "orders", metav1.ConditionFalse, hookgatev1alpha1.ReasonPathReserved))
	eventually(t, 10*time.Second, "the partner is published", partnerCondition(events, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, ""))
	table, _, err := publishedTable()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := table.EndpointByPath("/api/webhooks/events/orders"); ok {
		t.Fatalf("the reserved path is published for %s/%s", e.Namespace, e.Name)
	}
	var e hookgatev1alpha1.WebhookEndpoint
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: events, Name: "orders"}, &e); err != nil {
		t.Fatal(err)
	}
	if msg := meta.FindStatusCondition(e.Status.Conditions, hookgatev1alpha1.ConditionReady).Message; !strings.Contains(msg, "/api/webhooks/events/orders") || !strings.Contains(msg, "reserved") {
		t.Errorf("message %q, want it to name the path and say it is reserved", msg)
	}
}

// testServiceDestinationAddresses: tenant-a's Service destinations are published with
// the addresses of tenant-a's own Services (cluster IPs, a headless Service's
// EndpointSlices, followed as they change), never those of tenant-b's Services of the
// same names; an ExternalName Service, which could alias any host, is refused.
func testServiceDestinationAddresses(t *testing.T) {
	ctx := context.Background()
	a, b := newNamespace(t, "tenant-a"), newNamespace(t, "tenant-b")
	port := []corev1.ServicePort{{Name: "http", Port: 8080}}
	services := map[string]*corev1.Service{}
	for _, ns := range []string{a, b} {
		for _, svc := range []*corev1.Service{
			{ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: ns}, Spec: corev1.ServiceSpec{Ports: port}},
			{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: ns}, Spec: corev1.ServiceSpec{Ports: port, ClusterIP: corev1.ClusterIPNone}},
		} {
			if err := cluster.Client.Create(ctx, svc); err != nil {
				t.Fatal(err)
			}
			services[ns+"/"+svc.Name] = svc
		}
	}
	if err := cluster.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "outside", Namespace: a},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "billing.tenant-b.svc.cluster.local", Ports: port}}); err != nil {
		t.Fatal(err)
	}
	slice := func(ns, addr string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "ledger-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "ledger"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}}},
		}
	}
	ledgerA := slice(a, "10.244.1.1")
	for _, sl := range []*discoveryv1.EndpointSlice{ledgerA, slice(b, "10.244.2.1")} {
		if err := cluster.Client.Create(ctx, sl); err != nil {
			t.Fatal(err)
		}
	}
	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: a}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"billing", "ledger", "outside"} {
		e := &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "to-" + name, Namespace: a}, Spec: hookgatev1alpha1.WebhookEndpointSpec{
			Destination: &hookgatev1alpha1.Destination{Service: &hookgatev1alpha1.ServiceDestination{Name: name, Port: 8080}}}}
		if err := cluster.Client.Create(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the ExternalName destination is refused", endpointCondition(a, "to-outside", metav1.ConditionFalse, hookgatev1alpha1.ReasonServiceExternalName))
	published := func(name string, want []string) func() error {
		return func() error {
			if err := endpointCondition(a, name, metav1.ConditionTrue, "")(); err != nil {
				return err
			}
			table, _, err := publishedTable()
			if err != nil {
				return err
			}
			e, ok := table.EndpointByPath("/api/webhooks/" + a + "/" + name)
			if !ok || e.Destination == nil {
				return fmt.Errorf("%s is not published with a destination", name)
			}
			if !e.Destination.Service || !slices.Equal(e.Destination.Addresses, want) {
				return fmt.Errorf("%s: service %v, addresses %v, want %v", name, e.Destination.Service, e.Destination.Addresses, want)
			}
			return nil
		}
	}
	var billingA corev1.Service
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(services[a+"/billing"]), &billingA); err != nil {
		t.Fatal(err)
	}
	if len(billingA.Spec.ClusterIPs) == 0 {
		t.Fatal("the API server allocated no cluster IP")
	}
	eventually(t, 10*time.Second, "billing with tenant-a's cluster IP", published("to-billing", billingA.Spec.ClusterIPs))
	eventually(t, 10*time.Second, "ledger with tenant-a's endpoints", published("to-ledger", []string{"10.244.1.1"}))
	// The pods behind the headless Service change: the table follows.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(ledgerA), ledgerA); err != nil {
			return err
		}
		ledgerA.Endpoints = append(ledgerA.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.1.2"}})
		return cluster.Client.Update(ctx, ledgerA)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ledger with its new endpoint", published("to-ledger", []string{"10.244.1.1", "10.244.1.2"}))
	var e hookgatev1alpha1.WebhookEndpoint
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: a, Name: "to-outside"}, &e); err != nil {
		t.Fatal(err)
	}
	if msg := meta.FindStatusCondition(e.Status.Conditions, hookgatev1alpha1.ConditionReady).Message; strings.Contains(msg, "tenant-b") {
		t.Errorf("the condition names the ExternalName's host: %q", msg)
	}
}

// testTenantTableLimits: one namespace's oversized Secrets and too many large entries
// are refused with reasons, and a partner in another namespace still becomes Ready.
func testTenantTableLimits(t *testing.T) {
	ctx := context.Background()
	big, other := newNamespace(t, "bigsecrets"), newNamespace(t, "elsewhere")
	huge := strings.Repeat("x", 900_000)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "huge-creds", Namespace: big}, Data: map[string][]byte{
			hookgatev1alpha1.SecretKeyAPIKey: []byte("hgk_huge"), hookgatev1alpha1.SecretKeySigningSecret: []byte(huge)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "huge-hmac", Namespace: big}, Data: map[string][]byte{hookgatev1alpha1.SecretKeyDefault: []byte(huge)}},
	} {
		if err := cluster.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	hugePartner := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "huge", Namespace: big}}
	hugePartner.Spec.Credentials.SecretName = "huge-creds"
	hugeEndpoint := &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "huge", Namespace: big}, Spec: hookgatev1alpha1.WebhookEndpointSpec{
		Partners:     []string{"huge"},
		Verification: hookgatev1alpha1.Verification{Type: hookgatev1alpha1.VerificationGitHub, SecretRef: &hookgatev1alpha1.SecretKeySelector{Name: "huge-hmac"}},
	}}
	for _, o := range []client.Object{hugePartner, hugeEndpoint} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// Twenty partners of 15 KB each: under the per-secret limit, over the namespace's
	// 256 KiB share of the table together.
	var many []string
	for i := range 20 {
		name := fmt.Sprintf("large-%02d", i)
		many = append(many, name)
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-creds", Namespace: big}, Data: map[string][]byte{
			hookgatev1alpha1.SecretKeyAPIKey: []byte("hgk_" + name), hookgatev1alpha1.SecretKeySigningSecret: []byte(randomHex(t, 7500))}}
		if err := cluster.Client.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		p := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: big}}
		p.Spec.Credentials.SecretName = secret.Name
		if err := cluster.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, name := range append(many, "huge") {
			_ = cluster.Client.Delete(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: big}})
		}
		_ = cluster.Client.Delete(ctx, hugeEndpoint)
	})

	if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: other}}); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 15*time.Second, "a partner of another namespace Ready", partnerCondition(other, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, ""))
	t.Logf("partner in namespace %s Ready %s after creation, next to namespace %s's oversized entries", other, took.Round(time.Millisecond), big)

	eventually(t, 10*time.Second, "oversized credentials refused", partnerCondition(big, "huge", hookgatev1alpha1.ConditionReady, metav1.ConditionFalse, hookgatev1alpha1.ReasonSecretTooLarge))
	eventually(t, 10*time.Second, "oversized secretRef refused", endpointCondition(big, "huge", metav1.ConditionFalse, hookgatev1alpha1.ReasonSecretTooLarge))
	var ready, overBudget int
	eventually(t, 20*time.Second, "the namespace's partners Ready up to its budget, the rest refused", func() error {
		ready, overBudget = 0, 0
		for _, name := range many {
			p := getPartner(t, big, name)
			switch {
			case conditionIs(p.Status.Conditions, hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, "") == nil:
				ready++
			case conditionIs(p.Status.Conditions, hookgatev1alpha1.ConditionReady, metav1.ConditionFalse, hookgatev1alpha1.ReasonNamespaceTableBudgetExceeded) == nil:
				overBudget++
			}
		}
		if ready+overBudget != len(many) || ready == 0 || overBudget == 0 {
			return fmt.Errorf("%d Ready, %d over budget of %d", ready, overBudget, len(many))
		}
		return nil
	})
	t.Logf("namespace %s: %d partners of 15 KB Ready, %d refused with %s", big, ready, overBudget, hookgatev1alpha1.ReasonNamespaceTableBudgetExceeded)
	if err := partnerCondition(other, "acme", hookgatev1alpha1.ConditionReady, metav1.ConditionTrue, "")(); err != nil {
		t.Fatalf("the other namespace's partner lost Ready: %v", err)
	}
	msg := meta.FindStatusCondition(getPartner(t, big, "huge").Status.Conditions, hookgatev1alpha1.ConditionReady).Message
	if !strings.Contains(msg, "--max-secret-bytes") {
		t.Errorf("the SecretTooLarge message does not name the limit: %q", msg)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
