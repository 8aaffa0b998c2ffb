package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hookgate/hookgate/receiver"
)

func runReceiver(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := receiver.DefaultOptions()
	opts.BindFlags(fs)
	logs := bindLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "hookgate receiver: %v\n", err)
		return 2
	}
	logger := logs.logger(stderr)
	ctrl.SetLogger(logger)
	opts.Log = logger.WithName("receiver")
	opts.AuditLog = receiver.NewAuditLogger()
	opts.Registry = crmetrics.Registry
	if opts.RoutingFile == "" {
		var err error
		if opts.KubeConfig, err = ctrl.GetConfig(); err != nil {
			fmt.Fprintf(stderr, "hookgate receiver: no cluster configuration (set KUBECONFIG, or use --routing-file): %v\n", err)
			return 1
		}
	}
	if err := receiver.Run(ctx, opts); err != nil {
		fmt.Fprintf(stderr, "hookgate receiver: %v\n", err)
		return 1
	}
	return 0
}
