// Command eventflow runs the eventflow services and their tools.
//
//	eventflow [serve] [flags]        run the roles in EVENTFLOW_ROLES (default: all)
//	eventflow migrate up|status      apply or list database migrations
//	eventflow topics apply|list      create/update or list Kafka topics
//	eventflow apikey new             make an API key and its EVENTFLOW_API_KEYS entry
//	eventflow version                print the version
//
// main only wires: the domain lives in orders and outbox, each dependency in
// a package of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// ownsProcess is true in the eventflow binary and false when tests call run
// in-process: settings that are process-wide (the Go runtime's memory limit)
// are applied only when this process is eventflow's alone.
var ownsProcess bool

func main() {
	ownsProcess = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "eventflow:", err)
		}
		os.Exit(1)
	}
}

const usage = `eventflow: orders and notifications over events.

Usage:
  eventflow [serve] [flags]     run the roles in --roles (default: all)
  eventflow migrate up|status   apply or list database migrations
  eventflow topics apply|list   create/update or list Kafka topics
  eventflow apikey new --name N [--user U] --scopes S,S
                                make an API key; print it once, and its EVENTFLOW_API_KEYS entry
  eventflow version             print the version
  eventflow <command> --help    list the flags and their EVENTFLOW_* variables
`

// run is eventflow's whole program, with its environment passed in so that
// tests can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "topics":
		return topics(ctx, args, getenv, stdout, stderr)
	case "apikey":
		return apikeyCommand(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "eventflow", version())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// version is the module version, or the VCS revision of a source build.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}
