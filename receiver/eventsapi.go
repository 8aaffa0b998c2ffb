package receiver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/hookgate/hookgate/receiver/eventsapi"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
	"github.com/hookgate/hookgate/receiver/store"
)

// serveEventsAPI starts the events API beside the ingest, on the same store: every
// replica serves it, so that any one behind the Service answers for every event. It
// reads nothing of the routing table, so it answers while the table is unavailable.
func serveEventsAPI(ctx context.Context, opts Options, st store.Store, wake func(), goBackground func(string, func(context.Context) error)) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.APIListen)
	if err != nil {
		return fmt.Errorf("listening on %s (--api-listen): %w", opts.APIListen, err)
	}
	work, err := os.MkdirTemp("", "hookgate-events-api-")
	if err != nil {
		_ = ln.Close()
		return err
	}
	log := opts.Log.WithName("events-api")
	// The API machinery logs through klog: into the receiver's log, not stderr.
	klog.SetLogger(log)
	server, err := eventsapi.New(eventsapi.Options{
		Listener: ln, CertDir: opts.APICertDir, KubeConfig: withUserAgent(opts.KubeConfig, "hookgate-receiver/events-api"),
		WorkDir: work, Storage: webhookevents.Options{Store: st, Wake: wake, Log: log}, Log: log,
	})
	if err != nil {
		_ = ln.Close()
		_ = os.RemoveAll(work)
		return fmt.Errorf("the events API: %w", err)
	}
	log.Info("events API serving", "address", ln.Addr().String(), "certDir", opts.APICertDir)
	if opts.APIReady != nil {
		opts.APIReady(ln.Addr().String())
	}
	goBackground("events-api", func(ctx context.Context) error {
		defer os.RemoveAll(filepath.Clean(work))
		return server.PrepareRun().RunWithContext(ctx)
	})
	return nil
}
