package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestQuantileIsNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0.001: time.Millisecond} {
		if got := quantile(s, q); got != want {
			t.Errorf("quantile(1..100 ms, %v) = %v, want %v", q, got, want)
		}
	}
	l := latencyOf([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if l.Count != 3 || l.P50 != 2 || l.Max != 3 {
		t.Errorf("latencyOf(3,1,2 ms) = %+v, want count 3, p50 2, max 3 (the input unsorted)", l)
	}
}

func TestSeriesCountsEachSecond(t *testing.T) {
	began := time.Now()
	ops := []timed{
		{end: began.Add(100 * time.Millisecond), took: 10 * time.Millisecond},
		{end: began.Add(900 * time.Millisecond), took: 30 * time.Millisecond},
		{end: began.Add(2500 * time.Millisecond), took: 5 * time.Millisecond},
	}
	got := seriesOf(began, ops)
	if len(got) != 3 {
		t.Fatalf("series of 3 ops over 2.5 s has %d points, want 3 (an empty second included): %+v", len(got), got)
	}
	if got[0].Rate != 2 || got[0].P99 != 30 || got[1].Rate != 0 || got[2].Rate != 1 || got[2].P50 != 5 {
		t.Errorf("series = %+v, want 2/s (p99 30 ms), 0/s, 1/s (p50 5 ms)", got)
	}
}

func TestClosedLoopStopsAtTheLimitAndCountsFailures(t *testing.T) {
	rec := closedLoop(context.Background(), 4, time.Minute, 10, func(_ context.Context, n int) error {
		if n%5 == 0 {
			return fmt.Errorf("operation %d failed", n)
		}
		return nil
	})
	s := rec.summary()
	if s.ok != 8 || s.failed != 2 {
		t.Errorf("10 operations, 2 failing: summary says %d ok, %d failed", s.ok, s.failed)
	}
}

func TestOpenLoopKeepsItsRate(t *testing.T) {
	rec := openLoop(context.Background(), 100, 300*time.Millisecond, 10, func(context.Context, int) error { return nil })
	if n := len(rec.samples); n != 30 {
		t.Errorf("100/s for 300 ms started %d operations, want 30", n)
	}
}

func TestGrowthTellsALeakFromAPlateau(t *testing.T) {
	var flat, leak []ResourceSample
	for i := range 60 {
		flat = append(flat, ResourceSample{T: float64(i), RSSMiB: 40 + float64(i%3), Goroutines: 50, OpenFiles: 20})
		leak = append(leak, ResourceSample{T: float64(i), RSSMiB: 40 + float64(i), Goroutines: 50 + float64(i), OpenFiles: 20 + float64(i/10)})
	}
	byUnit := func(ms []Measure) map[string]float64 {
		out := map[string]float64{}
		for _, m := range ms {
			out[m.Unit] = m.Value
		}
		return out
	}
	if g := byUnit(growth(flat)); g["MiB"] > 0 || g["goroutines"] > 0 || g["files"] > 0 {
		t.Errorf("a plateau (RSS wobbling by 2 MiB) shows growth: %v", g)
	}
	if g := byUnit(growth(leak)); g["MiB"] < 20 || g["goroutines"] < 20 || g["files"] < 2 {
		t.Errorf("a steady leak shows too little growth: %v", g)
	}
	if growth(flat[:5]) != nil {
		t.Error("five samples are too few to judge, yet growth judged them")
	}
}

func TestMetricSumsEveryLabelOfExactlyThatName(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `# HELP go_goroutines Number of goroutines.
go_goroutines 42
go_goroutines_extra 1000
eventflow_relay_published_events_total{topic="a"} 3
eventflow_relay_published_events_total{topic="b",x="}"} 4.5
`)
	}))
	defer srv.Close()
	ctx := context.Background()
	if v, err := metric(ctx, srv.URL, "go_goroutines"); err != nil || v != 42 {
		t.Errorf("go_goroutines = %v, %v; want 42 (not the longer name's 1000 added)", v, err)
	}
	if v, err := metric(ctx, srv.URL, "eventflow_relay_published_events_total"); err != nil || v != 7.5 {
		t.Errorf("labelled counter = %v, %v; want 3 + 4.5", v, err)
	}
	if _, err := metric(ctx, srv.URL, "absent_metric"); err == nil {
		t.Error("an absent metric read as a value")
	}
}

