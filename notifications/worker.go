package notifications

import (
	"context"
	"errors"

	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventflow/eventflow/internal/backoff"
)

// WorkerConfig tunes the delivery workers.
type WorkerConfig struct {
	// Concurrency is how many deliveries are sent at once.
	Concurrency int
	// ClaimBatch is how many deliveries one claim may take beyond those
	// being sent, queued for the senders: a claim is a transaction, so
	// claiming many at once keeps it off the path of each send. Fewer are
	// queued when sends are slow, so that a queued delivery is still sent
	// well within its lease. DefaultClaimBatch when zero.
	ClaimBatch int
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

// DefaultClaimBatch is WorkerConfig.ClaimBatch when zero.
const DefaultClaimBatch = 256

// maxMarkBatch bounds the deliveries one MarkSentBatch records.
const maxMarkBatch = 1024

// pausedRecheck is how often a delivery held by a paused subscription is
// looked at again.
const pausedRecheck = time.Minute

// Worker sends deliveries from the delivery records: by email or webhook,
// with retries and backoff on temporary failures, dead on permanent ones.
type Worker struct {
	store   Store
	render  *Renderer
	email   EmailSender
	webhook WebhookSender
	cfg     WorkerConfig
	metrics *workerMetrics
	wake    chan struct{}

	// queue holds claimed jobs for the senders: from the claims of Run,
	// and handed straight from the notifier of this process (handOff).
	// handMu keeps a hand-off from sending on it once Run has closed it.
	queue   chan claimedJob
	handMu  sync.Mutex
	stopped bool

	// outstanding counts the deliveries claimed or reserved and not yet
	// finished (about to be queued, queued or being sent); sendNanos is a
	// moving average of how long a send takes, which bounds how many may
	// wait in the queue.
	outstanding atomic.Int64
	sendNanos   atomic.Int64
	// backlog says the last look at the database may have left due
	// deliveries behind (no room to claim, a claim cut at its limit, or
	// an error): room freed by a send is then worth a claim. Otherwise
	// new ones come by hand-over, a wake from the notifier (Recorded),
	// a sent mark (a later delivery of the same order) or the poll.
	backlog atomic.Bool
}

// claimedJob is a job in the queue, with the time its lease began.
type claimedJob struct {
	job       Job
	claimedAt time.Time
}

// sentJob is a job the server accepted, waiting to be recorded as sent.
type sentJob struct {
	job Job
	at  time.Time
}

// NewWorker returns a Worker. reg may be nil.
func NewWorker(store Store, render *Renderer, email EmailSender, webhook WebhookSender, reg prometheus.Registerer, cfg WorkerConfig) *Worker {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.ClaimBatch <= 0 {
		cfg.ClaimBatch = DefaultClaimBatch
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
		// Outstanding deliveries never exceed two capacities (see Run), so
		// a send to it never blocks.
		queue: make(chan claimedJob, 2*(cfg.ClaimBatch+cfg.Concurrency)),
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
//
// It is a pipeline of three stages, so that no send waits for the
// database: one loop claims deliveries in batches into a queue (the
// notifier of the same process adds the deliveries it hands over);
// Concurrency senders take them from the queue and send them; one recorder
// marks the accepted ones sent, as many as have come in since its last
// statement, in one statement. A delivery is recorded as sent only after
// the server accepted it, and is sent only within half its lease from the
// claim (the send's deadline), so another worker never sends it too.
func (w *Worker) Run(ctx context.Context) error {
	sent := make(chan sentJob, w.cfg.ClaimBatch+w.cfg.Concurrency)
	var senders, recorder sync.WaitGroup
	recorder.Go(func() { w.record(ctx, sent) })
	for range w.cfg.Concurrency {
		senders.Go(func() { w.sendQueued(ctx, w.queue, sent) })
	}
	defer func() {
		w.handMu.Lock()
		w.stopped = true
		close(w.queue)
		w.handMu.Unlock()
		senders.Wait()
		close(sent)
		recorder.Wait()
	}()
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	for {
		limit := w.claimLimit()
		// Until a claim finds all that is due, there may be deliveries
		// waiting in the database for room: each finished send wakes
		// this loop then, and only then.
		w.backlog.Store(limit == 0)
		if limit > 0 {
			now := w.now()
			jobs, err := w.store.ClaimDeliveries(ctx, now, limit, w.cfg.Lease)
			if ctx.Err() != nil {
				w.release(jobs)
				return nil
			}
			if err != nil {
				w.cfg.Logger.Warn("claim deliveries", "err", err)
			}
			w.backlog.Store(err != nil || len(jobs) == limit)
			// Counted once claimed, not reserved before: a reservation
			// held for the claim's round trips would leave no room for
			// the notifier's hand-overs meanwhile. A hand-over racing the
			// claim may take the outstanding past capacity by its size,
			// which the queue's second capacity holds.
			w.outstanding.Add(int64(len(jobs)))
			for _, j := range jobs {
				w.queue <- claimedJob{job: j, claimedAt: now} // never blocks, as above
			}
			if len(jobs) == limit {
				continue // there may be more due
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-poll.C:
		}
	}
}

// claimLimit is how many deliveries to claim now, or 0 to wait: claims are
// made only once there is room for half a batch, so that each takes many.
func (w *Worker) claimLimit() int {
	most := w.capacity()
	room := most - int(w.outstanding.Load())
	if room <= 0 || (room < min(w.cfg.ClaimBatch, most)/2 && w.outstanding.Load() > 0) {
		return 0
	}
	return room
}

// capacity is how many deliveries may be outstanding (queued or being
// sent): ClaimBatch beyond the senders while sends are fast, fewer when
// they are slow, so that the last one queued is still sent within a
// quarter of the lease.
func (w *Worker) capacity() int {
	most := w.cfg.Concurrency + w.cfg.ClaimBatch
	if avg := time.Duration(w.sendNanos.Load()); avg > 0 {
		perSender := int64(w.cfg.Lease / 4 / avg)
		most = int(min(int64(most), max(int64(w.cfg.Concurrency), int64(w.cfg.Concurrency)*perSender)))
	}
	return most
}

// reserve takes room in the queue for up to n deliveries that the notifier
// of this process will hand over born claimed, and returns how many it
// took; what it does not hand over it gives back with unreserve.
func (w *Worker) reserve(n int) int {
	for {
		out := w.outstanding.Load()
		k := min(int64(n), int64(w.capacity())-out)
		if k <= 0 {
			return 0
		}
		if w.outstanding.CompareAndSwap(out, out+k) {
			return int(k)
		}
	}
}

// unreserve gives back room taken by reserve and not used.
func (w *Worker) unreserve(n int) {
	if n > 0 {
		w.outstanding.Add(-int64(n))
	}
}

// handOff queues jobs the notifier recorded as claimed by this worker at
// claimedAt, in room it reserved for them. Once Run has stopped, the jobs
// are released instead, due again at once for any worker.
func (w *Worker) handOff(jobs []Job, claimedAt time.Time) {
	w.handMu.Lock()
	if !w.stopped {
		for _, j := range jobs {
			w.queue <- claimedJob{job: j, claimedAt: claimedAt} // never blocks: reserved
		}
		w.handMu.Unlock()
		return
	}
	w.handMu.Unlock()
	w.unreserve(len(jobs))
	w.release(jobs)
}

// sendQueued is one sender: it sends queued jobs until the queue is closed,
// and passes the accepted ones to the recorder. At shutdown it releases the
// jobs it has not started, rather than leave them to their lease.
func (w *Worker) sendQueued(ctx context.Context, queue <-chan claimedJob, sent chan<- sentJob) {
	for cj := range queue {
		if ctx.Err() != nil {
			w.release([]Job{cj.job})
		} else {
			// A send is not cut short by shutdown (ending it midway would
			// only make a retry), but it must end well within its lease,
			// counted from the claim, or another worker would send it too.
			sendCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), cj.claimedAt.Add(w.cfg.Lease/2))
			if w.deliver(sendCtx, cj.job) {
				sent <- sentJob{job: cj.job, at: w.now()}
			}
			cancel()
		}
		w.outstanding.Add(-1)
		if w.backlog.Load() {
			w.Wake()
		}
	}
}

// release makes claimed jobs that were not sent due again at once, for this
// or another worker; the attempt the claim counted stays counted.
func (w *Worker) release(jobs []Job) {
	for _, j := range jobs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := w.store.MarkFailed(ctx, j.Delivery.ID, "not sent: released at shutdown", w.now(), false); err != nil {
			w.cfg.Logger.Warn("release unsent delivery; it waits for its lease", "delivery", j.Delivery.ID, "err", err)
		}
		cancel()
	}
}

// record marks accepted jobs sent until sent is closed, each statement
// taking every job that came in while the previous one ran.
func (w *Worker) record(ctx context.Context, sent <-chan sentJob) {
	batch := make([]sentJob, 0, maxMarkBatch)
	for first := range sent {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxMarkBatch {
			select {
			case j, ok := <-sent:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		w.markSent(context.WithoutCancel(ctx), batch)
	}
}

// markSent records batch as sent, retrying briefly: a delivery sent and
// not recorded is sent again after its lease.
func (w *Worker) markSent(ctx context.Context, batch []sentJob) {
	marks := make([]SentMark, len(batch))
	for i, j := range batch {
		marks[i] = SentMark{ID: j.job.Delivery.ID, At: j.at}
	}
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		markCtx, cancel := context.WithTimeout(ctx, w.cfg.Lease/4)
		err = w.store.MarkSentBatch(markCtx, marks)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
	if err != nil {
		// The messages went out but the records say pending: they will be
		// sent again, with the same Message-ID / webhook-id. This is the
		// one window no system can close; it is counted.
		w.metrics.unrecorded.Add(float64(len(batch)))
		w.cfg.Logger.Error("sent but could not record it; it will be sent again", "deliveries", len(batch), "first", batch[0].job.Delivery.ID, "err", err)
		return
	}
	for _, j := range batch {
		ch := string(j.job.Delivery.Channel)
		w.metrics.deliveries.WithLabelValues(ch, "sent").Inc()
		w.metrics.eventToSent.WithLabelValues(ch).Observe(j.at.Sub(j.job.Event.Time).Seconds())
	}
	// Later deliveries of the same subscription and subject wait for these.
	w.Wake()
}

// deliver sends one job and records a failure; it reports whether the
// server accepted the job, which the caller then records as sent.
func (w *Worker) deliver(ctx context.Context, j Job) bool {
	d := j.Delivery
	switch {
	case j.Subscription.ID == "":
		w.finish(ctx, j, errors.New("not sent: the subscription was deleted"), true)
		return false
	case j.Subscription.Status == StatusUnsubscribed:
		w.finish(ctx, j, errors.New("not sent: the subscriber unsubscribed"), true)
		return false
	case j.Subscription.Status == StatusPaused:
		// Held, not dropped: resuming the subscription sends it.
		if err := w.store.MarkFailed(ctx, d.ID, "held: the subscription is paused", w.now().Add(pausedRecheck), false); err != nil {
			w.cfg.Logger.Error("hold delivery of a paused subscription", "delivery", d.ID, "err", err)
		}
		return false
	}
	start := time.Now()
	err := w.send(ctx, j)
	took := time.Since(start)
	w.metrics.sendSeconds.WithLabelValues(string(d.Channel)).Observe(took.Seconds())
	// An exponential moving average, weight 1/8: racy updates lose a
	// sample now and then, which an average does not mind.
	old := w.sendNanos.Load()
	w.sendNanos.Store(old + (int64(took)-old)/8)
	if err == nil {
		return true
	}
	dead := IsPermanent(err) || d.Attempts >= w.cfg.MaxAttempts || w.now().Sub(d.CreatedAt) >= w.cfg.MaxAge
	w.finish(ctx, j, err, dead)
	return false
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
	"Deliveries in the database waiting to be sent (pending) and failed for good (dead).", []string{"status"}, nil)

// DeliveryCollector reports at each scrape the pending backlog and the dead
// deliveries in the database, whichever process made them.
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
	for _, s := range []DeliveryStatus{DeliveryPending, DeliveryDead} {
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
