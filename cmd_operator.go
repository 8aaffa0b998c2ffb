package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/hookgate/hookgate/controllers"
	"github.com/hookgate/hookgate/internal/scheme"
)

func runOperator(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := controllers.DefaultOptions()
	opts.BindFlags(fs)
	logs := bindLogFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "hookgate operator: %v\n", err)
		return 2
	}
	ctrl.SetLogger(logs.logger(stderr))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintf(stderr, "hookgate operator: no cluster configuration (set KUBECONFIG): %v\n", err)
		return 1
	}
	mgr, _, err := controllers.NewManager(cfg, scheme.New(), opts)
	if err != nil {
		fmt.Fprintf(stderr, "hookgate operator: %v\n", err)
		return 1
	}
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "hookgate operator: %v\n", err)
		return 1
	}
	return 0
}
