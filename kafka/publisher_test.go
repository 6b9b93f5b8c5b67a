package kafka_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

const consumeTimeout = 30 * time.Second

func TestParseGuarantee(t *testing.T) {
	for in, want := range map[string]kafka.Guarantee{
		"at-most-once":    kafka.AtMostOnce,
		"at-least-once":   kafka.AtLeastOnce,
		" Exactly-Once\n": kafka.ExactlyOnce,
	} {
		if got, err := kafka.ParseGuarantee(in); err != nil || got != want {
			t.Errorf("ParseGuarantee(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "exactly_once", "once", "acks=all"} {
		if _, err := kafka.ParseGuarantee(in); err == nil {
			t.Errorf("ParseGuarantee(%q) succeeded", in)
		}
	}
}

func TestNewPublisherRejectsBadConfig(t *testing.T) {
	route := func(string) string { return "orders.order.events" }
	brokers := []string{"127.0.0.1:1"}
	tests := []struct {
		name string
		cfg  kafka.PublisherConfig
		want string
	}{
		{"no brokers", kafka.PublisherConfig{Route: route}, "no brokers"},
		{"no route", kafka.PublisherConfig{Brokers: brokers}, "no route"},
		{"unknown guarantee", kafka.PublisherConfig{Brokers: brokers, Route: route, Guarantee: "twice"}, `unknown delivery guarantee "twice"`},
		{"exactly-once without id", kafka.PublisherConfig{Brokers: brokers, Route: route, Guarantee: kafka.ExactlyOnce}, "needs a transactional id"},
		{"exactly-once in capitals without id", kafka.PublisherConfig{Brokers: brokers, Route: route, Guarantee: "EXACTLY-ONCE"}, "needs a transactional id"},
		{"id without exactly-once", kafka.PublisherConfig{Brokers: brokers, Route: route, TransactionalID: "relay"}, "needs exactly-once, not at-least-once"},
	}
	for _, tt := range tests {
		p, err := kafka.NewPublisher(tt.cfg)
		if err == nil {
			p.Close()
			t.Errorf("%s: NewPublisher succeeded", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.want)
		}
	}
}

// TestPublishChecksEventsFirst needs no broker: bad input fails before any
// record is produced.
func TestPublishChecksEventsFirst(t *testing.T) {
	p, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers: []string{"127.0.0.1:1"},
		Route: func(typ string) string {
			if typ == "orders.order.created" {
				return "orders.order.events"
			}
			return ""
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()

	unrouted := testEvent("ord_1", 2)
	unrouted.Type = "orders.order.paid"
	err = p.Publish(ctx, []event.Event{testEvent("ord_1", 1), unrouted})
	if err == nil || !strings.Contains(err.Error(), "no topic for type orders.order.paid") {
		t.Errorf("unrouted event: error %v", err)
	}

	invalid := testEvent("ord_1", 2)
	invalid.Data = []byte("{")
	err = p.Publish(ctx, []event.Event{testEvent("ord_1", 1), invalid})
	if err == nil || !strings.Contains(err.Error(), "data is not JSON") {
		t.Errorf("invalid event: error %v", err)
	}

	if err := p.Publish(ctx, nil); err != nil {
		t.Errorf("publishing nothing: %v", err)
	}
}

// newPublisher returns a publisher for the test that routes every event to
// topic, closed when the test ends.
func newPublisher(t *testing.T, brokers []string, g kafka.Guarantee, topic string, hooks ...kgo.Hook) *kafka.Publisher {
	t.Helper()
	cfg := kafka.PublisherConfig{
		Brokers:   brokers,
		Guarantee: g,
		Route:     func(string) string { return topic },
		Hooks:     hooks,
		ClientID:  "eventflow-test",
	}
	if g == kafka.ExactlyOnce {
		cfg.TransactionalID = uniqueID(t)
	}
	p, err := kafka.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// uniqueID is a transactional id no other test (or run) on a shared broker
// uses, so tests do not fence each other.
func uniqueID(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "eventflow-test-" + hex.EncodeToString(b[:])
}

func TestPublish(t *testing.T) {
	t.Parallel()
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		t.Parallel()
		for _, g := range []kafka.Guarantee{kafka.AtMostOnce, kafka.AtLeastOnce, kafka.ExactlyOnce} {
			t.Run(string(g), func(t *testing.T) {
				t.Parallel()
				topic := kafkatest.CreateTopic(t, brokers, 3)
				p := newPublisher(t, brokers, g, topic)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := p.Ping(ctx); err != nil {
					t.Fatal(err)
				}

				var events []event.Event
				for i := range 12 {
					e := testEvent(fmt.Sprintf("ord_%d", i%4), int64(i+1))
					if i%3 == 0 {
						e.TraceParent = ""
					}
					events = append(events, e)
				}
				// Two calls: with exactly-once, two transactions.
				if err := p.Publish(ctx, events[:5]); err != nil {
					t.Fatal(err)
				}
				if err := p.Publish(ctx, events[5:]); err != nil {
					t.Fatal(err)
				}

				recs := kafkatest.Consume(t, brokers, topic, len(events), consumeTimeout)
				byID := make(map[string]event.Event)
				for _, e := range events {
					byID[e.ID] = e
				}
				for _, r := range recs {
					h := headerMap(t, r)
					want, ok := byID[h["ce_id"]]
					if !ok {
						t.Fatalf("unexpected or duplicate record %s", h["ce_id"])
					}
					delete(byID, want.ID)
					if string(r.Key) != want.Subject {
						t.Errorf("%s: key %q, want %q", want.ID, r.Key, want.Subject)
					}
					if !bytes.Equal(r.Value, want.Data) {
						t.Errorf("%s: value %s, want %s", want.ID, r.Value, want.Data)
					}
					wantHeaders := map[string]string{
						"ce_specversion": "1.0",
						"ce_id":          want.ID,
						"ce_source":      want.Source,
						"ce_type":        want.Type,
						"ce_subject":     want.Subject,
						"ce_time":        want.Time.UTC().Format("2006-01-02T15:04:05.000000000Z"),
						"ce_dataschema":  want.DataSchema,
						"ce_sequence":    strconv.FormatInt(want.Sequence, 10),
						"content-type":   "application/json",
					}
					if want.TraceParent != "" {
						wantHeaders["ce_traceparent"] = want.TraceParent
					}
					if fmt.Sprint(h) != fmt.Sprint(wantHeaders) {
						t.Errorf("%s: headers\n got %v\nwant %v", want.ID, h, wantHeaders)
					}
					got, err := kafka.DecodeRecord(r)
					if err != nil {
						t.Errorf("%s: %v", want.ID, err)
					} else if !got.Time.Equal(want.Time) || got.Sequence != want.Sequence || got.TraceParent != want.TraceParent {
						t.Errorf("%s: decoded %+v, want %+v", want.ID, got, want)
					}
				}
			})
		}
	})
}

// javaPartition is the partition of 6 that the Java client (kafka-clients
// 4.1.1, BuiltInPartitioner.partitionForKey) chooses for key
// fmt.Sprintf("order-%02d", i), computed once with that library.
var javaPartition = [50]int32{
	5, 5, 2, 5, 2, 1, 3, 1, 5, 0,
	0, 0, 1, 5, 4, 4, 0, 3, 5, 3,
	1, 2, 3, 5, 0, 2, 4, 0, 5, 1,
	5, 4, 1, 1, 1, 2, 4, 1, 1, 3,
	3, 2, 0, 4, 2, 5, 4, 1, 0, 1,
}

// TestPublishKeepsKeyOrder publishes 2,000 events of 50 orders to a topic of
// 6 partitions in one call, and checks that each order's events arrive in
// the order given, all in the partition the Java client would choose.
func TestPublishKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	const keys, perKey = 50, 40
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		t.Parallel()
		for _, g := range []kafka.Guarantee{kafka.AtLeastOnce, kafka.ExactlyOnce} {
			t.Run(string(g), func(t *testing.T) {
				t.Parallel()
				topic := kafkatest.CreateTopic(t, brokers, 6)
				p := newPublisher(t, brokers, g, topic)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()

				events := make([]event.Event, 0, keys*perKey)
				for seq := int64(1); seq <= perKey; seq++ {
					for k := range keys {
						e := testEvent(fmt.Sprintf("order-%02d", k), seq)
						e.ID = fmt.Sprintf("%s-%d", e.Subject, seq)
						events = append(events, e)
					}
				}
				start := time.Now()
				if err := p.Publish(ctx, events); err != nil {
					t.Fatal(err)
				}
				t.Logf("published %d events in %v", len(events), time.Since(start))

				recs := kafkatest.Consume(t, brokers, topic, len(events), consumeTimeout)
				last := make(map[string]int64)
				for _, r := range recs {
					e, err := kafka.DecodeRecord(r)
					if err != nil {
						t.Fatal(err)
					}
					if e.Sequence != last[e.Subject]+1 {
						t.Fatalf("%s: sequence %d after %d", e.Subject, e.Sequence, last[e.Subject])
					}
					last[e.Subject] = e.Sequence
					var k int
					if _, err := fmt.Sscanf(e.Subject, "order-%d", &k); err != nil {
						t.Fatal(err)
					}
					if r.Partition != javaPartition[k] {
						t.Fatalf("%s in partition %d, the Java client uses %d", e.Subject, r.Partition, javaPartition[k])
					}
				}
				for k := range keys {
					if s := fmt.Sprintf("order-%02d", k); last[s] != perKey {
						t.Errorf("%s: %d events, want %d", s, last[s], perKey)
					}
				}
			})
		}
	})
}

