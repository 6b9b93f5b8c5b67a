package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventflow/eventflow/internal/chaos"
)

// flowWorld is an all-in-one eventflow with an SMTP sink and one email
// subscription of every order's creation: each order makes one email.
type flowWorld struct {
	*world
	sink *chaos.Sink
	proc *chaos.Proc
	raw  rawDB
}

func newFlowWorld(ctx context.Context, cfg *Config, stage string) (*flowWorld, error) {
	w, err := newWorld(ctx, cfg, stage)
	if err != nil {
		return nil, err
	}
	f := &flowWorld{world: w}
	if f.sink, err = chaos.StartSink(); err != nil {
		w.close()
		return nil, err
	}
	w.set("EVENTFLOW_SMTP_URL=" + f.sink.URL("bench"))
	if f.proc, err = w.start(ctx, "eventflow", "all"); err != nil {
		f.close()
		return nil, err
	}
	if err := subscribe(ctx, f.proc.BaseURL, "everyone@bench.example"); err != nil {
		f.close()
		return nil, err
	}
	time.Sleep(matcherRefresh)
	if f.raw, err = openRawDB(ctx, w, 2); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *flowWorld) close() {
	if f.raw != nil {
		f.raw.close()
	}
	f.world.close()
	f.sink.Close()
}

// flowResult is what a flow of orders measured.
type flowResult struct {
	intake  summary
	latency *Latency // order request → email accepted
	series  []Point
	emails  int
	missing int // orders whose email did not arrive within the settle time
}

// flow creates orders at rate for d (numbering them from first) and waits up
// to settle for their emails. For each order it measures the time from the
// moment its request was sent, before the order committed, to the moment
// the sink accepted its email: an upper bound of commit-to-accept.
func (f *flowWorld) flow(ctx context.Context, first int, rate float64, d, settle time.Duration) (flowResult, error) {
	var sent sync.Map // order id → when its request was sent
	before := f.sink.Count()
	load := openLoop(ctx, rate, d, 512, func(ctx context.Context, n int) error {
		at := time.Now()
		id, err := createOrder(ctx, f.proc.BaseURL, first+n)
		if err == nil {
			sent.Store(id, at)
		}
		return err
	})
	res := flowResult{intake: load.summary()}
	deadline := time.Now().Add(settle)
	for f.sink.Count()-before < res.intake.ok && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	// The sink knows each email's delivery id (its Message-ID); the
	// database knows each delivery's order.
	subjects, err := f.raw.deliverySubjects(ctx)
	if err != nil {
		return res, fmt.Errorf("read deliveries: %w", err)
	}
	var (
		ops  []timed
		lats []time.Duration
		seen = map[string]bool{}
	)
	for _, m := range f.sink.Messages()[before:] {
		id := subjects[strings.ToLower(m.DeliveryID)]
		at, ok := sent.Load(id)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		took := m.At.Sub(at.(time.Time))
		lats = append(lats, took)
		ops = append(ops, timed{end: m.At, took: took})
	}
	res.emails, res.missing = len(lats), res.intake.ok-len(lats)
	res.latency = latencyOf(lats)
	res.series = seriesOf(load.began, ops)
	return res, nil
}

// maxSustained is the name of the e2e figure that the soak reuses.
const maxSustained = "maximum sustained rate end to end"

// saturate measures the most orders per second the all-in-one process
// carries end to end on this machine: Clients clients create orders back to
// back for Duration, and the rate is the orders whose emails arrived, over
// the time from the first request to the last email. Every part of the
// system shares the machine's cores here, so this is lower than the
// slowest stage measured alone.
func (f *flowWorld) saturate(ctx context.Context, first int) (float64, error) {
	cfg := f.cfg
	before := f.sink.Count()
	start := time.Now()
	load := closedLoop(ctx, cfg.Clients, cfg.Duration, 0, func(ctx context.Context, n int) error {
		_, err := createOrder(ctx, f.proc.BaseURL, first+n)
		return err
	}).summary()
	deadline := time.Now().Add(2 * time.Minute)
	for f.sink.Count()-before < load.ok {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("saturation: %d of %d emails arrived within 2 minutes", f.sink.Count()-before, load.ok)
		}
		time.Sleep(20 * time.Millisecond)
	}
	last := start
	for _, m := range f.sink.Messages()[before:] {
		if m.At.After(last) {
			last = m.At
		}
	}
	return float64(load.ok) / last.Sub(start).Seconds(), nil
}

