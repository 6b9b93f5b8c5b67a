package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

// freePort returns a port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestStartEmbedded(t *testing.T) {
	t.Parallel()
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addrs := b.Addrs()
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") || strings.HasSuffix(addrs[0], ":0") {
		t.Errorf("Addrs() = %v, want one 127.0.0.1 address with a port", addrs)
	}
	client, err := kafka.NewClient(addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafka.Ping(ctx, client); err != nil {
		t.Fatal(err)
	}

	// A port in use is an error that names it.
	port := addrs[0][strings.LastIndex(addrs[0], ":")+1:]
	var log bytes.Buffer
	_, err = kafka.StartEmbedded(kafka.EmbeddedConfig{Port: atoi(t, port), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+port) {
		t.Errorf("starting on a port in use: error %v", err)
	}
	if _, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 70000}); err == nil {
		t.Error("started on port 70000")
	}
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEmbeddedPersists restarts an embedded broker with a data folder on the
// same port and checks that records, including committed transactions, and
// a group's committed offsets survive; and that publishers and consumers
// created before the restart carry on after it without being rebuilt.
func TestEmbeddedPersists(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	cfg := kafka.EmbeddedConfig{Port: port, DataDir: t.TempDir()}
	b, err := kafka.StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Clients close before the broker they talk to: closing a client whose
	// broker is gone takes a second or two of failed dials.
	t.Cleanup(func() { b.Close() })
	brokers := b.Addrs()
	if want := fmt.Sprintf("127.0.0.1:%d", port); brokers[0] != want {
		t.Fatalf("listening on %v, want %s", brokers, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	topic := "orders.order.events"
	adm := kafkatest.Admin(t, brokers)
	if _, err := kafka.ApplyTopics(ctx, adm, []kafka.TopicSpec{{Name: topic, Partitions: 3, ReplicationFactor: 1, Retention: -1}}); err != nil {
		t.Fatal(err)
	}
	route := func(string) string { return topic }
	alo, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers, Route: route})
	if err != nil {
		t.Fatal(err)
	}
	defer alo.Close()
	eos, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers, Route: route, Guarantee: kafka.ExactlyOnce, TransactionalID: "eventflow-relay"})
	if err != nil {
		t.Fatal(err)
	}
	defer eos.Close()

	var events []event.Event
	for i := range 12 {
		events = append(events, testEvent(fmt.Sprintf("ord_%d", i%3), int64(i+1)))
	}
	if err := alo.Publish(ctx, events[:4]); err != nil {
		t.Fatal(err)
	}
	if err := eos.Publish(ctx, events[4:8]); err != nil {
		t.Fatal(err)
	}

	// A group commits offsets for what it read.
	const group = "eventflow-notifier"
	consumer, err := kafka.NewClient(brokers,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var read int
	for read < 8 {
		fetches := consumer.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			t.Fatal(err)
		}
		read += fetches.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}

	b.Close()
	b, err = kafka.StartEmbedded(cfg)
	if err != nil {
		t.Fatalf("restart on the same port: %v", err)
	}

	recs := kafkatest.Consume(t, brokers, topic, 8, consumeTimeout)
	seen := make(map[string]bool)
	for _, r := range recs {
		e, err := kafka.DecodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		seen[e.ID] = true
	}
	for _, e := range events[:8] {
		if !seen[e.ID] {
			t.Errorf("event %s lost in the restart", e.ID)
		}
	}
	after, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if !sameOffsets(committed, after) {
		t.Errorf("group offsets before the restart %v, after %v", committed, after)
	}

	// The publishers reconnect by themselves, the transactional one too.
	if err := alo.Publish(ctx, events[8:10]); err != nil {
		t.Fatalf("at-least-once publish after the restart: %v", err)
	}
	if err := eos.Publish(ctx, events[10:]); err != nil {
		t.Fatalf("exactly-once publish after the restart: %v", err)
	}
	if got := len(kafkatest.Consume(t, brokers, topic, 12, consumeTimeout)); got != 12 {
		t.Errorf("read %d records after the restart, want 12", got)
	}
}

func sameOffsets(a, b kadm.OffsetResponses) bool {
	count := 0
	for topic, parts := range a {
		for p, o := range parts {
			if o.Err != nil || b[topic][p].Err != nil || o.At != b[topic][p].At {
				return false
			}
			count++
		}
	}
	return count > 0
}

// TestEmbeddedKeepsUnconsumed checks that the embedded broker deletes
// consumed records beyond KeepRecords on its own (its memory, an index
// entry per batch, must not grow with every record ever produced), and
// never records a consumer group has not committed yet.
func TestEmbeddedKeepsUnconsumed(t *testing.T) {
	t.Parallel()
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{DataDir: t.TempDir(), KeepRecords: 10, TrimEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	brokers := b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kafkatest.Admin(t, brokers)
	unread, read := "orders.order.unread", "orders.order.read"
	if _, err := kafka.ApplyTopics(ctx, adm, []kafka.TopicSpec{
		{Name: unread, Partitions: 1, ReplicationFactor: 1},
		{Name: read, Partitions: 2, ReplicationFactor: 1},
	}); err != nil {
		t.Fatal(err)
	}
	// A group reads one topic: it has read 20 records of partition 0 and
	// none of partition 1. (It commits first: trimming runs all along.)
	committed := kadm.Offsets{}
	committed.Add(kadm.Offset{Topic: read, Partition: 0, At: 20, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "eventflow-notifier", committed); err != nil {
		t.Fatal(err)
	}
	producer, err := kafka.NewClient(brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for i := range 100 {
		for _, r := range []*kgo.Record{
			{Topic: unread, Value: []byte("v")},
			{Topic: read, Partition: int32(i % 2), Value: []byte("v")},
		} {
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	want := map[string]map[int32]int64{
		unread: {0: 90}, // no group reads it: the newest 10 stay
		read:   {0: 20, 1: 0},
	}
	for {
		starts, err := adm.ListStartOffsets(ctx, unread, read)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[int32]int64{}
		starts.Each(func(o kadm.ListedOffset) {
			if got[o.Topic] == nil {
				got[o.Topic] = map[int32]int64{}
			}
			got[o.Topic][o.Partition] = o.Offset
		})
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("start offsets %v, want %v", got, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Nothing more goes while nothing more is read.
	time.Sleep(200 * time.Millisecond)
	starts, err := adm.ListStartOffsets(ctx, read)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup(read, 1); o.Offset != 0 {
		t.Errorf("unread partition starts at %d, want 0", o.Offset)
	}
}
