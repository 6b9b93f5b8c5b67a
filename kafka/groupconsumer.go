package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/internal/backoff"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers []string
	// Group is the consumer group: consumers of one group share the
	// partitions, and the group's committed offsets say what is done.
	Group  string
	Topics []string
	// DeadLetterTopic receives records that cannot be handled: undecodable,
	// schema-invalid, or whose handler said event.Unprocessable.
	DeadLetterTopic string
	// Validate checks a decoded event (its schema); nil accepts all.
	Validate func(*event.Event) error
	// Handle handles one event. An error marked event.Unprocessable sends
	// the record to the dead-letter topic; any other error is retried with
	// backoff, holding back that partition until it succeeds.
	Handle func(context.Context, event.Event) error
	// HandleBatch, if set, handles consecutive events of one partition
	// together, all or none (the notifier records them in one transaction):
	// one commit per batch instead of one per event. An error marked
	// event.Unprocessable makes the consumer fall back to Handle, event by
	// event, to set aside just the one that cannot be handled; any other
	// error is retried with backoff, as with Handle.
	HandleBatch func(context.Context, []event.Event) error
	// BatchSize bounds the events given to HandleBatch at once;
	// DefaultBatchSize when zero.
	BatchSize int
	// Hooks observe the client, such as kprom metrics.
	Hooks []kgo.Hook
	// Registerer receives the consumer's metrics; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// DefaultBatchSize is the ConsumerConfig.BatchSize when zero: big enough
// that a batch's commit is a small part of its cost, small enough that a
// retried batch redoes little.
const DefaultBatchSize = 256

// Consumer reads events with read_committed isolation and commits the
// offsets only of records the handler has finished with, so that a crash
// re-reads what was not done rather than skipping it.
type Consumer struct {
	cfg     ConsumerConfig
	client  *kgo.Client
	dlq     *kgo.Client
	log     *slog.Logger
	metrics *consumerMetrics
}

// NewConsumer returns a Consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Handle == nil || cfg.Group == "" || len(cfg.Topics) == 0 || cfg.DeadLetterTopic == "" {
		return nil, errors.New("new consumer: handler, group, topics and dead-letter topic are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	c := &Consumer{cfg: cfg, log: cfg.Logger.With("component", "consumer", "group", cfg.Group), metrics: newConsumerMetrics(cfg.Registerer)}
	var err error
	c.client, err = NewClient(cfg.Brokers,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Only records marked with MarkCommitRecords, once handled, are
		// ever committed: in the background every second, by
		// commitOnRevoke before partitions move, and at shutdown. (With
		// DisableAutoCommit instead, franz-go ignores marks, and
		// CommitMarkedOffsets commits nothing at all.)
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		// Rebalances wait until the records of a poll are handled and
		// committed, so a partition never moves with work half done.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.commitOnRevoke),
		kgo.WithHooks(cfg.Hooks...),
		kgo.WithLogger(kgoLogger{c.log}),
	)
	if err != nil {
		return nil, err
	}
	c.dlq, err = NewClient(cfg.Brokers,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.WithLogger(kgoLogger{c.log}),
	)
	if err != nil {
		c.client.Close()
		return nil, err
	}
	return c, nil
}

// Client is the consumer's Kafka client, for readiness checks.
func (c *Consumer) Client() *kgo.Client { return c.client }

// Run consumes until ctx ends, then commits what is done and leaves the
// group.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.close()
	for {
		fetches := c.client.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			c.commit()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
		})
		// Partitions are independent: handle them side by side, each in
		// offset order, which is the per-order order (the key is the order).
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			wg.Go(func() { c.handlePartition(ctx, p) })
		})
		wg.Wait()
		// No commit here: a commit waits for any rebalance in progress to
		// finish, and the rebalance waits for this AllowRebalance, so the
		// two would wait for each other until the commit timed out; and
		// while a rebalance waits for a dead member, every poll would.
		// The marks are committed in the background instead.
		c.client.AllowRebalance()
	}
}

