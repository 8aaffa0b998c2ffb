// Command hookgate is the one binary of the hookgate operator: the control plane
// (operator), the data plane (receiver), and the partner tools (send, status).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"

	ctrl "sigs.k8s.io/controller-runtime"
)

// command is one subcommand of the hookgate binary.
type command struct {
	summary string
	// run is nil for a subcommand that is part of the CLI contract but not built yet.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"operator": {summary: "run the control plane: reconcile Partners and WebhookEndpoints", run: runOperator},
	"receiver": {summary: "run the data plane: receive, verify, store and deliver events", run: runReceiver},
	"send":     {summary: "sign and POST a test event as a partner", run: runSend},
	"status":   {summary: "print the delivery status of an event", run: runStatus},
	"version":  {summary: "print the version", run: runVersion},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// SIGTERM and SIGINT end the context: the long-running commands shut down cleanly.
	os.Exit(dispatch(ctrl.SetupSignalHandler(), os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "hookgate: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	if cmd.run == nil {
		fmt.Fprintf(stderr, "hookgate %s: not implemented yet in this build\n", name)
		return 2
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hookgate <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-9s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'hookgate <command> -h' for the flags of a command.")
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "hookgate", version)
	return 0
}
