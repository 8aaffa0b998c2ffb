// Package packaging checks what users install: the Helm chart (lint, render, server-side
// dry run) and config/default and config/postgres (kustomize, server-side dry run), against
// a real API server.
package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/hookgate/hookgate/internal/testcluster"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	var err error
	if cluster, err = testcluster.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: envtest:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cluster.Stop()
	os.Exit(code)
}

func helmBin(t *testing.T) string {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Fatal("HELM is not set: run the tests with 'make test', which installs the pinned helm")
	}
	return helm
}

func run(t *testing.T, stdin []byte, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func chartDir() string { return filepath.Join(testcluster.RepoRoot(), "charts", "hookgate") }

// documents splits a multi-document YAML stream.
func documents(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(stream, "\n---") {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
	return out
}

// dryRun applies the objects with kubectl apply --dry-run=server: the API server
// validates them fully, admission included, and stores nothing.
func dryRun(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		raw, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(raw)
	}
	out := run(t, buf.Bytes(), cluster.Kubectl, "--kubeconfig", cluster.Kubeconfig, "apply", "--dry-run=server", "-f", "-")
	t.Logf("kubectl apply --dry-run=server: %d objects\n%s", len(objs), out)
}

// receiver is what checkWorkloads found of the receiver workload.
type receiver struct {
	// Postgres: a Deployment on a PostgreSQL store; else a StatefulSet on the embedded one.
	Postgres bool
	Name     string
	Replicas *int32
	// Database is where HOOKGATE_DATABASE_URL comes from (PostgreSQL only).
	Database *corev1.SecretKeySelector
	Pod      corev1.PodSpec
}

const databaseURLEnv = "HOOKGATE_DATABASE_URL"

func isReceiver(labels map[string]string) bool {
	return labels["app.kubernetes.io/component"] == "receiver"
}

// checkWorkloads asserts restricted Pod Security on every workload, and one receiver in
// either mode: embedded, exactly one receiver StatefulSet with 1 replica and a volume and
// no receiver PodDisruptionBudget; postgres, exactly one receiver Deployment and no
// receiver StatefulSet, a receiver PodDisruptionBudget, HOOKGATE_DATABASE_URL from a Secret.
// checkStartupProbe: the receiver on the embedded store opens its store before its
// probes answer, and converting a large events.db to Pebble takes minutes; a startup
// probe holds the liveness probe off for at least half an hour, so that the kubelet
// does not restart a conversion again and again.
func checkStartupProbe(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name != "receiver" {
			continue
		}
		p := c.StartupProbe
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("the receiver container has no startup probe on /healthz: %+v", p)
			return
		}
		if allowed := time.Duration(p.PeriodSeconds*p.FailureThreshold) * time.Second; allowed < 30*time.Minute {
			t.Errorf("the receiver's startup probe allows %s to start, want at least 30m", allowed)
		}
		return
	}
	t.Errorf("no receiver container")
}

func checkWorkloads(t *testing.T, objs []*unstructured.Unstructured) receiver {
	t.Helper()
	var statefulSets, deployments, pdbs int
	var rcv receiver
	for _, o := range objs {
		var spec corev1.PodSpec
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			mustConvert(t, o, &d)
			spec = d.Spec.Template.Spec
			if isReceiver(d.Spec.Template.Labels) {
				deployments++
				rcv = receiver{Postgres: true, Name: d.Name, Replicas: d.Spec.Replicas, Pod: spec}
			}
		case "StatefulSet":
			var s appsv1.StatefulSet
			mustConvert(t, o, &s)
			spec = s.Spec.Template.Spec
			if isReceiver(s.Spec.Template.Labels) {
				statefulSets++
				rcv = receiver{Name: s.Name, Replicas: s.Spec.Replicas, Pod: spec}
				if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 || len(s.Spec.VolumeClaimTemplates) != 1 {
					t.Errorf("the receiver StatefulSet must have exactly 1 replica and a volume")
				}
				checkStartupProbe(t, spec)
			}
		case "PodDisruptionBudget":
			var pdb policyv1.PodDisruptionBudget
			mustConvert(t, o, &pdb)
			if pdb.Spec.Selector != nil && isReceiver(pdb.Spec.Selector.MatchLabels) {
				pdbs++
			}
			continue
		default:
			continue
		}
		if ps := spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s %s: pod security context is not restricted", o.GetKind(), o.GetName())
		}
		for _, c := range spec.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
				t.Errorf("%s %s container %s: security context is not restricted", o.GetKind(), o.GetName(), c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s %s container %s: no resources", o.GetKind(), o.GetName(), c.Name)
			}
		}
	}
	switch {
	case statefulSets+deployments != 1:
		t.Errorf("%d receiver StatefulSets and %d receiver Deployments, want exactly one receiver workload", statefulSets, deployments)
	case statefulSets == 1 && pdbs != 0:
		t.Errorf("the receiver on the embedded store must have no PodDisruptionBudget, found %d", pdbs)
	case deployments == 1 && pdbs != 1:
		t.Errorf("the receiver on PostgreSQL must have one PodDisruptionBudget, found %d", pdbs)
	}
	var dataVolume *corev1.Volume
	for i, v := range rcv.Pod.Volumes {
		if v.Name == "data" {
			dataVolume = &rcv.Pod.Volumes[i]
		}
	}
	for _, c := range rcv.Pod.Containers {
		for _, e := range c.Env {
			if e.Name != databaseURLEnv {
				continue
			}
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name == "" || e.ValueFrom.SecretKeyRef.Key == "" {
				t.Errorf("receiver container %s: %s must come from a secretKeyRef, got %+v", c.Name, databaseURLEnv, e)
				continue
			}
			rcv.Database = e.ValueFrom.SecretKeyRef
		}
	}
	switch {
	case rcv.Postgres && rcv.Database == nil:
		t.Errorf("the receiver Deployment has no %s from a secretKeyRef", databaseURLEnv)
	case rcv.Postgres && (dataVolume == nil || dataVolume.EmptyDir == nil):
		// The root filesystem is read-only: the routing table's disk copy needs a volume.
		t.Errorf("the receiver Deployment must mount an emptyDir named data, got %+v", dataVolume)
	case !rcv.Postgres && rcv.Database != nil:
		t.Errorf("the receiver StatefulSet (embedded store) must not set %s", databaseURLEnv)
	}
	return rcv
}

