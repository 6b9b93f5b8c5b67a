// Package bench is eventflow's benchmark harness. It runs eventflow as OS
// processes on the real stack (PostgreSQL, Apache Kafka) or on its embedded
// defaults, drives each stage of the system with a load generator on
// loopback, and measures, in the same run and on the same database, broker
// and SMTP sink, the baseline of what the parts underneath can do on their
// own: the raw order-and-outbox transaction, a raw produce, the sink's raw
// accept rate. Every figure is reported beside its baseline as a ratio.
package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventflow/eventflow/internal/chaos"
)

// The stages, in the order a run takes them.
const (
	StageIntake   = "intake"
	StageRelay    = "relay"
	StageNotifier = "notifier"
	StageE2E      = "e2e"
	StageMemory   = "memory"
	StageSoak     = "soak"
)

// Stages lists every stage; "all" runs all but soak.
func Stages() []string {
	return []string{StageIntake, StageRelay, StageNotifier, StageE2E, StageMemory, StageSoak}
}

// Config is one benchmark run.
type Config struct {
	Stack  Stack
	Stages []string
	// Bin is the eventflow binary; Dir holds logs, data and profiles.
	Bin, Dir string
	// Services are the real PostgreSQL and Kafka (Real only).
	Services chaos.Services
	// Guarantee is EVENTFLOW_DELIVERY_GUARANTEE of every eventflow process.
	Guarantee string
	// Settings are more EVENTFLOW_*=value settings for every process.
	Settings []string
	// Clients is the load generator's concurrency; Duration how long each
	// intake load (and its baseline) runs.
	Clients  int
	Duration time.Duration
	// RelayEvents is the size of the pre-filled outbox.
	RelayEvents int
	// NotifierEvents × Subscribers emails in the notifier stage.
	NotifierEvents, Subscribers int
	// SMTPClients is the concurrency of the raw SMTP baseline: eventflow's
	// delivery workers.
	SMTPClients int
	// Rate of orders per second in the end-to-end and soak stages; 0 is half
	// of the most the slowest stage took in this run.
	Rate float64
	// E2EDuration and SoakDuration are how long those loads run.
	E2EDuration, SoakDuration time.Duration
	// MemoryOrders are created in the memory stage before RSS is read.
	MemoryOrders int
	// Profile, when set, is a folder for CPU and allocation profiles of the
	// eventflow process taken during each stage's measured load.
	Profile string
	// KafkaVersion names the real broker's version in the report.
	KafkaVersion string
	// Keep keeps each stage's database and data folder.
	Keep bool
	Logf func(format string, args ...any)
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// Measure is one figure.
type Measure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// StageResult is what one stage measured.
type StageResult struct {
	Stage string `json:"stage"`
	// Result is the stage's headline figure, Baseline what the parts
	// underneath did alone in the same run, Ratio the one over the other.
	Result   Measure  `json:"result"`
	Baseline *Measure `json:"baseline,omitempty"`
	Ratio    float64  `json:"ratio,omitempty"`
	Latency  *Latency `json:"latency,omitempty"`
	// Series is the load second by second, for the chart.
	Series []Point `json:"series,omitempty"`
	// Samples are the soak's resource readings over time.
	Samples []ResourceSample `json:"samples,omitempty"`
	// Figures are the stage's other measurements.
	Figures []Measure `json:"figures,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
	Err     string    `json:"error,omitempty"`
}

func (s *StageResult) figure(name string, value float64, unit string) {
	s.Figures = append(s.Figures, Measure{Name: name, Value: round(value), Unit: unit})
}

func (s *StageResult) note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

func (s *StageResult) setBaseline(name string, value float64, unit string) {
	s.Baseline = &Measure{Name: name, Value: round(value), Unit: unit}
	if value > 0 {
		s.Ratio = round(s.Result.Value / value)
	}
}

// Report is a whole run.
type Report struct {
	Machine   Machine        `json:"machine"`
	Stack     Stack          `json:"stack"`
	Guarantee string         `json:"delivery_guarantee"`
	Settings  []string       `json:"settings,omitempty"`
	Started   time.Time      `json:"started"`
	Took      float64        `json:"took_s"`
	Stages    []*StageResult `json:"stages"`
	Checks    []Check        `json:"checks"`
}

// Stage returns the result of the named stage, nil if it did not run.
func (r *Report) Stage(name string) *StageResult {
	for _, s := range r.Stages {
		if s.Stage == name {
			return s
		}
	}
	return nil
}

// Run runs the configured stages, each in a world of its own, and checks
// the results against eventflow's targets.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Guarantee == "" {
		cfg.Guarantee = "exactly-once"
	}
	rep := &Report{Machine: describeMachine(ctx, &cfg), Stack: cfg.Stack, Guarantee: cfg.Guarantee,
		Settings: cfg.Settings, Started: time.Now()}
	runners := map[string]func(context.Context, *Config, *Report) (*StageResult, error){
		StageIntake: runIntake, StageRelay: runRelay, StageNotifier: runNotifier,
		StageE2E: runE2E, StageMemory: runMemory, StageSoak: runSoak,
	}
	for _, name := range Stages() {
		if !slices.Contains(cfg.Stages, name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		cfg.logf("stage %s on the %s stack", name, cfg.Stack)
		res, err := runners[name](ctx, &cfg, rep)
		if res == nil {
			res = &StageResult{Stage: name}
		}
		if err != nil {
			res.Err = err.Error()
			cfg.logf("stage %s failed: %v", name, err)
		}
		rep.Stages = append(rep.Stages, res)
	}
	rep.Took = round(time.Since(rep.Started).Seconds())
	rep.Checks = checkTargets(rep)
	return rep, nil
}

// ParseStages parses a comma-separated list of stages; "all" is every stage
// but soak.
func ParseStages(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			out = append(out, StageIntake, StageRelay, StageNotifier, StageE2E, StageMemory)
		case slices.Contains(Stages(), name):
			out = append(out, name)
		case name != "":
			return nil, fmt.Errorf("unknown stage %q (want %s or all)", name, strings.Join(Stages(), ", "))
		}
	}
	return out, nil
}
