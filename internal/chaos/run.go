// Package chaos is eventflow's fault-injection suite: it runs eventflow as
// separate OS processes per role against real PostgreSQL and Apache Kafka
// and an SMTP sink of its own, drives a bounded stream of orders, breaks
// things on purpose (the broker, the relays, the notifiers, the database,
// the mail server, the topic), and then compares what arrived with what
// committed. cmd/eventflow-chaos is its command.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventflow/eventflow/internal/backoff"
)

// Config is one run.
type Config struct {
	Scenario  string
	Seed      uint64
	Guarantee string
	// Orders are created at Rate per second; their status changes follow.
	Orders int
	Rate   float64
	// Settle bounds the wait, after the stream and the faults, for the
	// system to finish its work.
	Settle time.Duration
	// Bin is the eventflow binary.
	Bin string
	// Dir holds a folder per run with the processes' logs.
	Dir string
	// Keep keeps the database, topics and logs of a passing run.
	Keep     bool
	Services Services
	Out      io.Writer
}

// FaultRecord is one injected fault.
type FaultRecord struct {
	Name       string
	Start, End time.Duration // from the start of the stream
	Evidence   string
	Err        error
}

// Report is what one run found.
type Report struct {
	Config   Config
	Run      string
	LogDir   string
	Load     LoadSummary
	Faults   []FaultRecord
	Result   *Result
	Info     []string // figures that explain, but decide nothing
	Duration time.Duration
	// HarnessErr is a failure of the driver itself (a fault it could not
	// inject, a process that would not start): the run proves nothing.
	HarnessErr []string
}

// LoadSummary is what the stream's requests got.
type LoadSummary struct {
	Planned, Created, Abandoned int
	Requests, Failed, Retried   int64
	StreamSeconds               float64
	SubscriptionsCount          int
}

// Failed reports whether the run failed: an invariant, or the harness.
func (r *Report) Failed() bool { return len(r.HarnessErr) > 0 || r.Result == nil || r.Result.Failed() }

// runner is the state of one run.
type runner struct {
	cfg     Config
	run     string
	start   time.Time
	svc     Services
	db      *runDB
	cluster *Cluster
	sink    *Sink
	brokers []string
	topic   string
	dlq     string
	group   string

	mu       sync.Mutex
	injected int
	poison   int
	faults   []FaultRecord
	harness  []string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Out, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.harness = append(r.harness, msg)
	r.mu.Unlock()
	r.logf("HARNESS ERROR: %s", msg)
}

