package controllers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/controllers"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/testcluster"
)

const receiverNamespace = "hookgate-system"

var (
	cluster   *testcluster.Cluster
	publisher *controllers.Publisher
	clientset *kubernetes.Clientset
	// receiverClientset acts as the receiver's service account, bound to nothing but the
	// generated config/rbac/receiver roles.
	receiverClientset *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(false), zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	var err error
	cluster, err = testcluster.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: envtest:", err)
		return 1
	}
	defer func() { _ = cluster.Stop() }()
	cfg := *cluster.Config
	cfg.QPS, cfg.Burst = 200, 400
	if clientset, err = kubernetes.NewForConfig(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: receiverNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	if receiverClientset, err = receiverIdentity(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: receiver identity:", err)
		return 1
	}
	opts := controllers.DefaultOptions()
	opts.ReceiverNamespace, opts.MetricsBindAddress, opts.HealthProbeBindAddress = receiverNamespace, "0", "0"
	opts.SharedPathNamespaces = []string{"paths"} // testPathConflicts shares /api/webhooks/shared
	operatorCfg, err := generatedRoleIdentity(ctx, "hookgate-operator", filepath.Join("config", "rbac", "role.yaml"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: operator identity:", err)
		return 1
	}
	mgr, pub, err := controllers.NewManager(operatorCfg, cluster.Scheme, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: operator:", err)
		return 1
	}
	publisher = pub
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "operator stopped:", err)
		}
	}()
	gc, err := startGarbageCollector(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: garbage collector:", err)
		return 1
	}
	defer func() { _ = gc.Process.Kill(); _ = gc.Wait() }()
	return m.Run()
}

func zapLevel() zapcore.Level {
	if os.Getenv("HOOKGATE_TEST_VERBOSE") != "" {
		return -1
	}
	return 1
}

// startGarbageCollector runs kube-controller-manager's garbage collector against the test
// API server, so that owner references delete dependents as in a real cluster.
func startGarbageCollector(ctx context.Context) (*exec.Cmd, error) {
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s is missing: run hack/setup-envtest.sh", bin)
	}
	cmd := exec.CommandContext(ctx, bin,
		"--kubeconfig", cluster.Kubeconfig,
		"--controllers", "garbagecollector",
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--concurrent-gc-syncs=5",
		"-v=1")
	logFile, err := os.CreateTemp("", "kube-controller-manager-*.log")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	return cmd, cmd.Start()
}

// eventually is testcluster.Eventually.
var eventually = testcluster.Eventually

func newNamespace(t *testing.T, name string) string {
	t.Helper()
	if err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// publishedTable reads the routing Secret from the API server, as a receiver would.
func publishedTable() (*routing.Table, string, error) {
	secret, err := clientset.CoreV1().Secrets(receiverNamespace).Get(context.Background(), routing.DefaultSecretName, metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	t, err := routing.Decode(secret.Data[routing.SecretDataKey])
	return t, secret.ResourceVersion, err
}

func getPartner(t *testing.T, ns, name string) *hookgatev1alpha1.Partner {
	t.Helper()
	var p hookgatev1alpha1.Partner
	if err := cluster.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// conditionIs checks one condition's status and, when given, reason.
func conditionIs(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) error {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return fmt.Errorf("no %s condition", typ)
	}
	if c.Status != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("%s is %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	return nil
}

func partnerCondition(ns, name, typ string, status metav1.ConditionStatus, reason string) func() error {
	return func() error {
		var p hookgatev1alpha1.Partner
		if err := cluster.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", p.Status.ObservedGeneration, p.Generation)
		}
		return conditionIs(p.Status.Conditions, typ, status, reason)
	}
}

func endpointCondition(ns, name string, status metav1.ConditionStatus, reason string) func() error {
	return func() error {
		var e hookgatev1alpha1.WebhookEndpoint
		if err := cluster.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &e); err != nil {
			return err
		}
		if e.Status.ObservedGeneration != e.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", e.Status.ObservedGeneration, e.Generation)
		}
		return conditionIs(e.Status.Conditions, hookgatev1alpha1.ConditionReady, status, reason)
	}
}

