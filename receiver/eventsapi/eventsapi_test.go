package eventsapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	"github.com/hookgate/hookgate/internal/testcluster"
	"github.com/hookgate/hookgate/receiver/eventsapi"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
	"github.com/hookgate/hookgate/receiver/store"
)

var (
	cluster *testcluster.Cluster
	events  store.Store
	// ids are the seeded events' uuids per namespace and partner, oldest first.
	ids = map[string][]string{}
)

const (
	tenantA, tenantB = "tenant-a", "tenant-b"
	perPartner       = 120
)

// TestMain starts a kube-apiserver configured for aggregation, the events API beside it
// on a real store, and registers it with an APIService, as a cluster runs it.
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard())
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if cluster, err = testcluster.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cluster.Stop() }()
	if err := cluster.StartControllerManager(); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "hookgate-eventsapi-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if events, err = store.OpenBolt(filepath.Join(dir, "data"), nil); err != nil {
		return 0, err
	}
	defer events.Close()
	if err := seed(); err != nil {
		return 0, err
	}
	for _, ns := range []string{tenantA, tenantB} {
		if err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return 0, err
		}
	}
	caBundle, err := testcluster.ServingCert(filepath.Join(dir, "certs"), "hookgate-system", "hookgate-receiver")
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() {
		served <- eventsapi.Run(ctx, eventsapi.Options{Listener: ln, CertDir: filepath.Join(dir, "certs"), KubeConfig: cluster.Config,
			WorkDir: filepath.Join(dir, "work"), Storage: webhookevents.Options{Store: events, Log: logr.Discard()}, Log: logr.Discard()})
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	registered := make(chan error, 1)
	go func() {
		registered <- cluster.RegisterAPIService(ctx, eventsv1alpha1.GroupVersion.Group, eventsv1alpha1.GroupVersion.Version, "hookgate-system", "hookgate-receiver", port, caBundle)
	}()
	select {
	case err := <-served:
		return 0, fmt.Errorf("the events API stopped: %w", err)
	case err := <-registered:
		if err != nil {
			return 0, err
		}
	}
	return m.Run(), nil
}

// seed stores events of two partners in tenant A and one in tenant B; every fifth of
// A's acme events Failed (delivered to one destination), the rest Stored.
func seed() error {
	ctx := context.Background()
	for _, p := range []struct{ namespace, partner string }{{tenantA, "acme"}, {tenantA, "globex"}, {tenantB, "acme"}} {
		for i := range perPartner {
			ev := store.Event{UUID: uuid.Must(uuid.NewV7()).String(), EventID: fmt.Sprintf("%s-%d", p.partner, i), Type: "order.created",
				PartnerNamespace: p.namespace, Partner: p.partner, EndpointNamespace: p.namespace, Endpoint: "orders",
				ReceivedAt: time.Now(), Phase: store.PhaseStored, SizeBytes: 2}
			if p.namespace == tenantA && p.partner == "acme" && i%5 == 0 {
				ev.Phase, ev.Attempts, ev.LastResponseCode = store.PhaseFailed, 3, 503
				ev.Deliveries = []store.DeliveryState{{Destination: "primary", Phase: store.PhaseFailed, Attempts: 3, LastResponseCode: 503}}
			}
			if _, err := events.Ingest(ctx, store.Ingest{Event: ev, Payload: []byte("{}")}); err != nil {
				return err
			}
			key := p.namespace + "/" + p.partner
			ids[key] = append(ids[key], ev.UUID)
		}
	}
	return nil
}

func dynamicClient(t *testing.T) dynamic.NamespaceableResourceInterface {
	t.Helper()
	c, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c.Resource(eventsv1alpha1.GroupVersion.WithResource(eventsv1alpha1.Resource))
}

