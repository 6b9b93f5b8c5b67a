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
	// BatchSize bounds the records read and published at once.
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
			more, err := r.relayBatch(ctx)
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

// relayBatch publishes one batch of waiting records and deletes them. It
// reports whether a full batch was read, so more may be waiting.
func (r *Relay) relayBatch(ctx context.Context) (bool, error) {
	records, err := r.store.Pending(ctx, r.cfg.BatchSize)
	if err != nil || len(records) == 0 {
		return false, err
	}
	seqs := make([]int64, len(records))
	events := make([]event.Event, len(records))
	for i, rec := range records {
		seqs[i], events[i] = rec.Seq, rec.Event
	}
	if r.cfg.DeleteBeforePublish {
		if err := r.store.Delete(ctx, seqs); err != nil {
			return false, err
		}
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
		if r.cfg.DeleteBeforePublish {
			r.log.Error("events lost under the at-most-once guarantee", "count", len(events), "err", err)
			return false, nil
		}
		return false, fmt.Errorf("publish %d events: %w", len(events), err)
	}
	r.cfg.Metrics.published(len(events), time.Since(start))
	if !r.cfg.DeleteBeforePublish {
		// The delete gets a moment of its own: a publish that used up the
		// lease must not leave its acknowledged batch to be published again.
		deleteCtx, cancelDelete := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancelDelete()
		if err := r.store.Delete(deleteCtx, seqs); err != nil {
			return false, fmt.Errorf("delete %d published records: %w", len(seqs), err)
		}
	}
	return len(records) == r.cfg.BatchSize, nil
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
