// Command eventflow-bench is eventflow's benchmark harness: it runs
// eventflow as OS processes, loads each stage from loopback and prints every
// result beside a baseline measured in the same run, with the targets met
// or missed. It writes the report as a table, JSON and an HTML page with
// charts. See docs/performance.md.
//
//	eval "$(scripts/services.sh env)"
//	go run ./cmd/eventflow-bench -stack real -stages all
//	go run ./cmd/eventflow-bench -stack embedded -stages intake,memory
//	go run ./cmd/eventflow-bench -stack real -stages soak -soak 10m
//	go run ./cmd/eventflow-bench -stack real -stages relay -profile bench-results/profiles
//
// It exits 1 when a stage could not run, 2 on bad usage; a missed target is
// reported, not an error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eventflow/eventflow/internal/bench"
	"github.com/eventflow/eventflow/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "eventflow-bench:", err)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("eventflow-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		stack     = fs.String("stack", "real", "real (PostgreSQL + Kafka of scripts/services.sh) or embedded (SQLite + embedded broker)")
		stages    = fs.String("stages", "all", "comma-separated: "+strings.Join(bench.Stages(), ", ")+"; all = every stage but soak")
		guarantee = fs.String("guarantee", "exactly-once", "EVENTFLOW_DELIVERY_GUARANTEE of eventflow: at-most-once, at-least-once or exactly-once")
		clients   = fs.Int("clients", 32, "concurrent HTTP clients of the intake and memory loads, and connections of the raw transaction baseline")
		duration  = fs.Duration("duration", 10*time.Second, "length of the intake load and of its baseline")
		relayN    = fs.Int("relay-events", 200_000, "events in the pre-filled outbox")
		events    = fs.Int("notifier-events", 2_000, "events in the notifier stage")
		subs      = fs.Int("subscribers", 10, "email subscribers matching each event in the notifier stage")
		smtpConns = fs.Int("smtp-clients", 16, "connections of the raw SMTP baseline (eventflow's EVENTFLOW_DELIVERY_WORKERS default)")
		rate      = fs.Float64("rate", 0, "orders per second of the e2e and soak stages (0: half the maximum measured by the stages run before)")
		e2e       = fs.Duration("e2e", 30*time.Second, "length of the end-to-end load")
		soak      = fs.Duration("soak", 10*time.Minute, "length of the soak")
		memOrders = fs.Int("memory-orders", 1_000_000, "orders created in the memory stage")
		profile   = fs.String("profile", "", "folder for CPU and allocation profiles of eventflow during each stage (starts eventflow with EVENTFLOW_PPROF)")
		out       = fs.String("out", "bench-results", "folder for <stack>.json and <stack>.html")
		bin       = fs.String("eventflow", "", "eventflow binary (default: go build ./cmd/eventflow)")
		dir       = fs.String("dir", filepath.Join(os.TempDir(), "eventflow-bench"), "folder for logs and data of the runs")
		keep      = fs.Bool("keep", false, "keep each stage's database and data folder")
		kafkaVer  = fs.String("kafka-version", "", "version of the real broker, for the report")
		saved     = fs.String("report", "", "re-print a saved <stack>.json (table, and its .json and .html in -out) with the targets checked anew; runs nothing")
	)
	var (
		settings multiFlag
		logMu    sync.Mutex
	)
	fs.Var(&settings, "set", "an EVENTFLOW_*=value setting for every eventflow process (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	if *saved != "" {
		rep, err := bench.ReadReport(*saved)
		if err != nil {
			return 1, err
		}
		return writeReport(rep, *out, string(rep.Stack), stdout)
	}
	list, err := bench.ParseStages(*stages)
	if err != nil {
		return 2, err
	}
	for _, s := range settings {
		if !strings.HasPrefix(s, "EVENTFLOW_") || !strings.Contains(s, "=") {
			return 2, fmt.Errorf("-set %q: want EVENTFLOW_NAME=value", s)
		}
	}
	cfg := bench.Config{Stack: bench.Stack(*stack), Stages: list, Dir: *dir, Guarantee: *guarantee, Settings: settings,
		Clients: *clients, Duration: *duration, RelayEvents: *relayN, NotifierEvents: *events, Subscribers: *subs,
		SMTPClients: *smtpConns, Rate: *rate, E2EDuration: *e2e, SoakDuration: *soak, MemoryOrders: *memOrders,
		Profile: *profile, Keep: *keep, KafkaVersion: *kafkaVer,
		Logf: func(format string, args ...any) {
			// Stages log from several goroutines (profiles, processes).
			logMu.Lock()
			defer logMu.Unlock()
			fmt.Fprintf(stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
		}}
	switch cfg.Stack {
	case bench.Real:
		if cfg.Services, err = chaos.ServicesFromEnv(getenv); err != nil {
			return 2, fmt.Errorf("%w (eval \"$(scripts/services.sh env)\" first)", err)
		}
	case bench.Embedded:
	default:
		return 2, fmt.Errorf("-stack %q: want real or embedded", *stack)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return 1, err
	}
	if cfg.Bin = *bin; cfg.Bin == "" {
		cfg.Bin = filepath.Join(cfg.Dir, "eventflow")
		build := exec.CommandContext(ctx, "go", "build", "-o", cfg.Bin, "./cmd/eventflow")
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return 1, fmt.Errorf("go build ./cmd/eventflow: %w", err)
		}
	}

	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return 1, err
	}
	if code, err := writeReport(rep, *out, *stack, stdout); err != nil {
		return code, err
	}
	for _, s := range rep.Stages {
		if s.Err != "" {
			return 1, fmt.Errorf("stage %s failed: %s", s.Stage, s.Err)
		}
	}
	return 0, nil
}

// writeReport prints rep and writes <name>.json and <name>.html to dir.
func writeReport(rep *bench.Report, dir, name string, stdout io.Writer) (int, error) {
	rep.WriteTable(stdout)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 1, err
	}
	for _, w := range []struct {
		ext   string
		write func(io.Writer) error
	}{{"json", rep.WriteJSON}, {"html", rep.WriteHTML}} {
		path := filepath.Join(dir, name+"."+w.ext)
		if err := writeFile(path, w.write); err != nil {
			return 1, err
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	return 0, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
