package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/internal/backoff"
)

// RelayConfig tunes a Relay.
type RelayConfig struct {
	// BatchSize bounds the records published at once, in one Kafka
	// transaction under exactly-once. The relay holds up to two batches in
	// memory: the one the broker takes and the next one, read meanwhile.
	BatchSize int
	// PollInterval is how often the relay looks for records when no commit
	// woke it: the fallback for missed wake-ups and for writers in other
	// processes that cannot wake it.
	PollInterval time.Duration
	// Holder names this relay in the lease that elects the one active relay.
	Holder string
	// LeaseTTL is how long the lease lasts unless renewed. A standby relay
	// takes over within about this long after the active one dies.
	LeaseTTL time.Duration
	// DeleteBeforePublish deletes records before publishing them: the
	// at-most-once guarantee, where a crash or a failed publish loses the
	// events instead of publishing them twice.
	DeleteBeforePublish bool
	Logger              *slog.Logger
	Metrics             *RelayMetrics
}

// leaseName is the lease that elects the active relay.
const leaseName = "outbox-relay"

// Relay moves committed events from the outbox to the broker.
//
// Only the relay holding the lease publishes, so events leave in outbox
// order and per-order order holds however many relays run; the others stand
// by and take over when the lease expires. A relay deletes records only after
// the broker acknowledged them, so a crash at any point publishes an event
// again rather than losing it.
type Relay struct {
	store Store
	pub   Publisher
	cfg   RelayConfig
	log   *slog.Logger
}

// NewRelay returns a relay from store to pub.
func NewRelay(store Store, pub Publisher, cfg RelayConfig) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{store: store, pub: pub, cfg: cfg, log: cfg.Logger.With("component", "relay", "holder", cfg.Holder)}
}

// Run relays until ctx ends, then gives up the lease.
func (r *Relay) Run(ctx context.Context) error {
	committed := r.store.Committed(ctx)
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	defer func() {
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.store.ReleaseLease(releaseCtx, leaseName, r.cfg.Holder); err != nil {
			r.log.Warn("release lease", "err", err)
		}
	}()

	var (
		leading  bool
		renewed  time.Time
		failures int
	)
	for {
		if !leading || time.Since(renewed) > r.cfg.LeaseTTL/3 {
			held, err := r.store.AcquireLease(ctx, leaseName, r.cfg.Holder, r.cfg.LeaseTTL)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				r.log.Warn("acquire lease", "err", err)
				held = false
			case held && !leading:
				r.log.Info("relay is active")
			case !held && leading:
				r.log.Warn("relay lost its lease; standing by")
			}
			leading, renewed = held, time.Now()
		}
		if leading {
			more, err := r.relayBatches(ctx, renewed.Add(r.cfg.LeaseTTL/3))
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				failures++
				r.log.Warn("relay batch failed", "err", err, "failures", failures)
				if !backoff.Sleep(ctx, backoff.Jittered(failures, 100*time.Millisecond, 5*time.Second)) {
					return nil
				}
				continue
			}
			failures = 0
			if more {
				continue
			}
		}
		wait := r.cfg.LeaseTTL / 3
		if leading {
			wait = r.cfg.LeaseTTL/3 - time.Since(renewed)
		}
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-committed:
		case <-poll.C:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// relayBatches publishes waiting records batch after batch until the outbox
// holds no full batch, ctx ends, or renewBy passes (the lease is due for
// renewal). It reports whether more may be waiting.
//
// While the broker takes one batch, the relay deletes the batch before it
// (acknowledged already) and reads the one after it, so that the database's
// round trips hide behind the broker's. Batches still go to the broker one at
// a time and in Seq order, and a batch is deleted only once acknowledged.
func (r *Relay) relayBatches(ctx context.Context, renewBy time.Time) (bool, error) {
	if r.cfg.DeleteBeforePublish {
		return r.relayBatchDeletingFirst(ctx)
	}
	batch, err := r.store.Pending(ctx, r.cfg.BatchSize)
	if err != nil || len(batch) == 0 {
		return false, err
	}
	var acked []int64 // the previous batch: acknowledged, not deleted yet
	for {
		ahead := make(chan readAhead, 1)
		go func(acked []int64, after int64, held int) {
			var ra readAhead
			if ra.deleteErr = r.deletePublished(ctx, acked); ra.deleteErr == nil {
				ra.next, ra.readErr = r.store.PendingAfter(ctx, after, held, r.cfg.BatchSize)
			}
			ahead <- ra
		}(acked, batch[len(batch)-1].Seq, len(batch))
		pubErr := r.publish(ctx, batch)
		ra := <-ahead
		if ra.deleteErr != nil {
			// The previous batch, and this one if it went out, will be
			// published again: consumers deduplicate by event id.
			return false, ra.deleteErr
		}
		if pubErr != nil {
			return false, pubErr
		}
		acked = seqs(batch)
		if len(ra.next) > 0 && ra.readErr == nil && ctx.Err() == nil && time.Now().Before(renewBy) {
			batch = ra.next
			continue
		}
		if err := r.deletePublished(ctx, acked); err != nil {
			return false, err
		}
		if ra.readErr != nil && ctx.Err() == nil {
			return false, fmt.Errorf("read outbox ahead: %w", ra.readErr)
		}
		// An empty read-ahead after a full batch may mean a record below the
		// batch committed late: Pending, from the start, finds it.
		return len(batch) == r.cfg.BatchSize || len(ra.next) > 0, nil
	}
}

