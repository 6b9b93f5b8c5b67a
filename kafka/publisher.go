package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/outbox"
)

// Guarantee is a delivery guarantee: what a successful Publish promises.
type Guarantee string

const (
	// AtMostOnce sends each record once and does not wait for the broker:
	// a record the broker never got is lost, and Publish cannot tell.
	AtMostOnce Guarantee = "at-most-once"
	// AtLeastOnce waits until every in-sync replica has each record, and
	// retries until then; the idempotent producer keeps those retries from
	// writing duplicates. A failed Publish may still have published some
	// events, which the caller publishes again: consumers see those twice
	// and deduplicate by event id.
	AtLeastOnce Guarantee = "at-least-once"
	// ExactlyOnce publishes each call's events in one Kafka transaction:
	// read_committed consumers see all of them or none, and a failed or
	// cancelled Publish leaves nothing behind for them. One window remains:
	// if the commit's answer is lost on the way back, Publish reports an
	// error for a transaction that may have committed, and publishing again
	// duplicates it. Consumers still deduplicate by event id.
	ExactlyOnce Guarantee = "exactly-once"
)

// ParseGuarantee parses the name of a delivery guarantee.
func ParseGuarantee(s string) (Guarantee, error) {
	switch g := Guarantee(strings.ToLower(strings.TrimSpace(s))); g {
	case AtMostOnce, AtLeastOnce, ExactlyOnce:
		return g, nil
	}
	return "", fmt.Errorf("unknown delivery guarantee %q (want %s, %s or %s)", s, AtMostOnce, AtLeastOnce, ExactlyOnce)
}

// endTxnTimeout bounds committing or aborting a transaction. It is not the
// caller's context: franz-go warns that cancelling EndTransaction midway
// leaves the outcome unknown, so we finish it even when the caller gave up.
const endTxnTimeout = 30 * time.Second

// closeTimeout bounds the flush in Close, so that shutdown cannot hang on an
// unreachable broker.
const closeTimeout = 10 * time.Second

// metadataMinAge is the least time between two metadata requests.
const metadataMinAge = 500 * time.Millisecond

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Brokers are the seed brokers, "host:port".
	Brokers []string
	// Guarantee is the delivery guarantee; empty means AtLeastOnce.
	Guarantee Guarantee
	// TransactionalID is required for ExactlyOnce and refused otherwise.
	// Give every relay of one deployment the same id ("eventflow-relay"):
	// when a new relay starts its transactions, the broker fences the
	// previous holder of the id, so a relay that was presumed dead but still
	// runs (a zombie) cannot commit anything any more.
	TransactionalID string
	// Route returns the topic for an event type, "" when there is none.
	Route func(eventType string) string
	// Linger is how long the client waits to fill a batch. Publish stops
	// lingering once all its records are handed over, so this only matters
	// when several partitions fill at once; 0 sends at once.
	Linger time.Duration
	// Hooks observe the client, such as kprom metrics.
	Hooks []kgo.Hook
	// Logger receives the client's warnings and errors; nil discards them.
	Logger *slog.Logger
	// ClientID names the client in broker logs and quotas.
	ClientID string
}

// Publisher publishes events to Kafka as CloudEvents records, keyed by
// subject, with the configured delivery guarantee. It implements
// outbox.Publisher. Publish calls are serialized: a transaction belongs to
// the whole client, and serial calls keep events of one subject in call
// order.
type Publisher struct {
	guarantee Guarantee
	route     func(string) string
	opts      []kgo.Opt
	log       *slog.Logger

	mu     sync.Mutex
	client *kgo.Client // nil once closed
}

var _ outbox.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher for cfg. It does not connect: the first
// Publish or Ping does.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Guarantee == "" {
		cfg.Guarantee = AtLeastOnce
	}
	g, err := ParseGuarantee(string(cfg.Guarantee))
	if err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	cfg.Guarantee = g
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("new publisher: no brokers")
	case cfg.Route == nil:
		return nil, errors.New("new publisher: no route")
	case cfg.Guarantee == ExactlyOnce && cfg.TransactionalID == "":
		return nil, errors.New("new publisher: exactly-once needs a transactional id")
	case cfg.Guarantee != ExactlyOnce && cfg.TransactionalID != "":
		return nil, fmt.Errorf("new publisher: a transactional id needs exactly-once, not %s", cfg.Guarantee)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.WithLogger(kgoLogger{log}),
		kgo.ProducerLinger(cfg.Linger),
		// Snappy: batches of JSON events, which repeat their field names,
		// compress well at little CPU cost, and the Java client, librdkafka
		// (kcat) and franz-go decode it out of the box. lz4 would serve as
		// well; zstd squeezes more for more CPU, which small events do not
		// repay. A batch that does not shrink goes out uncompressed.
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()),
		// franz-go's default partitioner hashes keyed records with murmur2,
		// masks the sign bit and takes it modulo the partition count, as the
		// Java client does: a key lands in the same partition whichever
		// client produced it (TestPublishKeepsKeyOrder checks against the
		// Java client's choices). Unkeyed records (we send none) go sticky.
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64<<10, true, true, nil)),
		// When a partition's leader moves (a broker restarts, or a new
		// topic's leader is not ready yet), the produce is retried once fresh
		// metadata names the new leader. franz-go spaces metadata requests
		// at least 5s apart by default, stalling the relay that long; half
		// a second costs a few small requests in those moments only.
		kgo.MetadataMinAge(metadataMinAge),
	}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	if len(cfg.Hooks) > 0 {
		opts = append(opts, kgo.WithHooks(cfg.Hooks...))
	}
	switch cfg.Guarantee {
	case AtMostOnce:
		opts = append(opts,
			kgo.RequiredAcks(kgo.NoAck()),
			kgo.DisableIdempotentWrite(), // the broker does not answer, so there is nothing to deduplicate against
			kgo.RecordRetries(0),
		)
	case AtLeastOnce:
		// acks=all with the idempotent producer (franz-go's default): the
		// broker drops a retried batch it already has and refuses one that
		// arrives out of sequence, and the client then resends in order. So
		// records of one partition, and thus of one key, keep their order
		// even with several produce requests in flight; and if a record
		// fails, every later record of its partition fails with it.
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case ExactlyOnce:
		opts = append(opts,
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.TransactionalID(cfg.TransactionalID),
		)
	}

	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	return &Publisher{
		guarantee: cfg.Guarantee,
		route:     cfg.Route,
		opts:      opts,
		log:       log,
		client:    client,
	}, nil
}

