// Package packaging checks what users install: the Helm chart (lint, render, server-side
// dry run) and config/default (kustomize, server-side dry run), against a real API server.
package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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

// checkWorkloads asserts restricted Pod Security on every workload, and one receiver.
func checkWorkloads(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	receivers := 0
	for _, o := range objs {
		var spec corev1.PodSpec
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			mustConvert(t, o, &d)
			spec = d.Spec.Template.Spec
		case "StatefulSet":
			var s appsv1.StatefulSet
			mustConvert(t, o, &s)
			spec = s.Spec.Template.Spec
			receivers++
			if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 || len(s.Spec.VolumeClaimTemplates) != 1 {
				t.Errorf("the receiver StatefulSet must have exactly 1 replica and a volume")
			}
		case "PodDisruptionBudget":
			if strings.Contains(o.GetName(), "receiver") {
				t.Errorf("the receiver must have no PodDisruptionBudget")
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
	if receivers != 1 {
		t.Errorf("%d receiver StatefulSets, want 1", receivers)
	}
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
	if err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hookgate"}}); err != nil {
		t.Fatal(err)
	}
	everything := []string{"--set", "ingress.enabled=true", "--set", "ingress.className=nginx", "--set", "ingress.host=hooks.example.com",
		"--set", "ingress.tls.secretName=hooks-tls", "--set", "networkPolicy.enabled=true", "--set", "serviceMonitor.enabled=true",
		"--set", "operator.replicas=2", "--set", "receiver.trustedProxies={10.0.0.0/8}",
		"--set", "receiver.destinationAllowCIDRs={10.20.0.0/16,fd00:20::/64}"}
	t.Log(run(t, nil, helm, "lint", "--strict", chartDir()))
	t.Log(run(t, nil, helm, append([]string{"lint", "--strict", chartDir()}, everything...)...))

	for name, values := range map[string][]string{"default values": nil, "ingress, NetworkPolicy, ServiceMonitor, 2 operators": everything} {
		t.Run(name, func(t *testing.T) {
			out := run(t, nil, helm, append([]string{"template", "hookgate", chartDir(), "--namespace", "hookgate", "--include-crds"}, values...)...)
			objs := documents(t, out)
			var applicable []*unstructured.Unstructured
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				if o.GetKind() == "ServiceMonitor" {
					// The API server has no ServiceMonitor CRD: check it against the
					// prometheus-operator type, unknown fields rejected.
					var sm monitoringv1.ServiceMonitor
					mustConvert(t, o, &sm)
					if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
						t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
					}
					continue
				}
				applicable = append(applicable, o)
			}
			t.Logf("rendered: %v", kinds)
			checkWorkloads(t, objs)
			dryRun(t, applicable)
			// The egress allow list reaches the receiver's flags only when set.
			if set, rendered := values != nil, strings.Contains(out, "--destination-allow-cidrs"); set != rendered ||
				set && !strings.Contains(out, "- --destination-allow-cidrs=10.20.0.0/16,fd00:20::/64\n") {
				t.Errorf("receiver.destinationAllowCIDRs set: %t, flag rendered: %t", set, rendered)
			}
			if values != nil {
				for _, kind := range []string{"Ingress", "NetworkPolicy", "ServiceMonitor", "PodDisruptionBudget"} {
					if kinds[kind] == 0 {
						t.Errorf("no %s rendered", kind)
					}
				}
			}
		})
	}
	t.Run("values schema refuses a typo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, helm, "template", "x", chartDir(), "--set", "ingress.enabeld=true").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "enabeld") {
			t.Fatalf("a misspelt value was accepted: %s", out)
		}
	})
}

func TestKustomizeDefault(t *testing.T) {
	out := run(t, nil, cluster.Kubectl, "kustomize", filepath.Join(testcluster.RepoRoot(), "config", "default"))
	objs := documents(t, out)
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != "hookgate-system" {
			t.Errorf("%s %s in namespace %s, want hookgate-system", o.GetKind(), o.GetName(), ns)
		}
	}
	checkWorkloads(t, objs)
	// A dry run creates nothing, not even the Namespace that the objects after it need.
	if err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hookgate-system"}}); err != nil {
		t.Fatal(err)
	}
	dryRun(t, objs)
}
