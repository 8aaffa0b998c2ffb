// Package testcluster starts a real kube-apiserver and etcd (envtest) with hookgate's
// generated CRDs installed and aggregation configured, for tests that must run against
// the real API server.
package testcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	hgscheme "github.com/hookgate/hookgate/internal/scheme"
)

// Cluster is a running control plane.
type Cluster struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Client     client.Client
	Scheme     *runtime.Scheme
	Kubeconfig string // path of a kubeconfig file for an admin user
	Kubectl    string // path of the kubectl binary built with the control plane
	dir        string // the kubeconfig and the aggregation certificates

	stopControllerManager func()
}

// RepoRoot is the repository's top directory, found from this source file.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start starts the control plane or returns an error that says how to get one. It never
// skips: a test that needs the API server fails loudly without it.
func Start() (*Cluster, error) { return StartWith(Options{}) }

// Options change what Start installs.
type Options struct {
	// CRDDirectory holds the CRDs to install (default: this tree's config/crd/bases). The
	// bench's comparison with an older commit installs that commit's.
	CRDDirectory string
}

// StartWith is Start with options.
func StartWith(opts Options) (*Cluster, error) {
	if opts.CRDDirectory == "" {
		opts.CRDDirectory = filepath.Join(RepoRoot(), "config", "crd", "bases")
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests with 'make test', or export KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh)")
	}
	scheme := hgscheme.New()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{opts.CRDDirectory},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	dir, err := os.MkdirTemp("", "hookgate-testcluster-")
	if err != nil {
		return nil, err
	}
	if err := configureAggregation(env, dir); err != nil {
		return nil, fmt.Errorf("configuring the kube-apiserver for aggregation: %w", err)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", assets, err)
	}
	c := &Cluster{Env: env, Config: cfg, Scheme: scheme, Kubectl: filepath.Join(assets, "kubectl"), dir: dir}
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	user, err := env.AddUser(envtest.User{Name: "hookgate-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("adding an admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops the control plane.
func (c *Cluster) Stop() error {
	if c.stopControllerManager != nil {
		c.stopControllerManager()
	}
	_ = os.RemoveAll(c.dir)
	return c.Env.Stop()
}

// RunKubectl runs the envtest kubectl against the cluster and returns its combined output.
func (c *Cluster) RunKubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Eventually polls check every 50 ms until it returns nil, and fails the test with the
// last error if timeout passes first. It returns how long it took.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = check(); err == nil {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
	return 0
}

// StartControllerManager runs kube-controller-manager's namespace and garbage-collector
// controllers against the cluster, as a cluster runs them, so that a namespace or an
// owner deleted here goes as it would there. It stops with the cluster.
func (c *Cluster) StartControllerManager() error {
	bin := filepath.Join(filepath.Dir(c.Kubectl), "kube-controller-manager")
	cmd := exec.CommandContext(context.Background(), bin, "--kubeconfig", c.Kubeconfig, "--controllers", "namespace,garbagecollector",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false")
	logFile, err := os.Create(filepath.Join(c.dir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting %s (built by hack/setup-envtest.sh): %w", bin, err)
	}
	c.stopControllerManager = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
	}
	return nil
}