func (c *Consumer) handlePartition(ctx context.Context, p kgo.FetchTopicPartition) {
	// Lag is what a read_committed consumer can still read: up to the last
	// stable offset. It is set before handling, so that a partition stalled
	// on a failing handler (the database down) shows the whole batch it has
	// yet to handle, not the small lag from before the stall. (A committed
	// transaction's marker takes an offset too, so an idle partition fed by
	// the transactional relay may show a lag of 1.)
	lag := c.metrics.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition)))
	end := p.LastStableOffset
	if end < 0 {
		end = p.HighWatermark
	}
	lag.Set(float64(max(end-p.Records[0].Offset, 0)))
	done := func(recs ...*kgo.Record) {
		c.client.MarkCommitRecords(recs...)
		lag.Set(float64(max(end-recs[len(recs)-1].Offset-1, 0)))
	}
	// Consecutive good records gather into a batch; a bad one first ends
	// the batch, so that records are still finished in offset order.
	var (
		batch []event.Event
		recs  []*kgo.Record
	)
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		if !c.handleBatch(ctx, batch, recs, done) {
			return false
		}
		batch, recs = batch[:0], recs[:0]
		return true
	}
	for _, rec := range p.Records {
		e, err := c.decode(rec)
		if err == nil && c.cfg.HandleBatch != nil {
			batch, recs = append(batch, e), append(recs, rec)
			if len(batch) >= c.cfg.BatchSize && !flush() {
				return
			}
			continue
		}
		if !flush() {
			return // shutting down: leave the rest uncommitted for the next owner
		}
		var ok bool
		if err != nil {
			ok = c.deadLetter(ctx, rec, fmt.Errorf("undecodable or invalid event: %w", err))
		} else {
			ok = c.handleEvent(ctx, rec, e)
		}
		if !ok {
			return
		}
		done(rec)
	}
	flush()
}

// decode decodes and validates a record.
func (c *Consumer) decode(rec *kgo.Record) (event.Event, error) {
	e, err := DecodeRecord(rec)
	if err == nil && c.cfg.Validate != nil {
		err = c.cfg.Validate(&e)
	}
	return e, err
}

// handleBatch handles events (of recs) with HandleBatch, retrying it until
// it succeeds, and calls done with the records once they are finished. If
// the batch is unprocessable it handles the events one by one instead. It
// reports false only when ctx ended first.
func (c *Consumer) handleBatch(ctx context.Context, events []event.Event, recs []*kgo.Record, done func(...*kgo.Record)) bool {
	if len(events) == 1 {
		if !c.handleEvent(ctx, recs[0], events[0]) {
			return false
		}
		done(recs[0])
		return true
	}
	for attempt := 1; ; attempt++ {
		err := c.safeHandleBatch(ctx, events)
		switch {
		case err == nil:
			c.metrics.records.WithLabelValues("handled").Add(float64(len(events)))
			done(recs...)
			return true
		case ctx.Err() != nil:
			return false
		case event.IsUnprocessable(err):
			c.log.Warn("batch unprocessable; handling its events one by one", "events", len(events), "err", err)
			for i, e := range events {
				if !c.handleEvent(ctx, recs[i], e) {
					return false
				}
				done(recs[i])
			}
			return true
		}
		c.metrics.records.WithLabelValues("retried").Add(float64(len(events)))
		c.log.Warn("handling a batch failed; retrying", "events", len(events), "first", events[0].ID, "attempt", attempt, "err", err)
		if !backoff.Sleep(ctx, backoff.Jittered(attempt, 200*time.Millisecond, 10*time.Second)) {
			return false
		}
	}
}

// safeHandleBatch runs the batch handler, turning a panic into an
// unprocessable batch, which is then handled event by event.
func (c *Consumer) safeHandleBatch(ctx context.Context, events []event.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = event.Unprocessable(fmt.Errorf("batch handler panicked: %v", v))
		}
	}()
	return c.cfg.HandleBatch(ctx, events)
}

// handleEvent handles the decoded event of rec, or sets rec aside in the
// dead-letter topic. It reports false only when ctx ended first.
func (c *Consumer) handleEvent(ctx context.Context, rec *kgo.Record, e event.Event) bool {
	for attempt := 1; ; attempt++ {
		err := c.safeHandle(ctx, e)
		switch {
		case err == nil:
			c.metrics.records.WithLabelValues("handled").Inc()
			return true
		case ctx.Err() != nil:
			return false
		case event.IsUnprocessable(err):
			return c.deadLetter(ctx, rec, err)
		}
		c.metrics.records.WithLabelValues("retried").Inc()
		c.log.Warn("handling failed; retrying", "event", e.ID, "attempt", attempt, "err", err)
		if !backoff.Sleep(ctx, backoff.Jittered(attempt, 200*time.Millisecond, 10*time.Second)) {
			return false
		}
	}
}

// safeHandle runs the handler, turning a panic into an unprocessable event:
// a record that crashes the handler would crash it again.
func (c *Consumer) safeHandle(ctx context.Context, e event.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = event.Unprocessable(fmt.Errorf("handler panicked: %v", v))
		}
	}()
	return c.cfg.Handle(ctx, e)
}