// checkReceiverRole asserts the Lease rules of the receiver's Role: the per-replica
// routing Lease rule (the one that may delete) names the StatefulSet's pod, or, on
// PostgreSQL, where a Deployment's pod names are random, no name; the status Lease rule
// keeps its name (statusLease); no other Lease rule but create (which RBAC cannot limit by
// name) goes unnamed.
func checkReceiverRole(t *testing.T, objs []*unstructured.Unstructured, rcv receiver, statusLease string) {
	t.Helper()
	var role *rbacv1.Role
	for _, o := range objs {
		if o.GetKind() == "Role" && o.GetName() == rcv.Name {
			role = &rbacv1.Role{}
			mustConvert(t, o, role)
		}
	}
	if role == nil {
		t.Fatalf("no Role %s", rcv.Name)
	}
	var perReplica, status int
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, "leases") {
			continue
		}
		switch {
		case slices.Equal(r.Verbs, []string{"create"}):
			if len(r.ResourceNames) != 0 {
				t.Errorf("the Lease create rule names %v: RBAC cannot limit create by name", r.ResourceNames)
			}
		case slices.Contains(r.Verbs, "delete"):
			perReplica++
			want := []string{rcv.Name + "-0"}
			if rcv.Postgres {
				want = nil
			}
			if !slices.Equal(r.ResourceNames, want) {
				t.Errorf("per-replica Lease rule names %v, want %v (postgres: %t)", r.ResourceNames, want, rcv.Postgres)
			}
		case len(r.ResourceNames) == 0:
			t.Errorf("the Lease rule %+v names no Lease", r)
		case slices.Equal(r.ResourceNames, []string{statusLease}):
			status++
			if !slices.Equal(r.Verbs, []string{"get", "update"}) {
				t.Errorf("status Lease rule verbs %v, want [get update]", r.Verbs)
			}
		default:
			t.Errorf("unexpected Lease rule %+v", r)
		}
	}
	if perReplica != 1 {
		t.Errorf("%d per-replica Lease rules, want 1", perReplica)
	}
	if status != 1 {
		t.Errorf("%d rules for the status Lease %q, want 1", status, statusLease)
	}
}

// receiverArgs is the receiver container's args.
func receiverArgs(rcv receiver) []string {
	for _, c := range rcv.Pod.Containers {
		if c.Name == "receiver" {
			return c.Args
		}
	}
	return nil
}