func TestCheckTargets(t *testing.T) {
	rep := &Report{Stack: Real, Stages: []*StageResult{
		{Stage: StageIntake, Result: Measure{Value: 1000, Unit: "orders/s"}, Ratio: 0.8},
		{Stage: StageRelay, Result: Measure{Value: 4000, Unit: "events/s"}},
		{Stage: StageNotifier, Result: Measure{Value: 100, Unit: "emails/s"}, Err: "sink down"},
		{Stage: StageE2E, Result: Measure{Value: 100, Unit: "orders/s"}, Latency: &Latency{P50: 12, P99: 140}},
	}}
	got := map[string]bool{}
	for _, c := range checkTargets(rep) {
		got[c.Target] = c.Met
	}
	want := map[string]bool{
		"HTTP intake ≥ 70% of the raw transaction":            true,
		"relay ≥ 50,000 events/s into real Kafka":             false,
		"relay ≥ 5× the intake rate":                          false, // 4×
		"order → email p50 ≤ 20 ms at half the maximum rate":  true,
		"order → email p99 ≤ 100 ms at half the maximum rate": false,
	}
	for target, met := range want {
		if g, ok := got[target]; !ok || g != met {
			t.Errorf("%s: met=%v (listed %v), want met=%v", target, g, ok, met)
		}
	}
	for target := range got {
		if strings.Contains(target, "notifier") {
			t.Errorf("a failed stage was checked: %s", target)
		}
	}

	soak := func(figures ...Measure) bool {
		r := &Report{Stack: Real, Stages: []*StageResult{{Stage: StageSoak, Result: Measure{Value: 500, Unit: "orders/s"}, Figures: figures}}}
		return checkTargets(r)[0].Met
	}
	rate := Measure{Name: maxSustained, Value: 1000, Unit: "orders/s"}
	shrinking := []Measure{rate, {Name: "RSS growth (late least − early most)", Value: -9.6, Unit: "MiB"},
		{Name: "goroutine growth", Value: 195}, {Name: "open file growth", Value: 166},
		{Name: "goroutines at rest, after − before the soak", Value: -1}, {Name: "open files at rest, after − before the soak", Value: 0}}
	if !soak(shrinking...) {
		t.Error("a soak back where it started at rest, RSS shrinking, was judged as growing")
	}
	leaking := append([]Measure{}, shrinking...)
	leaking[4].Value = 300
	if soak(leaking...) {
		t.Error("a soak that gained 300 goroutines was judged as not growing")
	}
	if soak(rate) {
		t.Error("a soak with too few samples to judge was judged as not growing")
	}
}

func TestReportWritesTableJSONAndHTML(t *testing.T) {
	rep := &Report{Stack: Embedded, Guarantee: "exactly-once", Started: time.Now(), Stages: []*StageResult{{
		Stage: StageIntake, Result: Measure{Name: "orders created", Value: 1234.6, Unit: "orders/s"},
		Latency: &Latency{P50: 2, P99: 9}, Series: []Point{{T: 1, Rate: 1200, P50: 2, P99: 9}, {T: 2, Rate: 1269, P50: 2, P99: 8}},
	}}}
	rep.Stages[0].setBaseline("raw", 2469, "orders/s")
	rep.Checks = checkTargets(rep)
	var table, js, page bytes.Buffer
	rep.WriteTable(&table)
	for _, want := range []string{"1,235 orders/s", "2,469 orders/s", "0.5", "MISSED", "HTTP intake ≥ 70%"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, table.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Stages[0].Ratio != 0.5 || len(back.Stages[0].Series) != 2 {
		t.Errorf("JSON does not round-trip (%v): %s", err, js.String())
	}
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(page.String(), "<svg"); n != 2 {
		t.Errorf("the page has %d charts, want 2 (throughput, latency)", n)
	}
	if strings.Contains(page.String(), "<script") {
		t.Error("the page runs scripts; it should be self-contained SVG")
	}
}