// Dead-letter headers say why and where a record came from.
const (
	HeaderDLQError     = "eventflow-dlq-error"
	HeaderDLQTopic     = "eventflow-dlq-topic"
	HeaderDLQPartition = "eventflow-dlq-partition"
	HeaderDLQOffset    = "eventflow-dlq-offset"
	HeaderDLQGroup     = "eventflow-dlq-group"
	HeaderDLQTime      = "eventflow-dlq-time"
	// HeaderDLQValueDropped is set, to the original size in bytes, on a
	// dead letter whose value (and, if that was not enough, whose key and
	// headers) had to be left out to fit the producer's size limit.
	HeaderDLQValueDropped = "eventflow-dlq-value-dropped"
)

// deadLetter copies rec, with its headers and the reason, to the dead-letter
// topic. It retries until the broker has it, since the record's offset may
// be committed only then. A record near the size limit may be too large once
// the reason is added: it is then set aside without its value (and, if need
// be, without its key and headers), rather than retried forever. It reports
// false only when ctx ended first.
func (c *Consumer) deadLetter(ctx context.Context, rec *kgo.Record, reason error) bool {
	why := reason.Error()
	if len(why) > maxReasonLength {
		why = why[:maxReasonLength] + "…"
	}
	origin := []kgo.RecordHeader{
		{Key: HeaderDLQError, Value: []byte(why)},
		{Key: HeaderDLQTopic, Value: []byte(rec.Topic)},
		{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
		{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
		{Key: HeaderDLQGroup, Value: []byte(c.cfg.Group)},
		{Key: HeaderDLQTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	}
	dl := &kgo.Record{
		Topic:   c.cfg.DeadLetterTopic,
		Key:     rec.Key,
		Value:   rec.Value,
		Headers: append(append([]kgo.RecordHeader(nil), rec.Headers...), origin...),
	}
	for attempt := 1; ; attempt++ {
		err := c.dlq.ProduceSync(ctx, dl).FirstErr()
		if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
			if dl.Value == nil && dl.Key == nil && len(dl.Headers) == len(origin)+1 {
				c.log.Error("dead letter too large even without the record; dropping it", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
				c.metrics.records.WithLabelValues("dropped").Inc()
				return true
			}
			dropped := kgo.RecordHeader{Key: HeaderDLQValueDropped, Value: []byte(strconv.Itoa(len(rec.Key) + len(rec.Value)))}
			if dl.Value != nil {
				dl.Value = nil
				dl.Headers = append(append(append([]kgo.RecordHeader(nil), rec.Headers...), origin...), dropped)
			} else {
				dl.Key, dl.Headers = nil, append(append([]kgo.RecordHeader(nil), origin...), dropped)
			}
			continue
		}
		if err == nil {
			c.metrics.records.WithLabelValues("dead_lettered").Inc()
			c.log.Warn("record sent to the dead-letter topic", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", reason)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.log.Warn("dead-letter publish failed; retrying", "attempt", attempt, "err", err)
		if !backoff.Sleep(ctx, backoff.Jittered(attempt, 200*time.Millisecond, 10*time.Second)) {
			return false
		}
	}
}

// maxReasonLength bounds the reason header of a dead letter: an error can
// quote the record's own attributes, which may be long.
const maxReasonLength = 4096

// commit commits the offsets of the records handled so far.
func (c *Consumer) commit() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.client.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("commit offsets", "err", err)
	}
}

// commitOnRevoke commits what is done before partitions move to another
// consumer, so the new owner does not handle those records again.
func (c *Consumer) commitOnRevoke(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("commit offsets on revoke", "err", err)
	}
}

func (c *Consumer) close() {
	// With BlockRebalanceOnPoll, leaving the group waits for the rebalance
	// that a poll may still be blocking: allow it first.
	c.client.AllowRebalance()
	c.client.Close()
	c.dlq.Close()
}

type consumerMetrics struct {
	lag     *prometheus.GaugeVec
	records *prometheus.CounterVec
}

func newConsumerMetrics(reg prometheus.Registerer) *consumerMetrics {
	m := &consumerMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventflow_consumer_lag_records",
			Help: "Committed records in a partition after the last one handled, as of the last fetch.",
		}, []string{"topic", "partition"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventflow_consumer_records_total",
			Help: "Records by outcome: handled, retried (a failed attempt), dead_lettered, dropped (too large even for a dead letter).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.records)
	}
	return m
}
