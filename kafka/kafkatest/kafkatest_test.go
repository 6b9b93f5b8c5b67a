package kafkatest_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

// outcome records how a helper ended a test it was given.
type outcome struct {
	testing.TB
	name            string
	failed, skipped bool
	msg             string
}

func (o *outcome) Helper()      {}
func (o *outcome) Name() string { return o.name }
func (o *outcome) Fatal(args ...any) {
	o.failed, o.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (o *outcome) Fatalf(format string, args ...any) { o.Fatal(fmt.Sprintf(format, args...)) }
func (o *outcome) Skip(args ...any) {
	o.skipped, o.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

// run calls fn with a TB that records a Fatal or Skip instead of acting on
// it, as a test's goroutine would.
func run(t *testing.T, fn func(tb testing.TB)) *outcome {
	o := &outcome{TB: t, name: t.Name()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(o)
	}()
	<-done
	return o
}

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRequireReal(t *testing.T) {
	requireReal := func(tb testing.TB) { kafkatest.RequireReal(tb) }

	t.Run("unset skips", func(t *testing.T) {
		t.Setenv(kafkatest.EnvBrokers, "")
		t.Setenv("CI", "")
		t.Setenv("EVENTFLOW_TEST_FULL", "")
		if o := run(t, requireReal); !o.skipped || !strings.Contains(o.msg, "scripts/services.sh start kafka") {
			t.Errorf("got %+v, want a skip that says how to start Kafka", o)
		}
	})
	for _, env := range [][2]string{{"CI", "true"}, {"EVENTFLOW_TEST_FULL", "1"}} {
		t.Run("unset fails with "+env[0], func(t *testing.T) {
			t.Setenv(kafkatest.EnvBrokers, "")
			t.Setenv("CI", "")
			t.Setenv("EVENTFLOW_TEST_FULL", "")
			t.Setenv(env[0], env[1])
			if o := run(t, requireReal); !o.failed || !strings.Contains(o.msg, "the full suite") {
				t.Errorf("got %+v, want a failure", o)
			}
			// Brokers does not fall back to the embedded broker either.
			if o := run(t, func(tb testing.TB) { kafkatest.Brokers(tb) }); !o.failed {
				t.Errorf("Brokers: got %+v, want a failure", o)
			}
		})
	}
	t.Run("unreachable fails", func(t *testing.T) {
		t.Setenv(kafkatest.EnvBrokers, closedPort(t))
		if o := run(t, requireReal); !o.failed || !strings.Contains(o.msg, "no broker answers") {
			t.Errorf("got %+v, want a failure", o)
		}
	})
}

func TestBrokersFallsBackToEmbedded(t *testing.T) {
	t.Setenv(kafkatest.EnvBrokers, "")
	t.Setenv("CI", "")
	t.Setenv("EVENTFLOW_TEST_FULL", "")
	brokers := kafkatest.Brokers(t)
	if len(brokers) != 1 || !strings.HasPrefix(brokers[0], "127.0.0.1:") {
		t.Fatalf("Brokers() = %v, want the embedded broker", brokers)
	}
}

func TestTopicName(t *testing.T) {
	seen := make(map[string]bool)
	for _, name := range []string{
		"TestX",
		"Test/Sub Test/#01",
		"9lives",
		"___",
		strings.Repeat("VeryLongName", 40),
	} {
		o := &outcome{TB: t, name: name}
		for range 2 {
			topic := kafkatest.TopicName(o)
			if err := kafka.ValidTopicName(topic); err != nil {
				t.Errorf("TopicName for %q: %v", name, err)
			}
			if !strings.HasPrefix(topic, "test.") {
				t.Errorf("TopicName for %q = %q, want a test. prefix", name, topic)
			}
			if seen[topic] {
				t.Errorf("TopicName for %q repeats %q", name, topic)
			}
			seen[topic] = true
		}
	}
}

func TestCreateTopicAndConsume(t *testing.T) {
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		topic := kafkatest.CreateTopic(t, brokers, 2)
		p, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers, Route: func(string) string { return topic }})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		e := event.Event{
			ID:      "0190a1b2-c3d4-7e5f-8a9b-000000000001",
			Source:  "/eventflow/orders",
			Type:    "orders.order.created",
			Subject: "ord_1",
			Time:    time.Now(),
			Data:    []byte(`{}`),
		}
		if err := p.Publish(ctx, []event.Event{e}); err != nil {
			t.Fatal(err)
		}
		recs := kafkatest.Consume(t, brokers, topic, 1, 30*time.Second)
		if len(recs) != 1 || string(recs[0].Key) != "ord_1" {
			t.Fatalf("consumed %v", recs)
		}

		// Asking for more than there is fails within the timeout.
		start := time.Now()
		o := run(t, func(tb testing.TB) { kafkatest.Consume(tb, brokers, topic, 2, 3*time.Second) }) // time enough, even under -race on a busy machine, to read the one record there is
		if !o.failed || !strings.Contains(o.msg, "read 1 of 2 records") {
			t.Errorf("got %+v, want a failure after reading 1 of 2", o)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Consume took %v to give up", d)
		}
	})
}