// readAhead is what the database side of relayBatches did while the broker
// took a batch.
type readAhead struct {
	deleteErr error
	next      []Record
	readErr   error
}

// relayBatchDeletingFirst deletes one batch of waiting records and then
// publishes it: the at-most-once guarantee. It reports whether a full batch
// was read, so more may be waiting.
func (r *Relay) relayBatchDeletingFirst(ctx context.Context) (bool, error) {
	records, err := r.store.Pending(ctx, r.cfg.BatchSize)
	if err != nil || len(records) == 0 {
		return false, err
	}
	if err := r.store.Delete(ctx, seqs(records)); err != nil {
		return false, err
	}
	if err := r.publish(ctx, records); err != nil {
		r.log.Error("events lost under the at-most-once guarantee", "count", len(records), "err", err)
		// Waiting for the next poll, rather than going on at once, keeps a
		// broker outage from emptying the whole outbox into the void.
		return false, nil
	}
	return len(records) == r.cfg.BatchSize, nil
}

// publish hands records to the publisher and waits for the broker's
// acknowledgement.
func (r *Relay) publish(ctx context.Context, records []Record) error {
	events := make([]event.Event, len(records))
	for i, rec := range records {
		events[i] = rec.Event
	}
	// The batch is published on a context that shutdown does not cut:
	// a relay finishes its batch rather than abandon it midway. It is
	// bounded by the lease, so that a publish hung past the lease cannot
	// overlap the batch of the relay that takes over.
	publishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LeaseTTL)
	defer cancel()
	start := time.Now()
	if err := r.pub.Publish(publishCtx, events); err != nil {
		r.cfg.Metrics.failed()
		return fmt.Errorf("publish %d events: %w", len(events), err)
	}
	r.cfg.Metrics.published(len(events), time.Since(start))
	return nil
}

// deletePublished deletes acknowledged records. The delete gets a moment of
// its own, apart from ctx: a publish that used up the lease, or a shutdown,
// must not leave its acknowledged batch to be published again.
func (r *Relay) deletePublished(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	deleteCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.store.Delete(deleteCtx, seqs); err != nil {
		return fmt.Errorf("delete %d published records: %w", len(seqs), err)
	}
	return nil
}

func seqs(records []Record) []int64 {
	s := make([]int64, len(records))
	for i, rec := range records {
		s[i] = rec.Seq
	}
	return s
}

// RelayMetrics are the relay's Prometheus metrics. A nil *RelayMetrics
// records nothing.
type RelayMetrics struct {
	publishedTotal prometheus.Counter
	failuresTotal  prometheus.Counter
	batchSize      prometheus.Histogram
	publishLatency prometheus.Histogram
}

// NewRelayMetrics registers the relay's metrics, and the outbox backlog
// gauges read from store at each scrape, with reg.
func NewRelayMetrics(reg prometheus.Registerer, store Store) *RelayMetrics {
	m := &RelayMetrics{
		publishedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventflow_relay_published_events_total",
			Help: "Events the relay published and the broker acknowledged.",
		}),
		failuresTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventflow_relay_publish_failures_total",
			Help: "Batches whose publishing failed (they are retried).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventflow_relay_batch_size",
			Help:    "Events per published batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventflow_relay_publish_seconds",
			Help:    "Time from handing a batch to the producer until the broker acknowledged all of it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
	}
	reg.MustRegister(m.publishedTotal, m.failuresTotal, m.batchSize, m.publishLatency, backlogCollector{store: store})
	return m
}

func (m *RelayMetrics) published(n int, latency time.Duration) {
	if m == nil {
		return
	}
	m.publishedTotal.Add(float64(n))
	m.batchSize.Observe(float64(n))
	m.publishLatency.Observe(latency.Seconds())
}

func (m *RelayMetrics) failed() {
	if m != nil {
		m.failuresTotal.Inc()
	}
}

var (
	backlogDesc = prometheus.NewDesc("eventflow_outbox_backlog_events",
		"Events committed but not yet published.", nil, nil)
	oldestDesc = prometheus.NewDesc("eventflow_outbox_oldest_unpublished_age_seconds",
		"Age of the oldest event not yet published; 0 when none waits.", nil, nil)
)

// backlogCollector reads the outbox backlog when Prometheus scrapes, so the
// figures are current even when no relay runs.
type backlogCollector struct{ store Store }

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- backlogDesc; ch <- oldestDesc }

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := c.store.Backlog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(backlogDesc, err)
		return
	}
	age := 0.0
	if !b.Oldest.IsZero() {
		age = time.Since(b.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(b.Count))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
