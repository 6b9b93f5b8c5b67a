package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/internal/chaos"
	"github.com/eventflow/eventflow/kafka"
)

// warmUp is load run before each measured load and not counted: it opens
// connections and fills caches, on both sides of a comparison alike.
const warmUp = time.Second

// runIntake measures orders created through POST /v1/orders by Clients
// concurrent clients, against the raw order-and-outbox transaction on the
// same database with the same concurrency.
func runIntake(ctx context.Context, cfg *Config, _ *Report) (*StageResult, error) {
	w, err := newWorld(ctx, cfg, StageIntake)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := w.migrate(ctx); err != nil {
		return nil, err
	}
	res := &StageResult{Stage: StageIntake}

	raw, err := openRawDB(ctx, w, cfg.Clients)
	if err != nil {
		return nil, err
	}
	m := newMaker("http://127.0.0.1")
	rawTx := func(ctx context.Context, n int) error {
		o, e, err := m.make(ctx, n)
		if err != nil {
			return err
		}
		return raw.insertOrder(ctx, o, e)
	}
	closedLoop(ctx, cfg.Clients, warmUp, 0, rawTx)
	base := closedLoop(ctx, cfg.Clients, cfg.Duration, 0, rawTx).summary()
	raw.close()
	if base.ok == 0 {
		return res, errors.New("the raw transaction baseline completed nothing")
	}

	p, err := w.start(ctx, "eventflow", "orders-api")
	if err != nil {
		return res, err
	}
	const offset = 10_000_000 // order numbers of their own: the baseline's orders exist
	post := func(ctx context.Context, n int) error {
		_, err := createOrder(ctx, p.BaseURL, offset+n)
		return err
	}
	closedLoop(ctx, cfg.Clients, warmUp, 0, func(ctx context.Context, n int) error { return post(ctx, 2*offset+n) })
	stop := startProfile(ctx, cfg, p.BaseURL, StageIntake, cfg.Duration)
	load := closedLoop(ctx, cfg.Clients, cfg.Duration, 0, post).summary()
	stop()

	res.Result = Measure{Name: "orders created through the HTTP API", Value: load.rate, Unit: "orders/s"}
	res.setBaseline("raw order+outbox transaction, no HTTP ("+driverName(cfg)+")", base.rate, "orders/s")
	res.Latency, res.Series = load.latency, load.series
	if base.latency != nil {
		res.figure("baseline p50 latency", base.latency.P50, "ms")
		res.figure("baseline p99 latency", base.latency.P99, "ms")
	}
	res.note("%d concurrent clients for %s each (after %s of warm-up)", cfg.Clients, cfg.Duration, warmUp)
	if load.failed+base.failed > 0 {
		res.note("failed requests: %d through HTTP, %d raw", load.failed, base.failed)
	}
	return res, nil
}

func driverName(cfg *Config) string {
	if cfg.Stack == Real {
		return "pgx on PostgreSQL"
	}
	return "database/sql on SQLite"
}

// runRelay fills the outbox with RelayEvents events and measures the relay
// draining it into the broker, against a raw produce of the same records
// to the same broker.
func runRelay(ctx context.Context, cfg *Config, rep *Report) (*StageResult, error) {
	w, err := newWorld(ctx, cfg, StageRelay)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := w.migrate(ctx); err != nil {
		return nil, err
	}
	res := &StageResult{Stage: StageRelay}
	m := newMaker("http://127.0.0.1")
	events, err := m.events(ctx, cfg.RelayEvents)
	if err != nil {
		return nil, err
	}
	raw, err := openRawDB(ctx, w, 2)
	if err != nil {
		return nil, err
	}
	defer raw.close()

	// The relay starts first, on an empty outbox, and is ready (connected
	// to the broker, holding the lease) when the events arrive, all in one
	// transaction. It finds them at its next poll: every few milliseconds
	// in this stage, which costs nothing while it works (it only polls
	// when idle) and starts the clock on time.
	w.set("EVENTFLOW_RELAY_POLL_INTERVAL=" + relayPoll.String())
	p, err := w.start(ctx, "relay", "relay")
	if err != nil {
		return res, err
	}
	time.Sleep(time.Second)
	stop := startProfile(ctx, cfg, p.BaseURL, StageRelay, 10*time.Second)
	if err := raw.fillOutbox(ctx, events); err != nil {
		return nil, fmt.Errorf("fill the outbox: %w", err)
	}
	began := time.Now()
	// The relay deletes what it published; the smallest seq left says
	// whether anything is: a cheap index lookup, unlike counting rows.
	deadline := began.Add(max(2*time.Minute, time.Duration(cfg.RelayEvents)*time.Millisecond))
	for {
		left, err := raw.count(ctx, `SELECT coalesce(min(seq), -1) FROM outbox`)
		if err != nil {
			return res, err
		}
		if left == -1 {
			break
		}
		if time.Now().After(deadline) {
			n, _ := raw.count(ctx, `SELECT count(*) FROM outbox`)
			return res, fmt.Errorf("the relay did not drain %d events in time: %d left", cfg.RelayEvents, n)
		}
		time.Sleep(relayPoll)
	}
	took := time.Since(began)
	res.Result = Measure{Name: "events relayed from a pre-filled outbox", Unit: "events/s",
		Value: round(float64(cfg.RelayEvents) / took.Seconds())}
	res.figure("time from the fill's commit to an empty outbox", took.Seconds(), "s")
	stop()

	produced, err := rawProduce(ctx, w, events)
	if err != nil {
		return res, fmt.Errorf("raw produce baseline: %w", err)
	}
	res.setBaseline("raw franz-go produce of the same records to the same broker", produced, "events/s")
	res.note("%d events of %d bytes of data on average; delivery guarantee %s", cfg.RelayEvents, avgData(events), cfg.Guarantee)
	if in := rep.Stage(StageIntake); in != nil && in.Result.Value > 0 {
		res.figure("relay rate / intake rate", res.Result.Value/in.Result.Value, "×")
	}
	return res, nil
}