// rateFor is the order rate of the end-to-end and soak loads: -rate, or
// half the maximum sustained rate, from the e2e stage of this run or
// measured now on f.
func rateFor(ctx context.Context, cfg *Config, rep *Report, f *flowWorld, res *StageResult) (float64, string, error) {
	if cfg.Rate > 0 {
		return cfg.Rate, "set by -rate", nil
	}
	if e2e := rep.Stage(StageE2E); e2e != nil {
		if m, ok := e2e.find(maxSustained); ok && m > 0 {
			return round(m / 2), fmt.Sprintf("half of the maximum sustained rate, %.0f/s, measured by the e2e stage", m), nil
		}
	}
	m, err := f.saturate(ctx, 50_000_000)
	if err != nil {
		return 0, "", err
	}
	res.figure(maxSustained, m, "orders/s")
	return round(m / 2), fmt.Sprintf("half of the maximum sustained rate, %.0f/s, measured first (%d clients for %s)", m, cfg.Clients, cfg.Duration), nil
}

// runE2E runs a sustained order rate through an all-in-one eventflow and
// measures order-to-email latency.
func runE2E(ctx context.Context, cfg *Config, rep *Report) (*StageResult, error) {
	f, err := newFlowWorld(ctx, cfg, StageE2E)
	if err != nil {
		return nil, err
	}
	defer f.close()
	res := &StageResult{Stage: StageE2E}
	rate, why, err := rateFor(ctx, cfg, rep, f, res)
	if err != nil {
		return res, err
	}
	stop := startProfile(ctx, cfg, f.proc.BaseURL, StageE2E, cfg.E2EDuration)
	fr, err := f.flow(ctx, 0, rate, cfg.E2EDuration, time.Minute)
	stop()
	if err != nil {
		return res, err
	}
	res.Result = Measure{Name: "orders per second carried end to end (email accepted)", Unit: "orders/s",
		Value: round(float64(fr.emails) / cfg.E2EDuration.Seconds())}
	res.setBaseline("orders per second offered", rate, "orders/s")
	res.Latency, res.Series = fr.latency, fr.series
	res.note("rate: %s; for %s; latency from sending the order's request to the SMTP sink accepting its email", why, cfg.E2EDuration)
	if fr.intake.latency != nil {
		res.figure("POST /v1/orders p50", fr.intake.latency.P50, "ms")
		res.figure("POST /v1/orders p99", fr.intake.latency.P99, "ms")
	}
	if fr.missing > 0 || fr.intake.failed > 0 {
		res.note("%d orders refused, %d emails missing after a minute", fr.intake.failed, fr.missing)
	}
	return res, nil
}

// ResourceSample is the eventflow process's use of resources at one time.
type ResourceSample struct {
	T          float64 `json:"t_s"`
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines float64 `json:"goroutines"`
	OpenFiles  float64 `json:"open_files"`
	Threads    float64 `json:"threads"`
}

func sampleResources(ctx context.Context, p *chaos.Proc, began time.Time) ResourceSample {
	s := ResourceSample{T: round(time.Since(began).Seconds()), RSSMiB: round(rssMiB(p.Pid))}
	s.Goroutines, _ = metric(ctx, p.BaseURL, "go_goroutines")
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid)); err == nil {
		s.OpenFiles = float64(len(fds))
	}
	s.Threads = procStatus(p.Pid, "Threads")
	return s
}

// rssMiB is the resident set of process pid, in MiB.
func rssMiB(pid int) float64 { return procStatus(pid, "VmRSS") / 1024 }

// procStatus reads a number from /proc/<pid>/status (kB for sizes).
func procStatus(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return statusField(string(b), field)
}

// statusField reads "Field: number ..." from a /proc status-like text.
func statusField(text, field string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v
			}
		}
	}
	return 0
}

// runSoak runs the end-to-end flow for SoakDuration at half the maximum
// and watches the process for growth in memory, goroutines and files.
func runSoak(ctx context.Context, cfg *Config, rep *Report) (*StageResult, error) {
	f, err := newFlowWorld(ctx, cfg, StageSoak)
	if err != nil {
		return nil, err
	}
	defer f.close()
	res := &StageResult{Stage: StageSoak}
	rate, why, err := rateFor(ctx, cfg, rep, f, res)
	if err != nil {
		return res, err
	}
	before := atRest(ctx, f.proc, time.Now())
	// About sixty samples, so that a short soak can be judged too.
	every := min(max(cfg.SoakDuration/60, time.Second), 10*time.Second)
	began := time.Now()
	sampling, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			res.Samples = append(res.Samples, sampleResources(sampling, f.proc, began))
			select {
			case <-sampling.Done():
				return
			case <-tick.C:
			}
		}
	}()
	fr, err := f.flow(ctx, 0, rate, cfg.SoakDuration, time.Minute)
	stopSampling()
	<-samplerDone
	if err != nil {
		return res, err
	}
	// Under load the goroutines and open files follow the connections the
	// load holds open. At rest, before and after, they must be the same:
	// what the soak left behind is what leaked.
	after := atRest(ctx, f.proc, began)
	res.figure("goroutines at rest, after − before the soak", after.Goroutines-before.Goroutines, "goroutines at rest")
	res.figure("open files at rest, after − before the soak", after.OpenFiles-before.OpenFiles, "files at rest")
	res.figure("RSS at rest after the soak", after.RSSMiB, "MiB at rest")
	res.Result = Measure{Name: "orders per second carried end to end", Unit: "orders/s",
		Value: round(float64(fr.emails) / cfg.SoakDuration.Seconds())}
	res.setBaseline("orders per second offered", rate, "orders/s")
	res.Latency, res.Series = fr.latency, fr.series
	res.note("rate: %s; for %s; resources sampled every %s", why, cfg.SoakDuration, every)
	for _, g := range growth(res.Samples) {
		res.figure(g.Name, g.Value, g.Unit)
	}
	return res, nil
}