func TestListsAreTheStoresNewestFirstSelectedAndPaged(t *testing.T) {
	ctx := context.Background()
	res := dynamicClient(t)
	for _, tc := range []struct {
		name      string
		namespace string
		opts      metav1.ListOptions
		want      int
		partner   string
	}{
		{"a namespace", tenantA, metav1.ListOptions{}, 2 * perPartner, ""},
		{"every namespace", "", metav1.ListOptions{}, 3 * perPartner, ""},
		{"a partner by label", tenantA, metav1.ListOptions{LabelSelector: "hookgate.io/partner=acme"}, perPartner, "acme"},
		{"the same partner name in another namespace", tenantB, metav1.ListOptions{LabelSelector: "hookgate.io/partner=acme"}, perPartner, "acme"},
		{"a phase by label", tenantA, metav1.ListOptions{LabelSelector: "hookgate.io/phase=Failed"}, perPartner / 5, "acme"},
		{"a phase by field", tenantA, metav1.ListOptions{FieldSelector: "status.phase=Failed"}, perPartner / 5, "acme"},
		{"an event id", tenantA, metav1.ListOptions{FieldSelector: "spec.eventId=globex-7"}, 1, "globex"},
		{"an endpoint and a partner", tenantA, metav1.ListOptions{LabelSelector: "hookgate.io/endpoint=orders,hookgate.io/partner=globex"}, perPartner, "globex"},
		{"a name", tenantA, metav1.ListOptions{FieldSelector: "metadata.name=" + ids[tenantA+"/globex"][3]}, 1, "globex"},
		{"another namespace's name", tenantB, metav1.ListOptions{FieldSelector: "metadata.name=" + ids[tenantA+"/globex"][3]}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := res.Namespace(tc.namespace).List(ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != tc.want {
				t.Fatalf("%d events, want %d", len(list.Items), tc.want)
			}
			for i, item := range list.Items {
				if tc.partner != "" && item.GetLabels()["hookgate.io/partner"] != tc.partner {
					t.Errorf("item %d is %s's", i, item.GetLabels()["hookgate.io/partner"])
				}
				if tc.namespace != "" && item.GetNamespace() != tc.namespace {
					t.Errorf("item %d is in namespace %s", i, item.GetNamespace())
				}
				if i > 0 && item.GetName() > list.Items[i-1].GetName() {
					t.Errorf("item %d (%s) is newer than the one before it", i, item.GetName())
				}
			}
		})
	}

	t.Run("pages are disjoint and together the whole list", func(t *testing.T) {
		seen := map[string]bool{}
		opts := metav1.ListOptions{Limit: 100}
		pages := 0
		for {
			list, err := res.Namespace(tenantA).List(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, item := range list.Items {
				if seen[item.GetName()] {
					t.Fatalf("page %d repeats %s", pages, item.GetName())
				}
				seen[item.GetName()] = true
			}
			if opts.Continue = list.GetContinue(); opts.Continue == "" {
				break
			}
		}
		if len(seen) != 2*perPartner || pages != 3 {
			t.Fatalf("%d events in %d pages, want %d in 3", len(seen), pages, 2*perPartner)
		}
	})

	for _, tc := range []struct{ name, label, field, cont, want string }{
		{"an unserved label", "app=x", "", "", "the labels served are"},
		{"a set-based label selector", "hookgate.io/phase in (Failed,Stored)", "", "", "only key=value"},
		{"an unserved field", "", "spec.type=order.created", "", "not supported"},
		{"a foreign continue token", "", "", "abc", "continue token"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := res.Namespace(tenantA).List(ctx, metav1.ListOptions{LabelSelector: tc.label, FieldSelector: tc.field, Continue: tc.cont})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestGetIsTheTenantsOwn(t *testing.T) {
	ctx := context.Background()
	res := dynamicClient(t)
	id := ids[tenantA+"/acme"][0]
	got, err := res.Namespace(tenantA).Get(ctx, id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ev eventsv1alpha1.WebhookEvent
	raw, _ := json.Marshal(got.Object)
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Spec.UUID != id || ev.Spec.EventID != "acme-0" || ev.Status.Phase != "Failed" || ev.Status.Attempts != 3 || ev.Status.Delivered != "0/1" || string(ev.UID) != id {
		t.Fatalf("got %+v", ev)
	}
	if _, err := res.Namespace(tenantB).Get(ctx, id, metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("tenant A's event read in tenant B: %v", err)
	}
}

// resourceName is what kubectl users type.
const resourceName = "webhookevents"

// TestKubectl runs the real kubectl: the table with its columns, explain from the
// published OpenAPI, and a redelivery by annotation.
func TestKubectl(t *testing.T) {
	out, err := cluster.RunKubectl(t, "get", resourceName, "-n", tenantA, "-l", "hookgate.io/partner=acme", "--chunk-size=50")
	if err != nil {
		t.Fatalf("kubectl get: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME PARTNER ENDPOINT TYPE PHASE DELIVERED ATTEMPTS CODE AGE" {
		t.Fatalf("columns %v", got)
	}
	if len(lines) != perPartner+1 || !strings.HasPrefix(lines[1], ids[tenantA+"/acme"][perPartner-1]) {
		t.Fatalf("%d lines, first %q", len(lines), lines[1])
	}
	if out, err = cluster.RunKubectl(t, "get", "whev", "-n", tenantA, "-o", "jsonpath={.items[0].spec.partner}", "--field-selector", "spec.eventId=globex-1"); err != nil || out != "globex" {
		t.Fatalf("kubectl get whev -o jsonpath: %v: %q", err, out)
	}
	// The kube-apiserver fetches an aggregated server's OpenAPI a moment after the
	// APIService is Available.
	testcluster.Eventually(t, 30*time.Second, "kubectl explain", func() error {
		out, err := cluster.RunKubectl(t, "explain", "webhookevents.status.deliveries", "--api-version", eventsv1alpha1.GroupVersion.String())
		if err != nil || !strings.Contains(out, "each destination's delivery") {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})

	failed := ids[tenantA+"/acme"][5]
	if out, err := cluster.RunKubectl(t, "annotate", resourceName, failed, "-n", tenantA, "hookgate.io/redeliver=1"); err != nil {
		t.Fatalf("kubectl annotate: %v: %s", err, out)
	}
	ev, err := events.Get(context.Background(), failed)
	if err != nil || ev.Phase != store.PhaseQueued {
		t.Fatalf("after the redeliver annotation the event is %v (%v), want Queued", ev.Phase, err)
	}
	out, err = cluster.RunKubectl(t, "annotate", resourceName, failed, "-n", tenantA, "hookgate.io/redeliver=2", "hookgate.io/redeliver-destination=nowhere")
	if err == nil || !strings.Contains(out, "no delivery to this destination") {
		t.Fatalf("a redelivery to an unknown destination: %v: %s", err, out)
	}
	out, err = cluster.RunKubectl(t, "label", resourceName, failed, "-n", tenantA, "hookgate.io/phase=Delivered", "--overwrite")
	if err == nil || !strings.Contains(out, "only the redelivery annotations") {
		t.Fatalf("a label change: %v: %s", err, out)
	}
}

// TestRoleInOneNamespaceGrantsNothingInAnother: a user bound to a Role on webhookevents
// in tenant A reads A's and is refused B's by the kube-apiserver's own authorization.
func TestRoleInOneNamespaceGrantsNothingInAnother(t *testing.T) {
	ctx := context.Background()
	user, err := cluster.Env.AddUser(envtest.User{Name: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tenantA, Name: "webhookevent-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{eventsv1alpha1.GroupVersion.Group}, Resources: []string{eventsv1alpha1.Resource}, Verbs: []string{"get", "list", "watch"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenantA, Name: "alice"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice", APIGroup: "rbac.authorization.k8s.io"}}}
	if err := cluster.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	c, err := dynamic.NewForConfig(user.Config())
	if err != nil {
		t.Fatal(err)
	}
	res := c.Resource(eventsv1alpha1.GroupVersion.WithResource(eventsv1alpha1.Resource))
	testcluster.Eventually(t, 10*time.Second, "alice reads tenant A's events", func() error {
		_, err := res.Namespace(tenantA).List(ctx, metav1.ListOptions{Limit: 1})
		return err
	})
	_, err = res.Namespace(tenantB).List(ctx, metav1.ListOptions{Limit: 1})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("alice listed tenant B's events: %v", err)
	}
	if _, err = res.Namespace(tenantB).Get(ctx, ids[tenantB+"/acme"][0], metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("alice read tenant B's event: %v", err)
	}
}

// TestWatch: `kubectl get webhookevents -w` prints an event stored after it started,
// within a second, and a watch of one namespace is told nothing of another's.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cluster.Kubectl, "--kubeconfig", cluster.Kubeconfig, "get", resourceName, "-n", tenantA, "-w",
		"-l", "hookgate.io/partner=watched", "--output-watch-events")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()
	time.Sleep(time.Second) // kubectl lists (nothing) and starts its watch

	ingest := func(namespace string) string {
		t.Helper()
		ev := store.Event{UUID: uuid.Must(uuid.NewV7()).String(), EventID: "w-" + namespace, Type: "order.created",
			PartnerNamespace: namespace, Partner: "watched", EndpointNamespace: namespace, Endpoint: "orders", ReceivedAt: time.Now(), Phase: store.PhaseStored}
		if _, err := events.Ingest(ctx, store.Ingest{Event: ev, Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		return ev.UUID
	}
	other := ingest(tenantB)
	stored := time.Now()
	mine := ingest(tenantA)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("kubectl get -w ended")
			}
			if strings.Contains(line, other) {
				t.Fatalf("the watch of %s printed %s's event: %s", tenantA, tenantB, line)
			}
			if strings.Contains(line, mine) {
				if !strings.HasPrefix(line, "ADDED") {
					t.Errorf("the new event's line: %q, want ADDED", line)
				}
				t.Logf("kubectl get -w printed the event %s after it was stored", time.Since(stored).Round(time.Millisecond))
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("kubectl get -w printed nothing of the new event within 10s")
		}
	}
}

// TestNamespaceWithEventsIsDeleted: while the events API serves, a namespace holding
// events is deleted by kube-controller-manager's namespace controller as any other, within
// seconds (an aggregated API that does not answer would hold it Terminating). Its events
// stay in the store until the retention prunes them.
func TestNamespaceWithEventsIsDeleted(t *testing.T) {
	ctx := context.Background()
	const doomed = "doomed"
	if err := cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: doomed}}); err != nil {
		t.Fatal(err)
	}
	ev := store.Event{UUID: uuid.Must(uuid.NewV7()).String(), EventID: "d1", PartnerNamespace: doomed, Partner: "acme",
		EndpointNamespace: doomed, Endpoint: "orders", ReceivedAt: time.Now(), Phase: store.PhaseStored}
	if _, err := events.Ingest(ctx, store.Ingest{Event: ev, Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if out, err := cluster.RunKubectl(t, "get", resourceName, "-n", doomed, "-o", "name"); err != nil || !strings.Contains(out, ev.UUID) {
		t.Fatalf("the namespace's event is not listed: %v: %s", err, out)
	}
	start := time.Now()
	if out, err := cluster.RunKubectl(t, "delete", "namespace", doomed, "--wait=false"); err != nil {
		t.Fatalf("kubectl delete namespace: %v: %s", err, out)
	}
	took := testcluster.Eventually(t, 60*time.Second, "the namespace deleted", func() error {
		var ns corev1.Namespace
		err := cluster.Client.Get(ctx, client.ObjectKey{Name: doomed}, &ns)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("namespace %s: %v %v", doomed, ns.Status.Phase, ns.Status.Conditions)
	})
	t.Logf("namespace %s, holding events, deleted %s after kubectl delete (%s in all)", doomed, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestWatchWithoutResourceVersionStartsWithTheEvents: as Kubernetes defines a watch
// without a resource version, it sends the selection's events first (ADDED), then the
// changes; with bookmarks asked for, a bookmark marks the end of the first part (a
// watch-list, as client-go's informers make).
func TestWatchWithoutResourceVersionStartsWithTheEvents(t *testing.T) {
	for _, bookmarks := range []bool{false, true} {
		t.Run(fmt.Sprintf("bookmarks=%v", bookmarks), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opts := metav1.ListOptions{LabelSelector: "hookgate.io/partner=acme", AllowWatchBookmarks: bookmarks}
			if bookmarks {
				yes := true
				opts.SendInitialEvents, opts.ResourceVersionMatch = &yes, metav1.ResourceVersionMatchNotOlderThan
			}
			w, err := dynamicClient(t).Namespace(tenantB).Watch(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			added := 0
			for added < perPartner {
				select {
				case e, ok := <-w.ResultChan():
					if !ok {
						t.Fatalf("the watch ended after %d ADDED", added)
					}
					if e.Type != "ADDED" {
						t.Fatalf("event %d is %s, want ADDED", added, e.Type)
					}
					added++
				case <-ctx.Done():
					t.Fatalf("%d ADDED, want %d", added, perPartner)
				}
			}
			if bookmarks {
				select {
				case e := <-w.ResultChan():
					if e.Type != "BOOKMARK" {
						t.Fatalf("after the events: %s, want the BOOKMARK that ends them", e.Type)
					}
				case <-ctx.Done():
					t.Fatal("no bookmark after the events")
				}
			}
		})
	}
}
