// Package kafkatest gives tests a Kafka broker: a real one when
// EVENTFLOW_TEST_KAFKA_BROKERS names it (scripts/services.sh starts one and
// prints the setting), else the embedded broker, started per test.
//
// In the full suite (CI=true or EVENTFLOW_TEST_FULL=1) a missing real
// broker fails the test instead of skipping it or quietly falling back to
// the embedded one, so a green full run means the real thing was tested.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/kafka"
)

// EnvBrokers is the environment variable naming a real cluster's brokers,
// comma-separated.
const EnvBrokers = "EVENTFLOW_TEST_KAFKA_BROKERS"

// pingTimeout bounds the reachability check of a real broker.
const pingTimeout = 10 * time.Second

// Full reports whether the full test suite is running (CI=true or
// EVENTFLOW_TEST_FULL=1): real services must then be present.
func Full() bool {
	return os.Getenv("CI") == "true" || os.Getenv("EVENTFLOW_TEST_FULL") == "1"
}

// Brokers returns brokers for the test: the real ones from
// EVENTFLOW_TEST_KAFKA_BROKERS if set (and reachable), else a fresh
// embedded broker closed when the test ends. In the full suite the real
// broker is required.
func Brokers(t testing.TB) []string {
	t.Helper()
	if len(envBrokers()) > 0 || Full() {
		return RequireReal(t)
	}
	return Embedded(t)
}

// RequireReal returns the brokers of the real cluster named by
// EVENTFLOW_TEST_KAFKA_BROKERS, after checking one answers. Without the
// setting it skips the test, or fails it in the full suite. An unreachable
// broker always fails the test: the setting says it should be there.
func RequireReal(t testing.TB) []string {
	t.Helper()
	brokers := envBrokers()
	if len(brokers) == 0 {
		const msg = EnvBrokers + " is not set: no real Kafka to test against " +
			"(start one with `scripts/services.sh start kafka` and `eval \"$(scripts/services.sh env)\"`)"
		if Full() {
			t.Fatal(msg + "; the full suite (CI=true or EVENTFLOW_TEST_FULL=1) requires it")
		}
		t.Skip(msg)
	}
	client, err := kafka.NewClient(brokers)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := kafka.Ping(ctx, client); err != nil {
		t.Fatalf("kafkatest: %s=%s is set but no broker answers: %v (is `scripts/services.sh start kafka` running?)",
			EnvBrokers, strings.Join(brokers, ","), err)
	}
	return brokers
}

// Embedded starts an embedded broker on a free port for the test and
// returns its address; the test's end closes it.
func Embedded(t testing.TB) []string {
	t.Helper()
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}

// Run runs fn as a subtest against each broker: "embedded", always, and
// "real", which RequireReal skips or fails when there is none. This runs one
// suite against both, as the kafka package's own tests do.
func Run(t *testing.T, fn func(t *testing.T, brokers []string)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { fn(t, Embedded(t)) })
	t.Run("real", func(t *testing.T) { fn(t, RequireReal(t)) })
}

func envBrokers() []string {
	var brokers []string
	for _, b := range strings.Split(os.Getenv(EnvBrokers), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return brokers
}

// TopicName returns a topic name unique to this test and run, valid under
// kafka.ValidTopicName: "test.<test name>.<random>". Tests on a shared real
// cluster thus never see each other's records.
func TopicName(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(t.Name()) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			if b.Len() == 0 && c <= '9' {
				b.WriteByte('t') // a segment starts with a letter
			}
			b.WriteRune(c)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if name == "" {
		name = "t"
	}
	const maxName = 200 // leaves room for the prefix and suffix within 249
	if len(name) > maxName {
		name = strings.TrimRight(name[:maxName], "-")
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	topic := "test." + name + ".r" + hex.EncodeToString(rnd[:])
	if err := kafka.ValidTopicName(topic); err != nil {
		t.Fatalf("kafkatest: made an invalid topic name: %v", err)
	}
	return topic
}

// CreateTopic creates a topic unique to the test (see TopicName) with the
// given partitions and replication factor 1, deletes it when the test ends,
// and returns its name.
func CreateTopic(t testing.TB, brokers []string, partitions int32) string {
	t.Helper()
	topic := TopicName(t)
	adm := Admin(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := kafka.TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: 1}
	if _, err := kafka.ApplyTopics(ctx, adm, []kafka.TopicSpec{spec}); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Best effort: this keeps a shared real cluster tidy, and a topic
		// left behind harms nobody since names are unique.
		_, _ = adm.DeleteTopics(ctx, topic)
	})
	return topic
}

// Admin returns an admin client for brokers, closed when the test ends.
func Admin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	client, err := kafka.NewClient(brokers)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(client.Close)
	return kadm.NewClient(client)
}

// Consume reads the first n records of topic, across all its partitions,
// with read_committed isolation, so records of open or aborted transactions
// are never returned. It fails the test if fewer than n arrive within
// timeout. Records of one partition come in offset order.
func Consume(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	client, err := kafka.NewClient(brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	recs := make([]*kgo.Record, 0, n)
	for len(recs) < n {
		fetches := client.PollRecords(ctx, n-len(recs))
		if ctx.Err() != nil {
			t.Fatalf("kafkatest: read %d of %d records from %s in %v", len(recs), n, topic, timeout)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("kafkatest: fetch %s/%d: %v", topic, p, err)
		})
		recs = append(recs, fetches.Records()...)
	}
	return recs
}
