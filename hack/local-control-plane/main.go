// Command local-control-plane runs a kube-apiserver and etcd (the envtest binaries) with
// hookgate's CRDs installed and aggregation configured, and kube-controller-manager's
// namespace and garbage-collector controllers; writes an admin kubeconfig; prepares the
// receiver's events API (its certificate, its flags in <events-api-dir>/receiver-flags)
// and registers its APIService; and runs until interrupted. It is what `make run` uses
// instead of a cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/internal/testcluster"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "", "where to write the admin kubeconfig (required)")
	eventsAPIDir := flag.String("events-api-dir", "", "where to make the events API's serving certificate and write the receiver's flags for it (receiver-flags); empty: no events API")
	crdDir := flag.String("crd-dir", "", "the CRDs to install (default: this tree's config/crd/bases)")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "local-control-plane: --write-kubeconfig is required")
		os.Exit(2)
	}
	cluster, err := testcluster.StartWith(testcluster.Options{CRDDirectory: *crdDir})
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
	if err := cluster.StartControllerManager(); err != nil {
		fmt.Fprintln(os.Stderr, "local-control-plane:", err)
		_ = cluster.Stop()
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if *eventsAPIDir != "" {
		api, err := cluster.PrepareEventsAPI(*eventsAPIDir)
		if err == nil {
			err = os.WriteFile(filepath.Join(*eventsAPIDir, "receiver-flags"), []byte(strings.Join(api.Args, " ")+"\n"), 0o600)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "local-control-plane: preparing the events API:", err)
			_ = cluster.Stop()
			os.Exit(1)
		}
		go registerEventsAPI(ctx, api)
	}
	fmt.Printf("control plane ready at %s (kubeconfig %s)\n", cluster.Config.Host, *kubeconfig)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	cancel()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "local-control-plane: stopping:", err)
		os.Exit(1)
	}
}

// registerEventsAPI registers the events API's APIService, trying again until the
// receiver answers (it starts after the control plane).
func registerEventsAPI(ctx context.Context, api *testcluster.EventsAPI) {
	for ctx.Err() == nil {
		err := api.Register(ctx)
		if err == nil {
			fmt.Println("events API registered: kubectl get webhookevents is served by the receiver")
			return
		}
		fmt.Fprintln(os.Stderr, "local-control-plane: the events API is not available yet:", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}