// atRest samples the process once the load generator's idle keep-alive
// connections are closed and the process had a moment to notice.
func atRest(ctx context.Context, p *chaos.Proc, began time.Time) ResourceSample {
	client.CloseIdleConnections()
	time.Sleep(3 * time.Second)
	return sampleResources(ctx, p, began)
}

// growth compares the soak's resources early in the run (after a fifth of
// it, once warm) with the end: the most seen in the early window against
// the least seen in the last one. A leak shows as the end's least above
// the early most.
func growth(samples []ResourceSample) []Measure {
	n := len(samples)
	if n < 10 {
		return nil
	}
	early, late := samples[n/5:2*n/5], samples[4*n/5:]
	diff := func(get func(ResourceSample) float64) float64 {
		hi := 0.0
		for _, s := range early {
			hi = max(hi, get(s))
		}
		lo := get(late[0])
		for _, s := range late {
			lo = min(lo, get(s))
		}
		return lo - hi
	}
	return []Measure{
		{Name: "RSS growth (late least − early most)", Value: round(diff(func(s ResourceSample) float64 { return s.RSSMiB })), Unit: "MiB"},
		{Name: "goroutine growth", Value: diff(func(s ResourceSample) float64 { return s.Goroutines }), Unit: "goroutines"},
		{Name: "open file growth", Value: diff(func(s ResourceSample) float64 { return s.OpenFiles }), Unit: "files"},
	}
}

// runMemory measures the all-in-one process on embedded defaults: idle
// memory, memory after MemoryOrders orders, and the time to ready on an
// existing data folder.
func runMemory(ctx context.Context, cfg *Config, _ *Report) (*StageResult, error) {
	res := &StageResult{Stage: StageMemory}
	if cfg.Stack != Embedded {
		res.note("measured on the embedded stack only: its targets are the all-in-one process on embedded defaults")
		return res, nil
	}
	f, err := newFlowWorld(ctx, cfg, StageMemory)
	if err != nil {
		return nil, err
	}
	defer f.close()
	time.Sleep(3 * time.Second)
	idle := rssMiB(f.proc.Pid)
	res.figure("RSS idle after start, empty data folder", idle, "MiB")

	peak := 0.0
	sampling, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		for sampling.Err() == nil {
			peak = max(peak, rssMiB(f.proc.Pid))
			time.Sleep(time.Second)
		}
	}()
	before := f.sink.Count()
	load := closedLoop(ctx, cfg.Clients, 2*time.Hour, cfg.MemoryOrders, func(ctx context.Context, n int) error {
		_, err := createOrder(ctx, f.proc.BaseURL, n)
		return err
	}).summary()
	afterLoad := rssMiB(f.proc.Pid)
	deadline := time.Now().Add(10 * time.Minute)
	for f.sink.Count()-before < load.ok && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Second)
	}
	stopSampling()
	<-samplerDone
	settled := rssMiB(f.proc.Pid)
	res.Result = Measure{Name: fmt.Sprintf("RSS after %d orders (each relayed and emailed)", load.ok), Value: round(settled), Unit: "MiB"}
	res.setBaseline("RSS idle after start", idle, "MiB")
	res.figure("RSS at the end of the load", afterLoad, "MiB")
	res.figure("RSS peak during the load (sampled every second)", peak, "MiB")
	res.figure("orders created per second during the load", load.rate, "orders/s")
	res.figure("emails accepted", float64(f.sink.Count()-before), "emails")

	// Restart on the data folder the load filled.
	if err := f.procs.Stop("eventflow"); err != nil {
		return res, err
	}
	p, err := f.procs.Start(ctx, "eventflow", "all")
	if err != nil {
		return res, err
	}
	if err := waitReady(ctx, p.BaseURL, time.Minute); err != nil {
		return res, err
	}
	res.figure("ready after start on the existing data folder (exec to /readyz 200)", time.Since(p.Started).Seconds(), "s")
	f.proc = p
	time.Sleep(3 * time.Second)
	res.figure("RSS idle after restart on the existing data folder", rssMiB(p.Pid), "MiB")
	return res, nil
}
