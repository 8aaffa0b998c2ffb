package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/testcluster"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	var err error
	cluster, err = testcluster.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: envtest:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

func samplesDir() string { return filepath.Join(testcluster.RepoRoot(), "config", "samples") }

func createNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := cluster.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

func decode(t *testing.T, manifest []byte) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(manifest, &obj.Object); err != nil {
		t.Fatalf("decoding manifest: %v\n%s", err, manifest)
	}
	return obj
}

// TestSamplesAreAccepted creates every sample of config/samples, as `kubectl apply -n` would.
func TestSamplesAreAccepted(t *testing.T) {
	ns := createNamespace(t, "samples")
	entries, err := os.ReadDir(samplesDir())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, entry := range entries {
		name := entry.Name()
		if strings.HasPrefix(name, "kustomization") {
			t.Errorf("config/samples must not hold a kustomization file (docs/reference.md): %s", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(samplesDir(), name))
			if err != nil {
				t.Fatal(err)
			}
			obj := decode(t, raw)
			if obj.GetNamespace() != "" {
				t.Fatalf("sample sets metadata.namespace %q; samples are applied with -n (docs/reference.md)", obj.GetNamespace())
			}
			obj.SetNamespace(ns)
			if err := cluster.Client.Create(context.Background(), obj); err != nil {
				t.Fatalf("the API server rejected the sample: %v", err)
			}
			kinds[obj.GetKind()]++
		})
	}
	if kinds["Partner"] == 0 {
		t.Error("no Partner sample")
	}
	// One WebhookEndpoint sample per verification type.
	if got, want := kinds["WebhookEndpoint"], 10; got < want {
		t.Errorf("%d WebhookEndpoint samples, want one per verification type (%d)", got, want)
	}
}

// TestSampleDefaults checks that the API server fills in the defaults docs/reference.md lists.
func TestSampleDefaults(t *testing.T) {
	ns := createNamespace(t, "defaults")
	ctx := context.Background()
	partner := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: ns}}
	if err := cluster.Client.Create(ctx, partner); err != nil {
		t.Fatal(err)
	}
	if got := partner.Spec.Credentials.RotationGracePeriod; got == nil || got.Duration != 24*time.Hour {
		t.Errorf("rotationGracePeriod default = %v, want 24h", got)
	}
	endpoint := &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: ns}}
	if err := cluster.Client.Create(ctx, endpoint); err != nil {
		t.Fatal(err)
	}
	spec := endpoint.Spec
	checks := []struct {
		field string
		got   any
		want  any
	}{
		{"verification.type", spec.Verification.Type, hookgatev1alpha1.VerificationPartnerHMAC},
		{"verification.tolerance", spec.Verification.Tolerance.Duration, 5 * time.Minute},
		{"maxBodyBytes", spec.MaxBodyBytes, int64(1 << 20)},
		{"retry.maxAttempts", spec.Retry.MaxAttempts, int32(12)},
		{"retry.initialBackoff", spec.Retry.InitialBackoff.Duration, 5 * time.Second},
		{"retry.maxBackoff", spec.Retry.MaxBackoff.Duration, time.Hour},
		{"effective path", endpoint.EffectivePath(), "/api/webhooks/defaults/bare"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.field, c.got, c.want)
		}
	}
}

// TestInvalidObjectsAreRejected: each manifest breaks one rule; the API server must refuse
// it with an error that names the offending field.
func seventeenDestinations() string {
	var b strings.Builder
	for i := range 17 {
		fmt.Fprintf(&b, "  - {name: d%d, url: \"http://d%d\"}\n", i, i)
	}
	return b.String()
}

