// Command local-control-plane runs a kube-apiserver and etcd (the envtest binaries) with
// hookgate's CRDs installed, writes an admin kubeconfig, and runs until interrupted. It is
// what `make run` and the end-to-end test use instead of a cluster.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookgate/hookgate/internal/testcluster"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "", "where to write the admin kubeconfig (required)")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "local-control-plane: --write-kubeconfig is required")
		os.Exit(2)
	}
	cluster, err := testcluster.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "local-control-plane:", err)
		os.Exit(1)
	}
	raw, err := os.ReadFile(cluster.Kubeconfig)
	if err == nil {
		err = os.WriteFile(*kubeconfig, raw, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "local-control-plane: writing the kubeconfig:", err)
		_ = cluster.Stop()
		os.Exit(1)
	}
	fmt.Printf("control plane ready at %s (kubeconfig %s)\n", cluster.Config.Host, *kubeconfig)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "local-control-plane: stopping:", err)
		os.Exit(1)
	}
}