// cancelOnAck is a hook that cancels a context when the broker acknowledges
// the first record, before that record's promise runs: the transaction then
// has records on the broker when Publish sees the cancellation.
type cancelOnAck struct {
	cancel atomic.Pointer[context.CancelFunc]
	acked  atomic.Int64
}

func (h *cancelOnAck) OnProduceRecordUnbuffered(_ *kgo.Record, err error) {
	if err != nil {
		return
	}
	h.acked.Add(1)
	if c := h.cancel.Load(); c != nil {
		(*c)()
	}
}

// TestPublishCancelledTransaction cancels exactly-once Publish calls once
// the broker acknowledged their first record, and checks that read_committed
// consumers see none of their records while read_uncommitted ones do. Small
// events all reach the broker before Publish sees the cancellation; large
// ones fill many batches, and those still buffered fail.
func TestPublishCancelledTransaction(t *testing.T) {
	t.Parallel()
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		t.Parallel()
		for _, tt := range []struct {
			name      string
			events    int
			dataBytes int
		}{
			{"after produce", 200, 0},
			{"during produce", 2000, 4 << 10},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				// One partition: a visible aborted record would precede
				// the sentinel, so reading one record tells all.
				topic := kafkatest.CreateTopic(t, brokers, 1)
				hook := new(cancelOnAck)
				p := newPublisher(t, brokers, kafka.ExactlyOnce, topic, hook)

				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				hook.cancel.Store(&cancel)
				padding := strings.Repeat("x", tt.dataBytes)
				var events []event.Event
				for i := range tt.events {
					e := testEvent(fmt.Sprintf("ord_%d", i%7), int64(i+1))
					e.Data = fmt.Appendf(nil, `{"n":%d,"pad":%q}`, i, padding)
					events = append(events, e)
				}
				err := p.Publish(ctx, events)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled Publish returned %v, want context.Canceled", err)
				}
				if hook.acked.Load() == 0 {
					t.Fatal("no record reached the broker before the cancellation")
				}
				hook.cancel.Store(nil)
				t.Logf("cancelled after %d of %d records were acknowledged: %v", hook.acked.Load(), len(events), err)

				// A publish after an aborted one works, and is the first
				// thing read_committed consumers see.
				ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
				defer cancel2()
				sentinel := testEvent("ord_sentinel", 100000)
				if err := p.Publish(ctx2, []event.Event{sentinel}); err != nil {
					t.Fatal(err)
				}
				recs := kafkatest.Consume(t, brokers, topic, 1, consumeTimeout)
				if id := headerMap(t, recs[0])["ce_id"]; id != sentinel.ID {
					t.Fatalf("read_committed saw %s first, want the sentinel %s", id, sentinel.ID)
				}
				uncommitted := consumeUncommitted(t, brokers, topic, 1)
				if id := headerMap(t, uncommitted[0])["ce_id"]; id != events[0].ID {
					t.Fatalf("read_uncommitted saw %s first, want the aborted %s", id, events[0].ID)
				}
				t.Logf("%d records aborted; the sentinel has offset %d", recs[0].Offset-1, recs[0].Offset)
			})
		}
	})
}

