// Command eventflow-chaos is eventflow's fault-injection suite. It runs
// eventflow as separate OS processes per role (the APIs, two relays, two
// notifiers) against the real PostgreSQL and Apache Kafka of
// scripts/services.sh and an SMTP sink of its own, drives a bounded stream
// of orders, injects faults, and checks what arrived against what
// committed. It exits 1 when an invariant fails, 2 when it could not run.
//
//	eval "$(scripts/services.sh env)"
//	go run ./cmd/eventflow-chaos -scenario all            # every fault once
//	go run ./cmd/eventflow-chaos -scenario every          # each fault alone, then mixed
//	go run ./cmd/eventflow-chaos -table                   # the delivery-guarantee table
//	go run ./cmd/eventflow-chaos -scenario mixed -seed 42 # replay a run
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/eventflow/eventflow/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "eventflow-chaos:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

const scenarioEvery = "every"

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("eventflow-chaos", flag.ContinueOnError)
	var (
		scenario  = fs.String("scenario", chaos.ScenarioAll, "what to break: "+strings.Join(append(chaos.Scenarios(), scenarioEvery), ", ")+" (comma-separated for several runs)")
		seed      = fs.Uint64("seed", 0, "seed of the orders and the faults (0: a random one, printed)")
		guarantee = fs.String("guarantee", "exactly-once", "EVENTFLOW_DELIVERY_GUARANTEE of the run: at-most-once, at-least-once or exactly-once")
		table     = fs.Bool("table", false, "run the broker-and-relay-kills scenario once per delivery guarantee and print the table")
		orders    = fs.Int("orders", 240, "orders in the stream of one run")
		rate      = fs.Float64("rate", 5, "orders created per second (their status changes follow)")
		settle    = fs.Duration("settle", 150*time.Second, "how long to wait, after the stream, for the system to finish its work")
		bin       = fs.String("eventflow", "", "eventflow binary to run (default: go build ./cmd/eventflow)")
		dir       = fs.String("dir", filepath.Join(os.TempDir(), "eventflow-chaos"), "folder for each run's logs (kept when a run fails)")
		keep      = fs.Bool("keep", false, "keep the database, topics and logs of passing runs too")
		script    = fs.String("services", "scripts/services.sh", "scripts/services.sh, which restarts the broker")
		timeout   = fs.Duration("timeout", time.Hour, "bound on the whole command")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: eventflow-chaos [flags]\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nFaults (each is also a scenario of its own):\n%s", chaos.FaultDocs())
		fmt.Fprintf(fs.Output(), "\nScenarios besides one fault: none (no fault), all (every fault once, in a seeded order),\n"+
			"mixed (faults at random times, overlapping), broker-and-relay-kills (the table's run), every (each fault alone, then mixed).\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	if *seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		*seed = binary.LittleEndian.Uint64(b[:]) % 1_000_000_000
	}
	if *orders < 1 || *rate <= 0 {
		return 2, errors.New("-orders and -rate must be positive")
	}
	svc, err := chaos.ServicesFromEnv(getenv)
	if err != nil {
		return 2, err
	}
	svc.Script = *script
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if *bin == "" {
		tmp, err := os.MkdirTemp("", "eventflow-chaos-bin")
		if err != nil {
			return 2, err
		}
		defer os.RemoveAll(tmp)
		*bin = filepath.Join(tmp, "eventflow")
		start := time.Now()
		build := exec.CommandContext(ctx, "go", "build", "-o", *bin, "./cmd/eventflow")
		if b, err := build.CombinedOutput(); err != nil {
			return 2, fmt.Errorf("go build ./cmd/eventflow: %v\n%s", err, b)
		}
		fmt.Fprintf(out, "built eventflow in %.0fs\n", time.Since(start).Seconds())
	}

	type job struct{ scenario, guarantee string }
	var jobs []job
	if *table {
		for _, g := range []string{"at-most-once", "at-least-once", "exactly-once"} {
			jobs = append(jobs, job{chaos.ScenarioKills, g})
		}
	} else {
		for _, s := range strings.Split(*scenario, ",") {
			s = strings.TrimSpace(s)
			if s == scenarioEvery {
				for _, name := range chaos.FaultNames() {
					jobs = append(jobs, job{name, *guarantee})
				}
				jobs = append(jobs, job{chaos.ScenarioMixed, *guarantee})
				continue
			}
			jobs = append(jobs, job{s, *guarantee})
		}
	}

	var reports []*chaos.Report
	code := 0
	for _, j := range jobs {
		cfg := chaos.Config{
			Scenario: j.scenario, Seed: *seed, Guarantee: j.guarantee, Orders: *orders, Rate: *rate,
			Settle: *settle, Bin: *bin, Dir: *dir, Keep: *keep, Services: svc, Out: out,
		}
		rep, err := chaos.Run(ctx, cfg)
		if err != nil {
			return 2, fmt.Errorf("scenario %s: %w", j.scenario, err)
		}
		replay := fmt.Sprintf("go run ./cmd/eventflow-chaos -scenario %s -seed %d -guarantee %s -orders %d -rate %g",
			j.scenario, *seed, j.guarantee, *orders, *rate)
		rep.Print(out, replay)
		reports = append(reports, rep)
		if rep.Failed() {
			code = 1
			if len(rep.HarnessErr) > 0 && rep.Result != nil && !rep.Result.Failed() {
				code = 2
			}
		}
	}

	if len(reports) > 1 {
		fmt.Fprintf(out, "\n=== summary, seed %d\n", *seed)
		for _, rep := range reports {
			verdict := "PASS"
			if rep.Failed() {
				verdict = "FAIL"
			}
			fmt.Fprintf(out, "  %-4s  %-27s %-14s %4.0fs  kafka lost %d dup %d reordered %d | emails lost %d dup %d unexplained %d\n",
				verdict, rep.Config.Scenario, rep.Config.Guarantee, rep.Duration.Seconds(),
				rep.Result.Kafka.Lost, rep.Result.Kafka.Duplicated, rep.Result.Kafka.Reordered,
				rep.Result.Mail.Lost, rep.Result.Mail.Duplicated, rep.Result.Mail.Unexplained)
		}
	}
	if *table {
		fmt.Fprintf(out, "\n=== delivery guarantees under broker and relay kills (seed %d, %d orders at %g/s)\n\n", *seed, *orders, *rate)
		chaos.PrintTable(out, reports)
		fmt.Fprintf(out, "\nreproduce: go run ./cmd/eventflow-chaos -table -seed %d -orders %d -rate %g\n", *seed, *orders, *rate)
	}
	return code, nil
}
