package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/hookgate/hookgate/receiver/eventsapi"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
	"github.com/hookgate/hookgate/receiver/store"
)

// serveEventsAPI starts the events API beside the ingest, on the same store: every
// replica serves it, so that any one behind the Service answers for every event. It
// reads nothing of the routing table, so it answers while the table is unavailable.
// With --api-cert-dir it waits for the certificate there (the operator makes it, and
// the kubelet mounts it a moment later on a first install); ingest does not wait.
func serveEventsAPI(ctx context.Context, opts Options, st store.Store, wake func(), goBackground func(string, func(context.Context) error)) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.APIListen)
	if err != nil {
		return fmt.Errorf("listening on %s (--api-listen): %w", opts.APIListen, err)
	}
	log := opts.Log.WithName("events-api")
	// The API machinery logs through klog: into the receiver's log, not stderr.
	klog.SetLogger(log)
	goBackground("events-api", func(ctx context.Context) error {
		defer ln.Close()
		if err := awaitCertificate(ctx, opts.APICertDir, func() {
			log.Info("waiting for the events API's serving certificate", "certDir", opts.APICertDir)
		}); err != nil {
			return nil //nolint:nilerr // shutting down before it came
		}
		work, err := os.MkdirTemp("", "hookgate-events-api-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Clean(work))
		server, err := eventsapi.New(eventsapi.Options{
			Listener: ln, CertDir: opts.APICertDir, KubeConfig: withUserAgent(opts.KubeConfig, "hookgate-receiver/events-api"),
			WorkDir: work, Storage: webhookevents.Options{Store: st, Wake: wake, Log: log}, Log: log,
		})
		if err != nil {
			return fmt.Errorf("the events API: %w", err)
		}
		log.Info("events API serving", "address", ln.Addr().String(), "certDir", opts.APICertDir)
		if opts.APIReady != nil {
			opts.APIReady(ln.Addr().String())
		}
		return server.PrepareRun().RunWithContext(ctx)
	})
	return nil
}

// awaitCertificate returns once dir holds tls.crt and tls.key (at once without a dir),
// calling waiting once if it has to wait, or ctx's error.
func awaitCertificate(ctx context.Context, dir string, waiting func()) error {
	if dir == "" {
		return nil
	}
	for said := false; ; said = true {
		_, crtErr := os.Stat(filepath.Join(dir, "tls.crt"))
		_, keyErr := os.Stat(filepath.Join(dir, "tls.key"))
		if crtErr == nil && keyErr == nil {
			return nil
		}
		if !said {
			waiting()
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), crtErr, keyErr)
		case <-time.After(time.Second):
		}
	}
}
