package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/eventflow/eventflow/config"
	"github.com/eventflow/eventflow/kafka"
)

// migrate runs `eventflow migrate up|status`.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		return fmt.Errorf("usage: eventflow migrate up|status [flags]")
	}
	cfg, err := config.Parse("eventflow migrate "+args[0], args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	store, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if args[0] == "up" {
		if err := store.Migrate(ctx); err != nil {
			return err
		}
	}
	status, err := store.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n", store.Description)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, s := range status {
		applied := ""
		if !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, s.Source.Path)
	}
	return tw.Flush()
}

// topics runs `eventflow topics apply|list`. With no external brokers it
// starts the embedded broker on its data folder, so the same commands work
// on embedded defaults (while no other eventflow holds that port).
func topics(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "apply" && args[0] != "list") {
		return fmt.Errorf("usage: eventflow topics apply|list [flags]")
	}
	cfg, err := config.Parse("eventflow topics "+args[0], args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	brk, err := startBroker(cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer brk.Close()
	if args[0] == "apply" {
		return applyTopics(ctx, brk.Brokers, cfg, stdout)
	}
	client, err := kafka.NewClient(brk.Brokers)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := kafka.ListTopics(ctx, kadm.NewClient(client))
	if err != nil {
		return err
	}
	for _, t := range list {
		fmt.Fprintln(stdout, t)
	}
	return nil
}
