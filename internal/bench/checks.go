package bench

import (
	"fmt"
	"strings"
)

// Check is one of eventflow's performance targets against what a run
// measured.
type Check struct {
	Stage  string `json:"stage"`
	Target string `json:"target"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
}

// checkTargets compares a run with the targets (docs/performance.md). A
// target whose stage did not run, or that belongs to the other stack, is
// not listed.
func checkTargets(r *Report) []Check {
	var out []Check
	add := func(stage, target, got string, met bool) {
		out = append(out, Check{Stage: stage, Target: target, Got: got, Met: met})
	}
	ok := func(s *StageResult) bool { return s != nil && s.Err == "" && s.Result.Unit != "" }

	intake := r.Stage(StageIntake)
	if ok(intake) {
		add(StageIntake, "HTTP intake ≥ 70% of the raw transaction", fmt.Sprintf("%.0f%%", 100*intake.Ratio), intake.Ratio >= 0.70)
	}
	if s := r.Stage(StageRelay); ok(s) {
		if r.Stack == Real {
			add(StageRelay, "relay ≥ 50,000 events/s into real Kafka", fmt.Sprintf("%.0f events/s", s.Result.Value), s.Result.Value >= 50_000)
		}
		if ok(intake) && intake.Result.Value > 0 {
			x := s.Result.Value / intake.Result.Value
			add(StageRelay, "relay ≥ 5× the intake rate", fmt.Sprintf("%.1f×", x), x >= 5)
		}
	}
	if s := r.Stage(StageNotifier); ok(s) {
		add(StageNotifier, "notifier ≥ 50% of the sink's raw accept rate", fmt.Sprintf("%.0f%%", 100*s.Ratio), s.Ratio >= 0.5)
		if r.Stack == Real {
			add(StageNotifier, "notifier ≥ 10,000 emails/s (aim)", fmt.Sprintf("%.0f emails/s", s.Result.Value), s.Result.Value >= 10_000)
		}
	}
	if s := r.Stage(StageE2E); ok(s) && s.Latency != nil && r.Stack == Real {
		add(StageE2E, "order → email p50 ≤ 20 ms at half the maximum rate", fmt.Sprintf("%.1f ms", s.Latency.P50), s.Latency.P50 <= 20)
		add(StageE2E, "order → email p99 ≤ 100 ms at half the maximum rate", fmt.Sprintf("%.1f ms", s.Latency.P99), s.Latency.P99 <= 100)
	}
	if s := r.Stage(StageMemory); ok(s) {
		if v, found := s.find("RSS idle after start"); found {
			add(StageMemory, "idle RSS ≤ 50 MiB", fmt.Sprintf("%.1f MiB", v), v <= 50)
		}
		if v, found := s.find("ready after start"); found {
			add(StageMemory, "ready ≤ 1 s after start on an existing data folder", fmt.Sprintf("%.2f s", v), v <= 1)
		}
		add(StageMemory, "RSS ≤ 150 MiB after 1,000,000 orders", fmt.Sprintf("%.1f MiB (%s)", s.Result.Value, s.Result.Name), s.Result.Value <= 150 && strings.Contains(s.Result.Name, "after 1000000 "))
	}
	if s := r.Stage(StageSoak); ok(s) {
		// RSS by the windows of the run; goroutines and files at rest,
		// before and after (under load they follow the open connections).
		rss, okRSS := s.find("RSS growth")
		gor, okGor := s.find("goroutines at rest")
		files, okFiles := s.find("open files at rest")
		got := fmt.Sprintf("RSS %+.1f MiB over the run, at rest goroutines %+.0f, open files %+.0f", rss, gor, files)
		if !okRSS || !okGor || !okFiles {
			got = "too few samples to judge"
		}
		add(StageSoak, "soak: no growth in goroutines, open files or RSS", got, okRSS && okGor && okFiles && rss <= 5 && gor <= 5 && files <= 2)
	}
	return out
}

// find returns the value of the first figure whose name starts with prefix.
func (s *StageResult) find(prefix string) (float64, bool) {
	for _, f := range s.Figures {
		if strings.HasPrefix(f.Name, prefix) {
			return f.Value, true
		}
	}
	return 0, false
}