// Run plays one run and checks it. An error means the run could not be
// set up; a failed invariant is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	var rnd [4]byte
	rand.Read(rnd[:])
	r := &runner{
		cfg: cfg, run: "r" + hex.EncodeToString(rnd[:]), start: time.Now(), svc: cfg.Services,
		brokers: cfg.Services.Brokers,
	}
	r.topic = "chaos." + r.run + ".orders"
	r.dlq = "chaos." + r.run + ".dead-letter"
	r.group = "chaos-" + r.run + "-notifier"
	rep := &Report{Config: cfg, Run: r.run, LogDir: filepath.Join(cfg.Dir, r.run)}
	if err := os.MkdirAll(filepath.Join(rep.LogDir, "data"), 0o755); err != nil {
		return nil, err
	}
	rng := mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	orders := PlanOrders(rng, cfg.Orders, cfg.Rate)
	streamLen := time.Duration(float64(cfg.Orders)/cfg.Rate*float64(time.Second)) + 3*time.Second
	plan, err := schedule(cfg.Scenario, rng, streamLen)
	if err != nil {
		return nil, err
	}
	// Each fault draws from a generator of its own, seeded from the plan,
	// so that its choices do not depend on when the others ran.
	seeds := make([]uint64, len(plan))
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}

	r.logf("run %s: scenario %s, seed %d, guarantee %s, %d orders at %.1f/s, logs in %s",
		r.run, cfg.Scenario, cfg.Seed, cfg.Guarantee, cfg.Orders, cfg.Rate, rep.LogDir)
	dbURL, dropDB, err := r.svc.FreshDatabase(ctx, "eventflow_chaos")
	if err != nil {
		return nil, err
	}
	if r.db, err = openRunDB(ctx, dbURL); err != nil {
		dropDB()
		return nil, err
	}
	if r.sink, err = StartSink(); err != nil {
		r.db.Close()
		dropDB()
		return nil, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	unsubscribeKey := hex.EncodeToString(secret)
	r.cluster = NewCluster(cfg.Bin, r.env(rep.LogDir, unsubscribeKey), rep.LogDir, func(instance, roles string) []string {
		own := []string{"EVENTFLOW_DATABASE_URL=" + withAppName(dbURL, instance)}
		if strings.Contains(roles, "notifier") {
			own = append(own, "EVENTFLOW_SMTP_URL="+r.sink.URL(instance))
		}
		return own
	}, r.logf)
	cleanup := func(failed bool) {
		r.cluster.StopAll()
		r.sink.Close()
		r.db.Close()
		if cfg.Keep {
			r.logf("kept: database %s, topics %s and %s, logs in %s", dbURL, r.topic, r.dlq, rep.LogDir)
			return
		}
		if err := dropDB(); err != nil {
			r.logf("cleanup: %v", err)
		}
		if err := DeleteTopics(r.brokers, r.topic, r.dlq); err != nil {
			r.logf("cleanup: delete topics: %v", err)
		}
		DeleteGroup(r.brokers, r.group)
		if !failed {
			os.RemoveAll(rep.LogDir)
		}
	}

	// The processes: the APIs first (they migrate the database and create
	// the topics), the subscriptions, then two relays and two notifiers.
	api, err := r.cluster.Start(ctx, "api", "orders-api,notifications-api")
	if err != nil {
		cleanup(true)
		return nil, err
	}
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	apiClient := API{Base: api.BaseURL, Client: client}
	subs := Subscriptions()
	if err := apiClient.CreateSubscriptions(ctx, r.run, subs, []byte(unsubscribeKey)); err != nil {
		cleanup(true)
		return nil, err
	}
	for _, name := range []string{"relay-1", "relay-2"} {
		if _, err := r.cluster.Start(ctx, name, "relay"); err != nil {
			cleanup(true)
			return nil, err
		}
	}
	for _, name := range []string{"notifier-1", "notifier-2"} {
		if _, err := r.cluster.Start(ctx, name, "notifier"); err != nil {
			cleanup(true)
			return nil, err
		}
	}

	// The stream and the faults.
	r.start = time.Now()
	r.logf("stream starts: %d orders over %.0fs, %d faults planned", len(orders), streamLen.Seconds(), len(plan))
	loadCtx, cancelLoad := context.WithTimeout(ctx, streamLen+2*time.Minute)
	defer cancelLoad()
	statsCh := make(chan *LoadStats, 1)
	go func() { statsCh <- RunLoad(loadCtx, apiClient, orders, 32) }()
	faultsDone := r.playFaults(ctx, plan, seeds)
	stats := <-statsCh
	r.logf("stream done: %d orders created, %d abandoned, %d requests (%d failed, %d retried)",
		stats.Created.Load(), stats.Abandoned.Load(), stats.Requests.Load(), stats.Failed.Load(), stats.Retried.Load())
	<-faultsDone
	streamSeconds := time.Since(r.start).Seconds()

	settled := r.settle(ctx)
	rep.Result, rep.Info = r.collect(ctx, subs, settled)
	rep.Load = LoadSummary{
		Planned: len(orders), Created: int(stats.Created.Load()), Abandoned: int(stats.Abandoned.Load()),
		Requests: stats.Requests.Load(), Failed: stats.Failed.Load(), Retried: stats.Retried.Load(),
		StreamSeconds: streamSeconds, SubscriptionsCount: len(subs),
	}
	r.mu.Lock()
	rep.Faults = append([]FaultRecord(nil), r.faults...)
	rep.HarnessErr = append([]string(nil), r.harness...)
	r.mu.Unlock()
	rep.Duration = time.Since(r.start)
	cleanup(rep.Failed())
	return rep, nil
}