func mustConvert(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	raw, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

func TestHelmChart(t *testing.T) {
	helm := helmBin(t)
	if err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hookgate"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	everything := []string{"--set", "ingress.enabled=true", "--set", "ingress.className=nginx", "--set", "ingress.host=hooks.example.com",
		"--set", "ingress.tls.secretName=hooks-tls", "--set", "networkPolicy.enabled=true", "--set", "serviceMonitor.enabled=true",
		"--set", "operator.replicas=2", "--set", "receiver.trustedProxies={10.0.0.0/8}",
		"--set", "receiver.destinationAllowCIDRs={10.20.0.0/16,fd00:20::/64}"}
	postgres := []string{"--set", "store.type=postgres", "--set", "store.postgres.existingSecret=hookgate-db"}
	autoscaled := append(slices.Clone(postgres), "--set", "receiver.autoscaling.enabled=true", "--set", "store.postgres.passwordKey=password")
	t.Log(run(t, nil, helm, "lint", "--strict", chartDir()))
	t.Log(run(t, nil, helm, append([]string{"lint", "--strict", chartDir()}, everything...)...))
	t.Log(run(t, nil, helm, append([]string{"lint", "--strict", chartDir()}, autoscaled...)...))

	for _, tc := range []struct {
		name   string
		values []string
		// cidrs: receiver.destinationAllowCIDRs is set.
		cidrs bool
		// engine: the --embedded-engine flag rendered ("": none, on PostgreSQL).
		engine   string
		postgres bool
		// replicas of the receiver Deployment (postgres); 0: none, the HPA scales it.
		replicas int32
		kinds    []string
	}{
		{name: "default values", engine: "pebble"},
		{name: "ingress, NetworkPolicy, ServiceMonitor, 2 operators", values: everything, cidrs: true, engine: "pebble",
			kinds: []string{"Ingress", "NetworkPolicy", "ServiceMonitor", "PodDisruptionBudget"}},
		{name: "embedded store on bbolt", values: []string{"--set", "store.embedded.engine=bbolt"}, engine: "bbolt"},
		{name: "PostgreSQL store, 3 receivers", values: append(slices.Clone(postgres), "--set", "receiver.replicas=3"), postgres: true, replicas: 3,
			kinds: []string{"PodDisruptionBudget"}},
		{name: "PostgreSQL store, autoscaling, password file", values: autoscaled, postgres: true,
			kinds: []string{"PodDisruptionBudget", "HorizontalPodAutoscaler"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, nil, helm, append([]string{"template", "hookgate", chartDir(), "--namespace", "hookgate", "--include-crds"}, tc.values...)...)
			objs := documents(t, out)
			var applicable []*unstructured.Unstructured
			var hpas []autoscalingv2.HorizontalPodAutoscaler
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				switch o.GetKind() {
				case "ServiceMonitor":
					// The API server has no ServiceMonitor CRD: check it against the
					// prometheus-operator type, unknown fields rejected.
					var sm monitoringv1.ServiceMonitor
					mustConvert(t, o, &sm)
					if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
						t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
					}
					continue
				case "Ingress":
					// Partners' paths, and the namespaces' JWT issuers where the
					// deliveries' verifiers fetch the keys.
					var ing networkingv1.Ingress
					mustConvert(t, o, &ing)
					paths := map[string]networkingv1.PathType{}
					for _, rule := range ing.Spec.Rules {
						for _, p := range rule.HTTP.Paths {
							paths[p.Path] = *p.PathType
						}
					}
					for path, typ := range map[string]networkingv1.PathType{"/api/webhooks": networkingv1.PathTypePrefix, "/portal": networkingv1.PathTypePrefix,
						"/issuers": networkingv1.PathTypePrefix, "/api/health": networkingv1.PathTypeExact} {
						if paths[path] != typ {
							t.Errorf("Ingress path %s: %q, want %s", path, paths[path], typ)
						}
					}
				case "HorizontalPodAutoscaler":
					var hpa autoscalingv2.HorizontalPodAutoscaler
					mustConvert(t, o, &hpa)
					hpas = append(hpas, hpa)
				}
				applicable = append(applicable, o)
			}
			t.Logf("rendered: %v", kinds)
			rcv := checkWorkloads(t, objs)
			checkReceiverRole(t, objs, rcv, "hookgate-receiver-status")
			dryRun(t, applicable)
			// The egress allow list reaches the receiver's flags only when set.
			if rendered := strings.Contains(out, "--destination-allow-cidrs"); tc.cidrs != rendered ||
				tc.cidrs && !strings.Contains(out, "- --destination-allow-cidrs=10.20.0.0/16,fd00:20::/64\n") {
				t.Errorf("receiver.destinationAllowCIDRs set: %t, flag rendered: %t", tc.cidrs, rendered)
			}
			if rendered := strings.Contains(out, "--embedded-engine"); rendered != (tc.engine != "") ||
				tc.engine != "" && !strings.Contains(out, "- --embedded-engine="+tc.engine+"\n") {
				t.Errorf("store.embedded.engine %q, flag rendered: %t", tc.engine, rendered)
			}
			for _, kind := range tc.kinds {
				if kinds[kind] == 0 {
					t.Errorf("no %s rendered", kind)
				}
			}
			if rcv.Postgres != tc.postgres {
				t.Fatalf("receiver on PostgreSQL: %t, want %t", rcv.Postgres, tc.postgres)
			}
			if !tc.postgres {
				return
			}
			if rcv.Database.Name != "hookgate-db" || rcv.Database.Key != "url" {
				t.Errorf("%s from Secret %s key %s, want hookgate-db key url", databaseURLEnv, rcv.Database.Name, rcv.Database.Key)
			}
			if len(rcv.Pod.TopologySpreadConstraints) != 2 {
				t.Errorf("receiver topology spread %+v, want zone and hostname", rcv.Pod.TopologySpreadConstraints)
			}
			switch {
			case tc.replicas == 0 && rcv.Replicas != nil:
				t.Errorf("the autoscaled receiver Deployment sets replicas %d", *rcv.Replicas)
			case tc.replicas != 0 && (rcv.Replicas == nil || *rcv.Replicas != tc.replicas):
				t.Errorf("receiver Deployment replicas %v, want %d", rcv.Replicas, tc.replicas)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.replicas == 0]; len(hpas) != want {
				t.Fatalf("%d HorizontalPodAutoscalers, want %d", len(hpas), want)
			}
			for _, hpa := range hpas {
				if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != rcv.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 6 {
					t.Errorf("HorizontalPodAutoscaler %+v", hpa.Spec)
				}
			}
			if pw := slices.Contains(receiverArgs(rcv), "--database-password-file=/etc/hookgate/database/password"); pw != slices.Contains(tc.values, "store.postgres.passwordKey=password") {
				t.Errorf("--database-password-file rendered: %t, args %v", pw, receiverArgs(rcv))
			}
		})
	}
	t.Run("a release not named hookgate renames the status Lease", func(t *testing.T) {
		out := run(t, nil, helm, append([]string{"template", "edge", chartDir(), "--namespace", "hookgate"}, postgres...)...)
		objs := documents(t, out)
		rcv := checkWorkloads(t, objs)
		checkReceiverRole(t, objs, rcv, "edge-hookgate-receiver-status")
		if !slices.Contains(receiverArgs(rcv), "--status-lease=edge-hookgate-receiver-status") {
			t.Errorf("receiver args %v, want --status-lease=edge-hookgate-receiver-status", receiverArgs(rcv))
		}
	})
	for _, tc := range []struct {
		name   string
		values []string
		want   string // in helm's output
	}{
		{"a typo", []string{"--set", "ingress.enabeld=true"}, "enabeld"},
		{"2 receivers on the embedded store", []string{"--set", "receiver.replicas=2"}, "replicas"},
		{"autoscaling on the embedded store", []string{"--set", "receiver.autoscaling.enabled=true"}, "autoscaling"},
		{"PostgreSQL without its Secret", []string{"--set", "store.type=postgres"}, "existingSecret"},
	} {
		t.Run("values schema refuses "+tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, helm, append([]string{"template", "x", chartDir()}, tc.values...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "schema") || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%v was not refused by the schema with a message naming %q: %s", tc.values, tc.want, out)
			}
			t.Logf("%v: %s", tc.values, out)
		})
	}
}