func TestInvalidObjectsAreRejected(t *testing.T) {
	ns := createNamespace(t, "invalid")
	partner := func(spec string) string {
		return "apiVersion: hookgate.io/v1alpha1\nkind: Partner\nmetadata:\n  name: p\nspec:\n" + spec
	}
	endpoint := func(spec string) string {
		return "apiVersion: hookgate.io/v1alpha1\nkind: WebhookEndpoint\nmetadata:\n  name: e\nspec:\n" + spec
	}
	cases := []struct {
		name      string
		manifest  string
		wantField string
	}{
		{"allowlist entry is not a CIDR", partner("  ipAllowlist: [\"10.0.0.0/8\", \"not-a-cidr\"]\n"), "spec.ipAllowlist"},
		{"rate of zero", partner("  rateLimit: {requestsPerSecond: 0}\n"), "spec.rateLimit.requestsPerSecond"},
		{"negative burst", partner("  rateLimit: {requestsPerSecond: 5, burst: -1}\n"), "spec.rateLimit.burst"},
		{"grace period does not parse", partner("  credentials: {rotationGracePeriod: tomorrow}\n"), "spec.credentials.rotationGracePeriod"},
		{"secret name is not a DNS name", partner("  credentials: {secretName: Bad_Name}\n"), "spec.credentials.secretName"},
		{"path outside /api/webhooks/", endpoint("  path: /hooks/orders\n"), "spec.path"},
		{"reserved status path", endpoint("  path: /api/webhooks/status\n"), "spec.path"},
		{"reserved partner API path", endpoint("  path: /api/webhooks/events/x\n"), "reserved for the partner API"},
		{"reserved me path", endpoint("  path: /api/webhooks/me\n"), "reserved for the partner API"},
		{"unknown verification type", endpoint("  verification: {type: Magic}\n"), "spec.verification.type"},
		{"JWT without jwt settings", endpoint("  partners: [acme]\n  verification: {type: JWT}\n"), "spec.verification.jwt"},
		{"JWT without issuer", endpoint("  partners: [acme]\n  verification:\n    type: JWT\n    jwt: {jwksURL: \"https://a.example/jwks\", audience: hookgate}\n"), "spec.verification.jwt.issuer"},
		{"JWKS URL not http(s)", endpoint("  partners: [acme]\n  verification:\n    type: JWT\n    jwt: {jwksURL: \"ftp://a.example/jwks\", issuer: a, audience: b}\n"), "spec.verification.jwt.jwksURL"},
		{"RSASignature without header", endpoint("  partners: [acme]\n  verification: {type: RSASignature, secretRef: {name: k}}\n"), "spec.verification.rsa"},
		{"RSASignature without key", endpoint("  partners: [acme]\n  verification: {type: RSASignature, rsa: {header: X-Signature}}\n"), "spec.verification.secretRef"},
		{"HMAC without encoding", endpoint("  partners: [acme]\n  verification:\n    type: HMAC\n    secretRef: {name: s}\n    hmac: {header: X-Sig}\n"), "spec.verification.hmac.encoding"},
		{"HMAC with unknown encoding", endpoint("  partners: [acme]\n  verification:\n    type: HMAC\n    secretRef: {name: s}\n    hmac: {header: X-Sig, encoding: base32}\n"), "spec.verification.hmac.encoding"},
		{"hmac settings on another type", endpoint("  partners: [acme]\n  verification:\n    type: GitHub\n    secretRef: {name: s}\n    hmac: {header: X-Sig, encoding: hex}\n"), "spec.verification.hmac"},
		{"Stripe with two partners", endpoint("  partners: [acme, globex]\n  verification: {type: Stripe, secretRef: {name: s}}\n"), "spec.partners"},
		{"GitHub with no partner", endpoint("  verification: {type: GitHub, secretRef: {name: s}}\n"), "spec.partners"},
		{"Slack without secret", endpoint("  partners: [acme]\n  verification: {type: Slack}\n"), "spec.verification.secretRef"},
		{"tolerance does not parse", endpoint("  verification: {tolerance: 5 minutes}\n"), "spec.verification.tolerance"},
		{"zero body limit", endpoint("  maxBodyBytes: 0\n"), "spec.maxBodyBytes"},
		{"zero attempts", endpoint("  retry: {maxAttempts: 0}\n"), "spec.retry.maxAttempts"},
		{"max backoff below initial", endpoint("  retry: {initialBackoff: 10m, maxBackoff: 1m}\n"), "spec.retry.maxBackoff"},
		{"destination with service and url", endpoint("  destination:\n    service: {name: orders, port: 80}\n    url: http://orders\n"), "spec.destination"},
		{"destination url not http(s)", endpoint("  destination: {url: \"file:///etc/passwd\"}\n"), "spec.destination.url"},
		{"destination port out of range", endpoint("  destination: {service: {name: orders, port: 70000}}\n"), "spec.destination.service.port"},
		{"unknown destination signing", endpoint("  destination: {url: \"http://orders\", signing: Magic}\n"), "spec.destination.signing"},
		{"idempotency header and jsonPath", endpoint("  idempotency: {header: X-Id, jsonPath: id}\n"), "spec.idempotency"},
		{"destination timeout over 60s", endpoint("  destination: {url: \"http://orders\", timeout: 61s}\n"), "spec.destination.timeout"},
		{"destination timeout of an hour", endpoint("  destination: {url: \"http://orders\", timeout: 1h}\n"), "spec.destination.timeout"},
		{"header name with a space", endpoint("  destination:\n    url: http://orders\n    headers: {\"X Bad\": v}\n"), "spec.destination.headers"},
		{"header value with a newline", endpoint("  destination:\n    url: http://orders\n    headers: {X-Team: \"a\\r\\nX-Injected: 1\"}\n"), "spec.destination.headers"},
		{"dedup window over 30 days", endpoint("  idempotency: {window: 876000h}\n"), "spec.idempotency.window"},
		{"HMAC template signs a timestamp it has no header for", endpoint("  partners: [acme]\n  verification:\n    type: HMAC\n    secretRef: {name: s}\n    hmac: {header: X-Sig, encoding: hex, signedContent: \"{timestamp}.{body}\"}\n"), "spec.verification.hmac.timestampHeader"},
		{"HMAC timestamp header the template does not sign", endpoint("  partners: [acme]\n  verification:\n    type: HMAC\n    secretRef: {name: s}\n    hmac: {header: X-Sig, encoding: hex, timestampHeader: X-Ts}\n"), "spec.verification.hmac.timestampHeader"},
		{"destination and destinations", endpoint("  destination: {url: \"http://a\"}\n  destinations: [{name: b, url: \"http://b\"}]\n"), "not both"},
		{"two destinations of one name", endpoint("  destinations: [{name: b, url: \"http://b\"}, {name: b, url: \"http://c\"}]\n"), "spec.destinations[1]"},
		{"destination name not a DNS label", endpoint("  destinations: [{name: Billing_1, url: \"http://b\"}]\n"), "spec.destinations[0].name"},
		{"shorthand destination with another name", endpoint("  destination: {name: billing, url: \"http://b\"}\n"), "spec.destination.name"},
		{"seventeen destinations", endpoint("  destinations:\n" + seventeenDestinations()), "spec.destinations"},
	}
	if len(cases) < 12 {
		t.Fatalf("only %d invalid cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, []byte(tc.manifest))
			obj.SetNamespace(ns)
			err := cluster.Client.Create(context.Background(), obj)
			if err == nil {
				_ = cluster.Client.Delete(context.Background(), obj)
				t.Fatalf("accepted; want a rejection naming %s", tc.wantField)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("error is not a validation error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("error does not name %s: %v", tc.wantField, err)
			}
		})
	}
}