// Publish sends events, keyed by subject, to the topics their types route
// to, and returns when the guarantee is met (see Guarantee). Events are
// checked first: if one is invalid or routes nowhere, nothing is sent. On
// failure the error wraps the first failed event's error, in slice order.
func (p *Publisher) Publish(ctx context.Context, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(events))
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		topic := p.route(e.Type)
		if topic == "" {
			return fmt.Errorf("publish: event %s: no topic for type %s", e.ID, e.Type)
		}
		recs[i] = EncodeRecord(topic, e)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return errors.New("publish: publisher closed")
	}
	if p.guarantee == ExactlyOnce {
		return p.publishInTxn(ctx, events, recs)
	}
	return produceAll(ctx, p.client, events, recs)
}

// produceAll produces recs and waits for every one's outcome.
func produceAll(ctx context.Context, client *kgo.Client, events []event.Event, recs []*kgo.Record) error {
	results := client.ProduceSync(ctx, recs...)
	failed := make(map[*kgo.Record]error)
	for _, r := range results {
		if r.Err != nil {
			failed[r.Record] = r.Err
		}
	}
	if len(failed) == 0 {
		return nil
	}
	for i, r := range recs {
		if err := failed[r]; err != nil {
			return fmt.Errorf("publish: %d of %d events failed, first event %s to %s: %w",
				len(failed), len(recs), events[i].ID, r.Topic, err)
		}
	}
	return fmt.Errorf("publish: %d of %d events failed", len(failed), len(recs))
}

// publishInTxn publishes recs in one transaction: begin, produce, flush,
// commit; and on any failure, or if ctx ended before the commit, abort.
func (p *Publisher) publishInTxn(ctx context.Context, events []event.Event, recs []*kgo.Record) error {
	if err := p.client.BeginTransaction(); err != nil {
		// The producer id is unusable (fenced by a newer relay, or in a
		// fatal state); a fresh client gets a new epoch on its first try.
		p.renewClient()
		return fmt.Errorf("publish: begin transaction: %w", err)
	}
	err := produceAll(ctx, p.client, events, recs)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("publish: %w", context.Cause(ctx))
	}
	if err == nil {
		// ProduceSync returned after every record had its answer, so this
		// Flush returns at once; it is here because franz-go requires a
		// flush before EndTransaction and cheap insurance is worth it.
		err = p.client.Flush(ctx)
		if err != nil {
			err = fmt.Errorf("publish: flush: %w", err)
		}
	}
	if err == nil {
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTxnTimeout)
		defer cancel()
		if err = p.client.EndTransaction(endCtx, kgo.TryCommit); err == nil {
			return nil
		}
		// franz-go: after OperationNotAttempted, TransactionAbortable or an
		// unconfirmed outcome, end again with TryAbort; after any other
		// error the transaction is over and the abort below is a no-op.
		err = fmt.Errorf("publish: commit transaction: %w", err)
	}
	p.abort(ctx)
	return err
}

// abort ends the open transaction without committing it. Records still
// buffered are failed first, at a safe point, so that none of them can slip
// into the next transaction. If aborting fails the client is replaced: the
// new client's producer id initialization makes the broker abort whatever
// the old one left open.
func (p *Publisher) abort(ctx context.Context) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTxnTimeout)
	defer cancel()
	err := p.client.AbortBufferedRecords(actx)
	if err == nil {
		err = p.client.EndTransaction(actx, kgo.TryAbort)
	}
	if err != nil {
		p.log.Warn("kafka: abort transaction failed; replacing the producer", "err", err)
		p.renewClient()
	}
}

// renewClient replaces the client with a new one with the same options.
func (p *Publisher) renewClient() {
	p.client.Close()
	client, err := kgo.NewClient(p.opts...)
	if err != nil {
		// The same options built a client before; they cannot be invalid now.
		panic(fmt.Sprintf("kafka: renew client: %v", err))
	}
	p.client = client
}

// Ping checks that a broker answers, for readiness checks.
func (p *Publisher) Ping(ctx context.Context) error {
	p.mu.Lock()
	client := p.client
	p.mu.Unlock()
	if client == nil {
		return errors.New("ping: publisher closed")
	}
	return Ping(ctx, client)
}

// Close flushes what is buffered (for at most closeTimeout) and closes the
// client. Publish fails afterwards.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := p.client.Flush(ctx); err != nil {
		p.log.Warn("kafka: flush on close", "err", err)
	}
	p.client.Close()
	p.client = nil
}