// receiver runs the real receiver side of the routing contract: the Secret watcher and
// the Lease reporter.
type receiver struct {
	holder *routing.Holder
	cancel context.CancelFunc
	done   chan struct{}
	dir    string

	mu     sync.Mutex
	report map[string]string // extra Lease annotations, as a receiver's Report gives them
}

func (r *receiver) setReport(annotations map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report = annotations
}

// testPublicURL is the --public-url the test receivers report on their Leases.
const testPublicURL = "https://hooks.example.com"

func startReceiver(t *testing.T, identity string) *receiver {
	t.Helper()
	return startReceiverWith(t, identity, receiverClientset)
}

// startReceiverWith starts a receiver that talks to the API server as cs (the generated
// receiver role allows one Lease name only, so a second replica runs as the admin).
func startReceiverWith(t *testing.T, identity string, cs kubernetes.Interface) *receiver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// The receiver may outlive the step that started it, so its cache is not in t.TempDir.
	dir, err := os.MkdirTemp("", "hookgate-test-receiver-")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{holder: routing.NewHolder(), cancel: cancel, done: make(chan struct{}), dir: dir}
	log := ctrl.Log.WithName("test-receiver").WithValues("identity", identity)
	watcher := &routing.SecretWatcher{
		Client: cs, Namespace: receiverNamespace, Name: routing.DefaultSecretName,
		Holder: r.holder, Cache: &routing.DiskCache{Path: filepath.Join(dir, "routing.json.gz")}, Log: log,
	}
	reporter := &routing.LeaseReporter{Client: cs, Namespace: receiverNamespace, Identity: identity, Holder: r.holder, PublicURL: testPublicURL, Log: log,
		Report: func(*routing.Table) map[string]string {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.report
		}}
	go func() { _ = watcher.Start(ctx) }()
	go func() { defer close(r.done); _ = reporter.Start(ctx) }()
	return r
}

func (r *receiver) stop() {
	r.cancel()
	<-r.done
	_ = os.RemoveAll(r.dir)
}

// updatePartner applies mutate to the latest copy, retrying on conflicts with the
// operator's own status writes.
func updatePartner(t *testing.T, ns, name string, mutate func(*hookgatev1alpha1.Partner)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p hookgatev1alpha1.Partner
		if err := cluster.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
			return err
		}
		mutate(&p)
		return cluster.Client.Update(context.Background(), &p)
	})
	if err != nil {
		t.Fatalf("updating partner %s/%s: %v", ns, name, err)
	}
}

// receiverIdentity installs the generated receiver roles, binds them to a user, and
// returns a client acting as that user.
func receiverIdentity(ctx context.Context) (*kubernetes.Clientset, error) {
	cfg, err := generatedRoleIdentity(ctx, "hookgate-receiver", filepath.Join("config", "rbac", "receiver", "role.yaml"))
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// generatedRoleIdentity installs the roles of a generated RBAC file, binds them to the
// service account's user, and returns a configuration acting as that user: the operator
// and the receiver run in the tests with nothing more than `make manifests` gives them.
func generatedRoleIdentity(ctx context.Context, serviceAccount, roleFile string) (*rest.Config, error) {
	user := "system:serviceaccount:hookgate-system:" + serviceAccount
	raw, err := os.ReadFile(filepath.Join(testcluster.RepoRoot(), roleFile))
	if err != nil {
		return nil, err
	}
	for _, doc := range strings.Split(string(raw), "\n---") {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil || len(obj.Object) == 0 {
			continue
		}
		if err := cluster.Client.Create(ctx, obj); err != nil {
			return nil, err
		}
		subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: obj.GetKind(), Name: obj.GetName()}
		var binding client.Object = &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName()}, Subjects: subject, RoleRef: ref}
		if obj.GetKind() == "Role" {
			binding = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName(), Namespace: obj.GetNamespace()}, Subjects: subject, RoleRef: ref}
		}
		if err := cluster.Client.Create(ctx, binding); err != nil {
			return nil, err
		}
	}
	u, err := cluster.Env.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		return nil, err
	}
	cfg := u.Config()
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}
