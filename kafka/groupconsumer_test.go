package kafka_test

import (
	"context"
	"fmt"
	"sync"
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

// With a batch handler, the consumer hands it runs of good records in
// offset order; an undecodable record ends a run and goes to the dead-letter
// topic; a batch the handler calls unprocessable is handled event by event,
// so that only its bad event is set aside. Every other event is handled
// exactly once, in order.
func TestConsumerHandlesBatches(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		topic, dlq := kafkatest.CreateTopic(t, brokers, 1), kafkatest.CreateTopic(t, brokers, 1)
		const total, undecodable, poison = 40, 10, 25
		client, err := kafka.NewClient(brokers)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		var recs []*kgo.Record
		for n := int64(0); n < total; n++ {
			if n == undecodable {
				recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("not an event")})
				continue
			}
			recs = append(recs, kafka.EncodeRecord(topic, testEvent("ord_1", n)))
		}
		if err := client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}

		var (
			mu      sync.Mutex
			handled []int64
			batches int
			done    = make(chan struct{})
		)
		record := func(events ...event.Event) {
			for _, e := range events {
				handled = append(handled, e.Sequence)
			}
			if len(handled) == total-2 {
				close(done)
			}
		}
		c, err := kafka.NewConsumer(kafka.ConsumerConfig{
			Brokers: brokers, Group: "test-batch-" + topic, Topics: []string{topic}, DeadLetterTopic: dlq,
			BatchSize: 8,
			Handle: func(_ context.Context, e event.Event) error {
				mu.Lock()
				defer mu.Unlock()
				if e.Sequence == poison {
					return event.Unprocessable(fmt.Errorf("poison"))
				}
				record(e)
				return nil
			},
			HandleBatch: func(_ context.Context, events []event.Event) error {
				mu.Lock()
				defer mu.Unlock()
				if len(events) > 8 {
					t.Errorf("a batch of %d events, more than BatchSize", len(events))
				}
				for _, e := range events {
					if e.Sequence == poison {
						return event.Unprocessable(fmt.Errorf("poison in the batch"))
					}
				}
				batches++
				record(events...)
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan error, 1)
		go func() { stopped <- c.Run(ctx) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		cancel()
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		var want []int64
		for n := int64(0); n < total; n++ {
			if n != undecodable && n != poison {
				want = append(want, n)
			}
		}
		if fmt.Sprint(handled) != fmt.Sprint(want) {
			t.Errorf("handled %v\nwant    %v", handled, want)
		}
		if batches == 0 {
			t.Error("the batch handler was never used")
		}
		if got := kafkatest.Consume(t, brokers, dlq, 2, 10*time.Second); len(got) != 2 {
			t.Errorf("%d dead letters, want the undecodable record and the poison event", len(got))
		}
	})
}