func avgData(events []event.Event) int {
	total := 0
	for _, e := range events {
		total += len(e.Data)
	}
	return total / max(1, len(events))
}

// relayPoll is how often the relay (when idle) and the harness look at the
// outbox in the relay stage.
const relayPoll = 5 * time.Millisecond

// rawProduce produces events to a topic of their own on the stage's broker,
// with the partitions eventflow gives its topics, as fast as franz-go does
// with acks from all in-sync replicas and idempotence (its defaults), and
// the compression eventflow uses. It returns events per second.
func rawProduce(ctx context.Context, w *world, events []event.Event) (float64, error) {
	topic := w.topic + "-raw"
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()),
		kgo.MaxBufferedRecords(len(events)+1))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	created, err := adm.CreateTopic(ctx, 6, 1, nil, topic)
	if err == nil {
		err = created.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("create %s: %w", topic, err)
	}
	defer adm.DeleteTopics(context.WithoutCancel(ctx), topic)
	records := make([]*kgo.Record, len(events))
	for i, e := range events {
		records[i] = kafka.EncodeRecord(topic, e)
	}
	// A first small batch connects and loads the topic's metadata, as the
	// relay had done before it was measured.
	if err := cl.ProduceSync(ctx, records[:min(100, len(records))]...).FirstErr(); err != nil {
		return 0, err
	}
	records = records[min(100, len(records)):]
	start := time.Now()
	var failed error
	errs := make(chan error, 1)
	for _, r := range records {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	took := time.Since(start)
	select {
	case failed = <-errs:
	default:
	}
	if failed != nil {
		return 0, failed
	}
	return float64(len(records)) / took.Seconds(), nil
}

// runNotifier measures NotifierEvents events, each matching Subscribers
// email subscriptions, turned into emails accepted by an SMTP sink with
// their delivery records marked sent, against the sink's raw accept rate.
func runNotifier(ctx context.Context, cfg *Config, _ *Report) (*StageResult, error) {
	w, err := newWorld(ctx, cfg, StageNotifier)
	if err != nil {
		return nil, err
	}
	defer w.close()
	sink, err := chaos.StartSink()
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	w.set("EVENTFLOW_SMTP_URL=" + sink.URL("bench"))
	res := &StageResult{Stage: StageNotifier}
	p, err := w.start(ctx, "notifier", "notifications-api,notifier")
	if err != nil {
		return res, err
	}
	for i := range cfg.Subscribers {
		if err := subscribe(ctx, p.BaseURL, fmt.Sprintf("subscriber-%d@bench.example", i)); err != nil {
			return res, err
		}
	}
	time.Sleep(matcherRefresh)

	events, err := newMaker("http://127.0.0.1").events(ctx, cfg.NotifierEvents)
	if err != nil {
		return res, err
	}
	want := cfg.NotifierEvents * cfg.Subscribers
	raw, err := openRawDB(ctx, w, 2)
	if err != nil {
		return res, err
	}
	defer raw.close()
	stop := startProfile(ctx, cfg, p.BaseURL, StageNotifier, 10*time.Second)
	start := time.Now()
	if err := produce(ctx, w, events); err != nil {
		return res, err
	}
	deadline := start.Add(max(2*time.Minute, time.Duration(want)*5*time.Millisecond))
	for sink.Count() < want {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("only %d of %d emails arrived in time", sink.Count(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	accepted := time.Now()
	for {
		sent, err := raw.count(ctx, `SELECT count(*) FROM deliveries WHERE status = 'sent'`)
		if err != nil {
			return res, err
		}
		if sent >= want {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("only %d of %d deliveries marked sent in time", sent, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	stop()
	res.Result = Measure{Name: "emails accepted by the SMTP sink, deliveries marked sent", Value: round(float64(want) / took.Seconds()), Unit: "emails/s"}
	res.figure("events produced → last email accepted", accepted.Sub(start).Seconds(), "s")
	res.figure("last email accepted → all deliveries marked sent", took.Seconds()-accepted.Sub(start).Seconds(), "s")
	res.note("%d events × %d subscribers = %d emails; from producing the events to the last delivery marked sent", cfg.NotifierEvents, cfg.Subscribers, want)

	msg, err := sampleEmail(events[0])
	if err != nil {
		return res, err
	}
	n := min(want, 20_000)
	rate, err := rawSMTP(ctx, sink.Addr(), msg, cfg.SMTPClients, n)
	if err != nil {
		return res, fmt.Errorf("raw SMTP baseline: %w", err)
	}
	res.setBaseline(fmt.Sprintf("raw SMTP accept rate of the same sink (%d clients)", cfg.SMTPClients), rate, "emails/s")
	res.figure("email size", float64(len(msg)), "bytes")
	return res, nil
}

// matcherRefresh is how long a new subscription may take to reach the
// notifier's matcher (it checks the subscriptions' version every second).
const matcherRefresh = 2 * time.Second

// produce writes events to the stage's topic, as the relay would, so the
// notifier is measured alone.
func produce(ctx context.Context, w *world, events []event.Event) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.MaxBufferedRecords(len(events)+1))
	if err != nil {
		return err
	}
	defer cl.Close()
	records := make([]*kgo.Record, len(events))
	for i, e := range events {
		records[i] = kafka.EncodeRecord(w.topic, e)
	}
	return cl.ProduceSync(ctx, records...).FirstErr()
}
