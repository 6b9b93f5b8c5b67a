package notifications

import (
	"context"
	"errors"

	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventflow/eventflow/internal/backoff"
)

// WorkerConfig tunes the delivery workers.
type WorkerConfig struct {
	// Concurrency is how many deliveries are sent at once.
	Concurrency int
	// PollInterval is how often the workers look for due deliveries when
	// nothing woke them (retries come due this way).
	PollInterval time.Duration
	// Lease is how long a claimed delivery stays hidden from other workers;
	// a worker that dies mid-send leaves it to be retried after this.
	Lease time.Duration
	// MaxAttempts and MaxAge bound retries of temporary failures: a
	// delivery past either goes dead.
	MaxAttempts int
	MaxAge      time.Duration
	// BaseBackoff and MaxBackoff shape the exponential backoff between
	// attempts; each wait is jittered between half and all of its value.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// pausedRecheck is how often a delivery held by a paused subscription is
// looked at again.
const pausedRecheck = time.Minute

// Worker sends deliveries from the delivery records: by email or webhook,
// with retries and backoff on temporary failures, dead on permanent ones.
type Worker struct {
	store    Store
	render   *Renderer
	email    EmailSender
	webhook  WebhookSender
	cfg      WorkerConfig
	metrics  *workerMetrics
	wake     chan struct{}
	inFlight sync.WaitGroup
}

// NewWorker returns a Worker. reg may be nil.
func NewWorker(store Store, render *Renderer, email EmailSender, webhook WebhookSender, reg prometheus.Registerer, cfg WorkerConfig) *Worker {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Worker{
		store: store, render: render, email: email, webhook: webhook, cfg: cfg,
		metrics: newWorkerMetrics(reg),
		wake:    make(chan struct{}, 1),
	}
}

// Wake makes the worker look for due deliveries now.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Worker) now() time.Time { return w.cfg.Now().UTC().Truncate(time.Microsecond) }

// Run sends deliveries until ctx ends, then waits for the sends in flight.
func (w *Worker) Run(ctx context.Context) error {
	defer w.inFlight.Wait()
	slots := make(chan struct{}, w.cfg.Concurrency)
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	for {
		free := w.cfg.Concurrency - len(slots)
		jobs, err := w.store.ClaimDeliveries(ctx, w.now(), free, w.cfg.Lease)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.cfg.Logger.Warn("claim deliveries", "err", err)
		}
		for _, j := range jobs {
			slots <- struct{}{}
			w.inFlight.Add(1)
			go func() {
				defer func() { <-slots; w.inFlight.Done(); w.Wake() }()
				// A send is not cut short by shutdown (ending it midway
				// would only make a retry), but it must end well within
				// its lease, or another worker would send it too.
				sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Lease/2)
				defer cancel()
				w.deliver(sendCtx, j)
			}()
		}
		if len(jobs) == free && free > 0 {
			continue // there may be more due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-poll.C:
		}
	}
}

// deliver sends one job and records the outcome.
func (w *Worker) deliver(ctx context.Context, j Job) {
	d := j.Delivery
	switch {
	case j.Subscription.ID == "":
		w.finish(ctx, j, errors.New("not sent: the subscription was deleted"), true)
		return
	case j.Subscription.Status == StatusUnsubscribed:
		w.finish(ctx, j, errors.New("not sent: the subscriber unsubscribed"), true)
		return
	case j.Subscription.Status == StatusPaused:
		// Held, not dropped: resuming the subscription sends it.
		if err := w.store.MarkFailed(ctx, d.ID, "held: the subscription is paused", w.now().Add(pausedRecheck), false); err != nil {
			w.cfg.Logger.Error("hold delivery of a paused subscription", "delivery", d.ID, "err", err)
		}
		return
	}
	start := time.Now()
	err := w.send(ctx, j)
	w.metrics.sendSeconds.WithLabelValues(string(d.Channel)).Observe(time.Since(start).Seconds())
	if err == nil {
		if err := w.store.MarkSent(ctx, d.ID, w.now()); err != nil {
			// The message went out but the record says pending: it will be
			// sent again, with the same Message-ID / webhook-id. This is the
			// one window no system can close; it is counted.
			w.metrics.unrecorded.Inc()
			w.cfg.Logger.Error("sent but could not record it; it will be sent again", "delivery", d.ID, "err", err)
			return
		}
		w.metrics.deliveries.WithLabelValues(string(d.Channel), "sent").Inc()
		w.metrics.eventToSent.WithLabelValues(string(d.Channel)).Observe(time.Since(j.Event.Time).Seconds())
		return
	}
	dead := IsPermanent(err) || d.Attempts >= w.cfg.MaxAttempts || w.now().Sub(d.CreatedAt) >= w.cfg.MaxAge
	w.finish(ctx, j, err, dead)
}