// kustomize renders a config/ directory, checks it, and dry-runs it in hookgate-system.
func kustomize(t *testing.T, dir string) receiver {
	t.Helper()
	out := run(t, nil, cluster.Kubectl, "kustomize", filepath.Join(testcluster.RepoRoot(), "config", dir))
	objs := documents(t, out)
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != "hookgate-system" {
			t.Errorf("%s %s in namespace %s, want hookgate-system", o.GetKind(), o.GetName(), ns)
		}
	}
	rcv := checkWorkloads(t, objs)
	checkReceiverRole(t, objs, rcv, "hookgate-receiver-status")
	// A dry run creates nothing, not even the Namespace that the objects after it need.
	err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hookgate-system"}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dryRun(t, objs)
	return rcv
}

func TestKustomizeDefault(t *testing.T) {
	if rcv := kustomize(t, "default"); rcv.Postgres {
		t.Errorf("config/default runs the receiver on PostgreSQL")
	}
}

func TestKustomizePostgres(t *testing.T) {
	rcv := kustomize(t, "postgres")
	if !rcv.Postgres {
		t.Fatalf("config/postgres runs the receiver on the embedded store")
	}
	if rcv.Replicas == nil || *rcv.Replicas != 3 {
		t.Errorf("receiver Deployment replicas %v, want 3", rcv.Replicas)
	}
	if rcv.Database.Name != "hookgate-database" || rcv.Database.Key != "url" {
		t.Errorf("%s from Secret %s key %s, want hookgate-database key url", databaseURLEnv, rcv.Database.Name, rcv.Database.Key)
	}
	if len(rcv.Pod.TopologySpreadConstraints) != 2 {
		t.Errorf("receiver topology spread %+v, want zone and hostname", rcv.Pod.TopologySpreadConstraints)
	}
}
