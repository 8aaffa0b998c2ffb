package packaging

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/testcluster"
	hookgatereceiver "github.com/hookgate/hookgate/receiver"
)

// TestMonitoring renders the chart's Grafana dashboard and PrometheusRule: the dashboard
// passes a JSON schema of Grafana's dashboard model, the PrometheusRule is strictly the
// prometheus-operator type and passes kubectl apply --dry-run=server with its CRD
// installed, and every hookgate metric either uses is one the receiver registers.
func TestMonitoring(t *testing.T) {
	helm := helmBin(t)
	out := run(t, nil, helm, "template", "hookgate", chartDir(), "--namespace", "hookgate",
		"--set", "grafana.dashboards.enabled=true", "--set", "prometheusRule.enabled=true")
	var dashboard, rule *unstructured.Unstructured
	for _, o := range documents(t, out) {
		switch {
		case o.GetKind() == "PrometheusRule":
			rule = o
		case o.GetKind() == "ConfigMap" && o.GetLabels()["grafana_dashboard"] == "1":
			dashboard = o
		}
	}
	if dashboard == nil || rule == nil {
		t.Fatalf("rendered dashboard ConfigMap %t, PrometheusRule %t", dashboard != nil, rule != nil)
	}

	var cm corev1.ConfigMap
	mustConvert(t, dashboard, &cm)
	raw := cm.Data["hookgate.json"]
	var doc any
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	schema, err := jsonschema.NewCompiler().Compile(filepath.Join("testdata", "grafana-dashboard.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(doc); err != nil {
		t.Fatalf("the dashboard does not pass the schema: %v", err)
	}

	var pr monitoringv1.PrometheusRule
	mustConvert(t, rule, &pr)
	var alerts []string
	exprs := []string{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			exprs = append(exprs, r.Expr.String())
		}
	}
	for _, want := range []string{"HookgateDeliveryFallingBehind", "HookgateDestinationFailing", "HookgateStoreNearlyFull", "HookgateReceiverWithoutRoutingTable"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s (have %v)", want, alerts)
		}
	}
	installPrometheusRuleCRD(t)
	if err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hookgate"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dryRun(t, []*unstructured.Unstructured{rule})

	for _, p := range doc.(map[string]any)["panels"].([]any) {
		for _, target := range p.(map[string]any)["targets"].([]any) {
			exprs = append(exprs, target.(map[string]any)["expr"].(string))
		}
	}
	used := metricNames(exprs)
	registered := receiverMetrics(t)
	t.Logf("the dashboard and alerts use %d hookgate metrics; the receiver registers %d", len(used), len(registered))
	for _, name := range used {
		if !registered[name] {
			t.Errorf("metric %s is used by the dashboard or alerts but the receiver has no such metric", name)
		}
	}
}

var metricName = regexp.MustCompile(`hookgate_[a-z0-9_]+`)

// metricNames are the hookgate metrics that expressions read, histogram series folded
// into their metric.
func metricNames(exprs []string) []string {
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(m, suffix); ok && strings.HasSuffix(base, "_seconds") {
					m = base
				}
			}
			seen[m] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// describingRegistry remembers the name of every metric registered with it, also those
// that have no sample yet (a vector before its first label set).
type describingRegistry struct {
	*prometheus.Registry
	mu    sync.Mutex
	names map[string]bool
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *describingRegistry) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	r.mu.Lock()
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	r.mu.Unlock()
	return r.Registry.Register(c)
}

func (r *describingRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// receiverMetrics runs a real receiver (routing from a file, WebhookEvents on the test
// cluster) and returns the metrics it registers, checked against its /metrics.
func receiverMetrics(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	table, _ := json.Marshal(&routing.Table{})
	file := filepath.Join(dir, "routing.json")
	if err := os.WriteFile(file, table, 0o600); err != nil {
		t.Fatal(err)
	}
	reg := &describingRegistry{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	opts := hookgatereceiver.DefaultOptions()
	opts.RoutingFile, opts.DataDir, opts.Namespace = file, filepath.Join(dir, "data"), "default"
	opts.Listen, opts.ProbeListen = "127.0.0.1:0", "127.0.0.1:0"
	opts.KubeConfig, opts.Registry = cluster.Config, reg
	probe := make(chan string, 1)
	opts.Ready = func(_, p string) { probe <- p }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hookgatereceiver.Run(ctx, opts) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the receiver stopped with %v", err)
		}
	}()
	var addr string
	select {
	case addr = <-probe:
	case err := <-done:
		done <- nil // for the deferred wait
		t.Fatalf("the receiver did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver did not start within 30s")
	}
	resp, err := http.Get("http://" + addr + "/metrics") //nolint:noctx // a test scrape
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.names
}

// installPrometheusRuleCRD generates the PrometheusRule CRD from the prometheus-operator
// Go types the chart is checked against (controller-gen, as for hookgate's own CRDs) and
// installs it in the test cluster.
func installPrometheusRuleCRD(t *testing.T) {
	t.Helper()
	gen := os.Getenv("CONTROLLER_GEN")
	if gen == "" {
		t.Fatal("CONTROLLER_GEN is not set: run the tests with 'make test', which installs the pinned controller-gen")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gen, "crd:crdVersions=v1,allowDangerousTypes=true",
		"paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1", "output:crd:artifacts:config="+dir)
	cmd.Dir = testcluster.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generating the prometheus-operator CRDs: %v\n%s", err, out)
	}
	crd := filepath.Join(dir, "monitoring.coreos.com_prometheusrules.yaml")
	if _, err := os.Stat(crd); err != nil {
		t.Fatalf("controller-gen made no PrometheusRule CRD: %v", err)
	}
	if _, err := envtest.InstallCRDs(cluster.Config, envtest.CRDInstallOptions{Paths: []string{crd}}); err != nil {
		t.Fatal(err)
	}
}
