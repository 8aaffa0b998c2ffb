package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/resource"

	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hookgate/hookgate/internal/gctune"
	"github.com/hookgate/hookgate/receiver"
	"github.com/hookgate/hookgate/receiver/store"
)

func runReceiver(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := receiver.DefaultOptions()
	opts.BindFlags(fs)
	logs := bindLogFlags(fs)
	gcPercent := fs.Int("gc-percent", 0, fmt.Sprintf("heap growth between garbage collections, in percent of the live heap (GOGC, when set, wins; default %d on the embedded Pebble store, the default store, and %d on bbolt and PostgreSQL)", gctune.PebbleGCPercent, gctune.DefaultGCPercent))
	var memoryLimit resource.Quantity
	fs.Func("memory-limit", "memory the Go heap aims to stay under, such as 400Mi (GOMEMLIMIT, when set, wins; default: 90% of the container's memory limit, if it has one)", func(v string) error {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return fmt.Errorf("not a quantity such as 400Mi: %w", err)
		}
		memoryLimit = q
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "hookgate receiver: %v\n", err)
		return 2
	}
	if !flagSet(fs, "gc-percent") {
		*gcPercent = defaultGCPercent(opts)
	}
	gc, err := gctune.Apply(*gcPercent, memoryLimit.Value(), "/sys/fs/cgroup")
	if err != nil {
		fmt.Fprintf(stderr, "hookgate receiver: %v\n", err)
		return 2
	}
	logger := logs.logger(stderr)
	logger.Info("garbage collector set", "gcPercent", gc.GCPercent, "gcPercentFrom", gc.GCPercentFrom,
		"memoryLimitBytes", gc.MemoryLimit, "memoryLimitFrom", gc.MemoryLimitFrom, "containerMemoryLimitBytes", gc.CgroupMemoryLimit)
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

// defaultGCPercent is --gc-percent when the command line does not set it: lower on the
// embedded Pebble store, whose memtables and block cache are live heap that a larger
// factor would multiply.
func defaultGCPercent(opts receiver.Options) int {
	if opts.DatabaseURL == "" && opts.EmbeddedEngine == store.EnginePebble {
		return gctune.PebbleGCPercent
	}
	return gctune.DefaultGCPercent
}

// flagSet reports whether the command line set the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