// TestPublishFencesZombie shows what a stable transactional id buys, and
// what it does not: a new publisher with the id fences the old one, whose
// open transaction then fails and leaves nothing visible; but the old one's
// next Publish succeeds again, fencing the new one in turn. Fencing stops a
// zombie's transaction in flight, not the zombie: only one relay may
// publish at a time, which the relay's lease must ensure.
func TestPublishFencesZombie(t *testing.T) {
	t.Parallel()
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		t.Parallel()
		topic := kafkatest.CreateTopic(t, brokers, 1)
		id := uniqueID(t)
		newTxnPublisher := func() *kafka.Publisher {
			p, err := kafka.NewPublisher(kafka.PublisherConfig{
				Brokers:         brokers,
				Guarantee:       kafka.ExactlyOnce,
				TransactionalID: id,
				Route:           func(string) string { return topic },
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			return p
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		zombie := newTxnPublisher()
		if err := zombie.Publish(ctx, []event.Event{testEvent("ord_z", 1)}); err != nil {
			t.Fatal(err)
		}
		successor := newTxnPublisher()
		if err := successor.Publish(ctx, []event.Event{testEvent("ord_s", 2)}); err != nil {
			t.Fatal(err)
		}
		err := zombie.Publish(ctx, []event.Event{testEvent("ord_z", 3)})
		if err == nil {
			t.Fatal("the fenced publisher committed a transaction")
		}
		if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
			t.Logf("fenced publisher's error does not wrap ProducerFenced: %v", err)
		}
		t.Logf("fenced: %v", err)
		if err := successor.Publish(ctx, []event.Event{testEvent("ord_s", 4)}); err != nil {
			t.Fatal(err)
		}

		recs := kafkatest.Consume(t, brokers, topic, 3, consumeTimeout)
		var ids []string
		for _, r := range recs {
			ids = append(ids, headerMap(t, r)["ce_id"])
		}
		want := []string{testEvent("", 1).ID, testEvent("", 2).ID, testEvent("", 4).ID}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("read_committed saw %v, want %v", ids, want)
		}

		// The old publisher gets going again: franz-go re-initializes the
		// producer id after INVALID_PRODUCER_EPOCH, which fences the
		// successor in turn.
		var recovered bool
		for attempt := 1; attempt <= 3 && !recovered; attempt++ {
			err := zombie.Publish(ctx, []event.Event{testEvent("ord_z", int64(4+attempt))})
			t.Logf("old publisher, attempt %d: %v", attempt, err)
			recovered = err == nil
		}
		if !recovered {
			t.Error("the old publisher did not recover")
		}
	})
}

// TestPublishMissingTopic checks that a record failure surfaces as the
// error of the first failed event.
func TestPublishMissingTopic(t *testing.T) {
	t.Parallel()
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		t.Parallel()
		p := newPublisher(t, brokers, kafka.AtLeastOnce, kafkatest.TopicName(t)) // never created
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		events := []event.Event{testEvent("ord_1", 1), testEvent("ord_2", 2)}
		start := time.Now()
		err := p.Publish(ctx, events)
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("error %v, want one wrapping UNKNOWN_TOPIC_OR_PARTITION", err)
		}
		if !strings.Contains(err.Error(), "2 of 2 events failed, first event "+events[0].ID) {
			t.Errorf("error %q does not name the first event", err)
		}
		t.Logf("failed after %v: %v", time.Since(start), err)
	})
}

func consumeUncommitted(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	client, err := kafka.NewClient(brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), consumeTimeout)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fetches := client.PollRecords(ctx, n-len(recs))
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(recs), n)
		}
		recs = append(recs, fetches.Records()...)
	}
	return recs
}