// env is the settings every process shares: nothing from the driver's
// own EVENTFLOW_* environment, the run's topics, group and transactional
// id, and timings short enough for a run of a minute or two.
func (r *runner) env(dir, unsubscribeKey string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTFLOW_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"EVENTFLOW_HTTP_ADDR=127.0.0.1:0",
		"EVENTFLOW_PUBLIC_URL=http://127.0.0.1:1",
		"EVENTFLOW_DATA_DIR="+filepath.Join(dir, "data"),
		"EVENTFLOW_KAFKA_BROKERS="+strings.Join(r.brokers, ","),
		"EVENTFLOW_DELIVERY_GUARANTEE="+r.cfg.Guarantee,
		"EVENTFLOW_ORDERS_TOPIC="+r.topic,
		"EVENTFLOW_DEAD_LETTER_TOPIC="+r.dlq,
		"EVENTFLOW_NOTIFIER_GROUP="+r.group,
		"EVENTFLOW_RELAY_TRANSACTIONAL_ID=chaos-"+r.run+"-relay",
		"EVENTFLOW_TOPIC_PARTITIONS=6",
		"EVENTFLOW_RELAY_BATCH_SIZE=20",
		"EVENTFLOW_RELAY_POLL_INTERVAL=200ms",
		"EVENTFLOW_RELAY_LEASE_TTL=5s",
		"EVENTFLOW_MAIL_FROM=eventflow <notifications@chaos.eventflow.localhost>",
		"EVENTFLOW_SMTP_TIMEOUT=5s",
		"EVENTFLOW_DELIVERY_WORKERS=4",
		"EVENTFLOW_DELIVERY_MAX_ATTEMPTS=100000",
		"EVENTFLOW_DELIVERY_MAX_AGE=1h",
		"EVENTFLOW_DELIVERY_BACKOFF=200ms",
		"EVENTFLOW_DELIVERY_MAX_BACKOFF=2s",
		"EVENTFLOW_DELIVERY_POLL_INTERVAL=200ms",
		"EVENTFLOW_DELIVERY_LEASE=12s",
		"EVENTFLOW_EVENT_TTL=1h",
		"EVENTFLOW_ALLOW_SCOPE_ALL=true",
		"EVENTFLOW_UNSUBSCRIBE_SECRET="+unsubscribeKey,
		"EVENTFLOW_SHUTDOWN_TIMEOUT=10s",
		"EVENTFLOW_LOG_FORMAT=json",
		"EVENTFLOW_LOG_LEVEL=info",
	)
}

// withAppName names the process in pg_stat_activity, so the driver can
// tell whose statement waits for its locks.
func withAppName(dbURL, instance string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	q := u.Query()
	q.Set("application_name", instance)
	u.RawQuery = q.Encode()
	return u.String()
}