func (w *Worker) send(ctx context.Context, j Job) error {
	switch j.Delivery.Channel {
	case ChannelEmail:
		m, err := w.render.Email(j)
		if err != nil {
			return Permanent(err)
		}
		return w.email.SendEmail(ctx, m)
	case ChannelWebhook:
		c, err := w.render.WebhookCall(j, w.now())
		if err != nil {
			return Permanent(err)
		}
		return w.webhook.CallWebhook(ctx, c)
	}
	return Permanent(fmt.Errorf("unknown channel %q", j.Delivery.Channel))
}

// finish records a failed attempt: a retry after a backoff, or dead.
func (w *Worker) finish(ctx context.Context, j Job, sendErr error, dead bool) {
	d := j.Delivery
	next := w.now().Add(backoff.Jittered(d.Attempts, w.cfg.BaseBackoff, w.cfg.MaxBackoff))
	if err := w.store.MarkFailed(ctx, d.ID, truncate(sendErr.Error(), 1000), next, dead); err != nil {
		w.cfg.Logger.Error("record failed delivery", "delivery", d.ID, "err", err)
		return
	}
	if dead {
		w.metrics.deliveries.WithLabelValues(string(d.Channel), "dead").Inc()
		w.cfg.Logger.Warn("delivery is dead", "delivery", d.ID, "attempts", d.Attempts, "err", sendErr)
		return
	}
	w.metrics.deliveries.WithLabelValues(string(d.Channel), "retry").Inc()
	w.cfg.Logger.Info("delivery failed; will retry", "delivery", d.ID, "attempts", d.Attempts, "next", next, "err", sendErr)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

type workerMetrics struct {
	deliveries  *prometheus.CounterVec
	sendSeconds *prometheus.HistogramVec
	eventToSent *prometheus.HistogramVec
	unrecorded  prometheus.Counter
}

func newWorkerMetrics(reg prometheus.Registerer) *workerMetrics {
	m := &workerMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventflow_deliveries_total",
			Help: "Delivery attempts by channel and outcome: sent, retry (a temporary failure), dead.",
		}, []string{"channel", "outcome"}),
		sendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventflow_delivery_send_seconds",
			Help:    "Time to send one notification (SMTP transaction or webhook call).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"channel"}),
		eventToSent: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventflow_event_to_sent_seconds",
			Help:    "Time from an event's commit to its notification being accepted.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2.5, 14),
		}, []string{"channel"}),
		unrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventflow_deliveries_sent_unrecorded_total",
			Help: "Notifications accepted by the server whose success could not be recorded: they are sent again (same Message-ID).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.sendSeconds, m.eventToSent, m.unrecorded)
	}
	return m
}

var deliveriesDesc = prometheus.NewDesc("eventflow_deliveries",
	"Deliveries in the database by status (pending, sent, dead).", []string{"status"}, nil)

// DeliveryCollector reports the deliveries by status at each scrape: the
// dead count and the pending backlog whichever process sent them.
type DeliveryCollector struct{ store Store }

// NewDeliveryCollector returns a collector over store.
func NewDeliveryCollector(store Store) DeliveryCollector { return DeliveryCollector{store: store} }

// Describe implements prometheus.Collector.
func (c DeliveryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deliveriesDesc }

// Collect implements prometheus.Collector.
func (c DeliveryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.DeliveryCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(deliveriesDesc, err)
		return
	}
	for _, s := range []DeliveryStatus{DeliveryPending, DeliverySent, DeliveryDead} {
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