// wantColumns are the printer columns docs/reference.md lists.
var wantColumns = map[string][]string{
	"partners":         {"Ready", "Key", "Rate", "Age"},
	"webhookendpoints": {"Path", "Verification", "Ready", "Age"},
}

func TestPrinterColumnsInCRDs(t *testing.T) {
	for plural, want := range wantColumns {
		raw, err := os.ReadFile(filepath.Join(testcluster.RepoRoot(), "config", "crd", "bases", "hookgate.io_"+plural+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, col := range crd.Spec.Versions[0].AdditionalPrinterColumns {
			got = append(got, col.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s printer columns = %v, want %v", plural, got, want)
		}
	}
}

// TestKubectlGetPrintsColumns runs the real kubectl against the API server.
func TestKubectlGetPrintsColumns(t *testing.T) {
	ns := createNamespace(t, "kubectl")
	ctx := context.Background()
	objs := []string{
		"apiVersion: hookgate.io/v1alpha1\nkind: Partner\nmetadata:\n  name: acme\nspec:\n  rateLimit: {requestsPerSecond: 7}\n",
		"apiVersion: hookgate.io/v1alpha1\nkind: WebhookEndpoint\nmetadata:\n  name: orders\nspec: {}\n",
	}
	for _, m := range objs {
		obj := decode(t, []byte(m))
		obj.SetNamespace(ns)
		if err := cluster.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cluster.RunKubectl(t, "get", "partners,webhookendpoints", "-A")
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, out)
	}
	t.Logf("kubectl get partners,webhookendpoints -A:\n%s", out)
	headers := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "NAMESPACE") {
			headers[strings.Join(strings.Fields(line), " ")] = true
		}
	}
	for plural, cols := range wantColumns {
		want := "NAMESPACE NAME " + strings.ToUpper(strings.Join(cols, " "))
		if !headers[want] {
			t.Errorf("no header %q for %s in kubectl output", want, plural)
		}
	}
	// Short names, as docs/reference.md lists them (whev is the events API's).
	for _, short := range []string{"whe"} {
		if out, err := cluster.RunKubectl(t, "get", short, "-n", ns); err != nil {
			t.Errorf("kubectl get %s: %v\n%s", short, err, out)
		}
	}
}
