package kafka_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

// The consumer commits the offsets of what it handled: a consumer of the
// same group started afterwards reads only what came since, rather than the
// whole topic again. (Found by the fault-injection suite: the offsets were
// never committed, so every restart and every rebalance re-read the topic
// from its start.)
func TestConsumerCommitsHandledOffsets(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		topic := kafkatest.CreateTopic(t, brokers, 3)
		group := "test-commit-" + topic
		produce := func(from, to int64) {
			client, err := kafka.NewClient(brokers)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			var recs []*kgo.Record
			for n := from; n < to; n++ {
				recs = append(recs, kafka.EncodeRecord(topic, testEvent(fmt.Sprintf("ord_%d", n%5), n)))
			}
			if err := client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		// consume runs a consumer until it has handled want events, then
		// lingers a little to see that no more come, and stops it.
		consume := func(want int64) int64 {
			var handled atomic.Int64
			c, err := kafka.NewConsumer(kafka.ConsumerConfig{
				Brokers: brokers, Group: group, Topics: []string{topic}, DeadLetterTopic: topic + "-dlq",
				Handle: func(context.Context, event.Event) error { handled.Add(1); return nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			deadline := time.Now().Add(30 * time.Second)
			for handled.Load() < want && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			return handled.Load()
		}

		produce(0, 30)
		if got := consume(30); got != 30 {
			t.Fatalf("first consumer handled %d events, want 30", got)
		}
		produce(30, 35)
		if got := consume(5); got != 5 {
			t.Fatalf("second consumer handled %d events, want the 5 new ones (offsets not committed?)", got)
		}
	})
}