// playFaults injects the plan's faults at their times, each once its
// resources are free, and closes the returned channel when all are done.
func (r *runner) playFaults(ctx context.Context, plan []scheduled, seeds []uint64) <-chan struct{} {
	locks := map[string]*sync.Mutex{}
	for _, f := range faults {
		for _, res := range f.resources {
			if locks[res] == nil && res != allResources {
				locks[res] = &sync.Mutex{}
			}
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range plan {
		wg.Go(func() {
			if !sleepUntil(ctx, r.start.Add(s.at)) {
				return
			}
			res := append([]string(nil), s.fault.resources...)
			if slices.Contains(res, allResources) {
				res = slices.Collect(maps.Keys(locks))
			}
			// One order of locking for all, so that none waits in a circle.
			sortStrings(res)
			for _, name := range res {
				locks[name].Lock()
				defer locks[name].Unlock()
			}
			rec := FaultRecord{Name: s.fault.name, Start: time.Since(r.start)}
			r.logf("fault %s: injecting", s.fault.name)
			fctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
			rec.Evidence, rec.Err = s.fault.run(fctx, r, mrand.New(mrand.NewPCG(seeds[i], 1)))
			cancel()
			rec.End = time.Since(r.start)
			if rec.Err != nil {
				r.errorf("fault %s: %v", s.fault.name, rec.Err)
			} else {
				r.logf("fault %s: %s", s.fault.name, rec.Evidence)
			}
			r.mu.Lock()
			r.faults = append(r.faults, rec)
			r.mu.Unlock()
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// settle undoes what the faults may have left broken, then waits until the
// system has done its work: the outbox empty, every event in the topic in
// the inbox, no delivery pending, and the sink quiet. It reports whether
// that happened within Settle.
func (r *runner) settle(ctx context.Context) bool {
	r.logf("settling: everything back up, waiting for the work to finish (at most %s)", r.cfg.Settle)
	r.sink.SetHold(0)
	if err := r.sink.SetMode(SinkUp, 0); err != nil {
		r.errorf("sink: %v", err)
	}
	if err := r.svc.StartKafka(ctx); err != nil {
		r.errorf("kafka: %v", err)
	}
	for _, p := range []struct{ name, roles string }{
		{"relay-1", "relay"}, {"relay-2", "relay"}, {"notifier-1", "notifier"}, {"notifier-2", "notifier"},
	} {
		if cur := r.cluster.Get(p.name); cur == nil || cur.Exited() {
			r.logf("%s is not running; starting it", p.name)
			if _, err := r.cluster.StartRetry(ctx, p.name, p.roles, 3*time.Minute); err != nil {
				r.errorf("start %s: %v", p.name, err)
			}
		}
	}
	deadline := time.Now().Add(r.cfg.Settle)
	wait := func(what string, done func() (bool, error)) bool {
		for {
			ok, err := done()
			if ok {
				return true
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				r.logf("not settled: %s (%v)", what, err)
				return false
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if !wait("the outbox is not empty", func() (bool, error) {
		n, err := r.db.Outbox(ctx)
		return err == nil && n == 0, err
	}) {
		return false
	}
	backoff.Sleep(ctx, time.Second) // a batch deleted before publishing (at-most-once) may still be on its way
	if !wait("a transaction is open in the topic", func() (bool, error) {
		open, err := OpenTransactions(ctx, r.brokers, r.topic)
		if err == nil && len(open) > 0 {
			err = fmt.Errorf("%s", strings.Join(open, ", "))
		}
		return err == nil, err
	}) {
		return false
	}
	recs, err := ReadTopic(ctx, r.brokers, r.topic, true)
	if err != nil {
		r.errorf("read topic: %v", err)
		return false
	}
	ids := eventIDs(recs)
	if !wait("events in the topic not yet in the inbox", func() (bool, error) {
		n, err := r.db.InboxHas(ctx, ids)
		return err == nil && n == len(ids), err
	}) {
		return false
	}
	last, since := -1, time.Now()
	return wait("deliveries still pending, or the SMTP sink still receiving", func() (bool, error) {
		n, err := r.db.Deliveries(ctx, "pending")
		if c := r.sink.Count(); c != last {
			last, since = c, time.Now()
		}
		return err == nil && n == 0 && time.Since(since) > 2*time.Second, err
	})
}

// collect reads the evidence and checks it.
func (r *runner) collect(ctx context.Context, subs []*SubSpec, settled bool) (*Result, []string) {
	ev := Evidence{Guarantee: r.cfg.Guarantee, Subs: subs, Settled: settled, MarkFailed: map[string]bool{}}
	var err error
	if ev.Orders, err = r.db.Orders(ctx); err != nil {
		r.errorf("read orders: %v", err)
	}
	if ev.Records, err = ReadTopic(ctx, r.brokers, r.topic, true); err != nil {
		r.errorf("read topic: %v", err)
	}
	if ev.DeadLetters, err = ReadTopic(ctx, r.brokers, r.dlq, true); err != nil {
		r.errorf("read dead letters: %v", err)
	}
	uncommitted, err := ReadTopic(ctx, r.brokers, r.topic, false)
	if err != nil {
		r.errorf("read topic (read_uncommitted): %v", err)
	}
	if ev.Dead, err = r.db.Deliveries(ctx, "dead"); err != nil {
		r.errorf("count dead deliveries: %v", err)
	}
	if ev.Pending, err = r.db.Deliveries(ctx, "pending"); err != nil {
		r.errorf("count pending deliveries: %v", err)
	}
	r.mu.Lock()
	ev.Injected, ev.Poison = r.injected, r.poison
	r.mu.Unlock()
	ev.Emails = r.sink.Messages()
	ev.Kills = r.cluster.Kills()
	ev.Crashed = r.cluster.Unexpected()

	// What the processes said: resends after a failed mark, events lost by
	// the at-most-once relay, duplicates the inbox dropped.
	lostByRelay, leaseLost := 0, 0
	r.cluster.scanLogs(func(line []byte) {
		var l struct {
			Msg      string `json:"msg"`
			Delivery string `json:"delivery"`
			Count    int    `json:"count"`
		}
		if json.Unmarshal(line, &l) != nil {
			return
		}
		switch {
		case strings.HasPrefix(l.Msg, "sent but could not record it"):
			ev.MarkFailed[l.Delivery] = true
		case strings.HasPrefix(l.Msg, "events lost under the at-most-once guarantee"):
			lostByRelay += l.Count
		case strings.HasPrefix(l.Msg, "relay lost its lease"):
			leaseLost++
		}
	})
	res := Check(ev)
	info := []string{
		fmt.Sprintf("records in the topic read_uncommitted: %d; read_committed: %d (the difference is aborted transactions and poison/injected records are in both)", len(uncommitted), len(ev.Records)),
		fmt.Sprintf("deliveries the notifiers logged as sent but not recorded (resent with the same Message-ID): %d", len(ev.MarkFailed)),
		fmt.Sprintf("events the relay logged as lost (at-most-once publish failed after the delete): %d", lostByRelay),
		fmt.Sprintf("times a live relay found its lease taken over (it stalled past the lease; the other may publish its batch again): %d", leaseLost),
		fmt.Sprintf("processes SIGKILLed: %d, stopped with SIGTERM: %d; starts that exited at once (a service they need was down; started again): %d",
			countSignal(ev.Kills, "SIGKILL"), countSignal(ev.Kills, "SIGTERM"), r.cluster.FailedStarts()),
	}
	if n, err := r.inboxDuplicates(); err == nil {
		info = append(info, fmt.Sprintf("events the running notifiers found in the inbox already (redelivered, no new delivery): %d", n))
	}
	return res, info
}

// inboxDuplicates sums eventflow_notifier_events_total{outcome="duplicate"}
// over the notifiers running now (the killed ones took their counts along).
func (r *runner) inboxDuplicates() (int, error) {
	total := 0
	for _, p := range r.cluster.Running("notifier-") {
		res, err := http.Get(p.BaseURL + "/metrics")
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, `eventflow_notifier_events_total{outcome="duplicate"} `) {
				var n float64
				fmt.Sscan(strings.Fields(line)[1], &n)
				total += int(n)
			}
		}
	}
	return total, nil
}

func countSignal(kills []Kill, sig string) int {
	n := 0
	for _, k := range kills {
		if k.Signal == sig {
			n++
		}
	}
	return n
}
