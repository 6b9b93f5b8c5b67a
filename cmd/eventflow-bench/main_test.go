package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/internal/bench"
	"github.com/eventflow/eventflow/internal/testenv"
)

// TestHarnessRunsEveryStage runs every stage of the harness, at toy sizes,
// on each stack, and checks that each produced its figure and its same-run
// baseline. It proves the harness works, not how fast eventflow is: the
// figures of a toy run on a busy test machine mean nothing.
func TestHarnessRunsEveryStage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs eventflow")
	}
	bin := filepath.Join(t.TempDir(), "eventflow")
	if out, err := exec.Command("go", "build", "-o", bin, "../eventflow").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, stack := range []string{"embedded", "real"} {
		t.Run(stack, func(t *testing.T) {
			getenv := os.Getenv
			if stack == "real" {
				testenv.Postgres(t)
				testenv.Require(t, "EVENTFLOW_TEST_KAFKA_BROKERS", "Apache Kafka")
			}
			out := t.TempDir()
			args := []string{"-stack", stack, "-eventflow", bin, "-dir", t.TempDir(), "-out", out,
				"-stages", "all,soak", "-clients", "4", "-duration", "1s", "-relay-events", "3000",
				"-notifier-events", "40", "-subscribers", "2", "-smtp-clients", "2", "-e2e", "3s",
				"-soak", "3s", "-memory-orders", "200", "-profile", filepath.Join(out, "profiles")}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code, err := run(ctx, args, getenv, &stdout, &stderr)
			if code != 0 || err != nil {
				t.Fatalf("eventflow-bench exited %d: %v\n%s\n%s", code, err, stdout.String(), stderr.String())
			}
			b, err := os.ReadFile(filepath.Join(out, stack+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var rep bench.Report
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			withBaseline := map[string]bool{bench.StageIntake: true, bench.StageRelay: true, bench.StageNotifier: true, bench.StageE2E: true, bench.StageSoak: true}
			for _, name := range bench.Stages() {
				s := rep.Stage(name)
				switch {
				case s == nil:
					t.Errorf("stage %s did not run", name)
				case s.Err != "":
					t.Errorf("stage %s failed: %s", name, s.Err)
				case name == bench.StageMemory && stack == "real":
					// measured on the embedded stack only
				case s.Result.Value <= 0:
					t.Errorf("stage %s measured nothing: %+v", name, s.Result)
				case withBaseline[name] && (s.Baseline == nil || s.Baseline.Value <= 0 || s.Ratio <= 0):
					t.Errorf("stage %s has no same-run baseline: %+v", name, s.Baseline)
				}
			}
			if e2e := rep.Stage(bench.StageE2E); e2e != nil {
				// Without -rate, e2e first measures the most the process
				// carries, then offers half of it.
				if len(e2e.Figures) == 0 || e2e.Figures[0].Name != "maximum sustained rate end to end" || e2e.Figures[0].Value <= 0 {
					t.Errorf("e2e did not measure its maximum sustained rate first: %+v", e2e.Figures)
				}
				if e2e.Latency == nil || e2e.Baseline == nil || float64(e2e.Latency.Count) < e2e.Baseline.Value*3/2 {
					t.Errorf("e2e measured order-to-email latency of %+v orders, want most of the %v/s × 3 s offered", e2e.Latency, e2e.Baseline)
				}
			}
			if rep.Machine.Cores == 0 || rep.Machine.CPU == "" {
				t.Errorf("the report does not name the machine: %+v", rep.Machine)
			}
			if page, err := os.ReadFile(filepath.Join(out, stack+".html")); err != nil || !strings.Contains(string(page), "<svg") {
				t.Errorf("no chart in %s.html (%v)", stack, err)
			}
			if !strings.Contains(stdout.String(), "baseline (same run)") {
				t.Errorf("the table is missing:\n%s", stdout.String())
			}
			if profiles, _ := filepath.Glob(filepath.Join(out, "profiles", "*.cpu.pprof")); len(profiles) < 4 {
				t.Errorf("CPU profiles written: %v, want one per loaded stage", profiles)
			}
		})
	}
}
