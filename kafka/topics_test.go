package kafka_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

func TestValidTopicName(t *testing.T) {
	tests := []struct {
		name string
		want string // "" when valid, else part of the error
	}{
		{"orders.order.events", ""},
		{"orders.order.created", ""},
		{"orders.order.events.v2", ""},
		{"orders.order-line.dead-letter", ""},
		{"a.b.c", ""},
		{"a1.b2.c3", ""},
		{"notifications.delivery.retry-30s", ""},
		{"", "empty"},
		{"orders", "want at least 3"},
		{"orders.order", "want at least 3"},
		{"Orders.order.events", "must start with a lower-case letter"},
		{"orders.Order.events", "must start with a lower-case letter"},
		{"orders.order.Events", "must start with a lower-case letter"},
		{"orders.ORDER.events", "must start with a lower-case letter"},
		{"orders.oRder.events", "may hold only a-z, 0-9 and '-'"},
		{"orders.order_line.events", "may hold only a-z, 0-9 and '-'"},
		{"orders.order.events!", "may hold only a-z, 0-9 and '-'"},
		{"orders.order events.x", "may hold only a-z, 0-9 and '-'"},
		{"orders..events", "segment 2 is empty"},
		{".orders.order.events", "segment 1 is empty"},
		{"orders.order.events.", "segment 4 is empty"},
		{"1orders.order.events", "must start with a lower-case letter"},
		{"orders.-order.events", "must start with a lower-case letter"},
		{"__consumer_offsets", "want at least 3"},
		{"__orders.order.events", "must start with a lower-case letter"},
		{"orders.order.ëvents", "must start with a lower-case letter"},
		{"a.b." + strings.Repeat("c", 245), ""}, // 249 characters
		{"a.b." + strings.Repeat("c", 246), "at most 249"},
	}
	for _, tt := range tests {
		err := kafka.ValidTopicName(tt.name)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidTopicName(%q) = %v, want nil", tt.name, err)
		case tt.want != "" && err == nil:
			t.Errorf("ValidTopicName(%q) = nil, want an error saying %q", tt.name, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("ValidTopicName(%q) = %v, want it to say %q", tt.name, err, tt.want)
		}
	}
}

func TestApplyTopicsRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	adm := kafkatest.Admin(t, kafkatest.Embedded(t))
	ctx := context.Background()
	good := kafka.TopicSpec{Name: "orders.order.events", Partitions: 3, ReplicationFactor: 1}
	tests := []struct {
		name  string
		specs []kafka.TopicSpec
		want  string
	}{
		{"bad name", []kafka.TopicSpec{good, {Name: "orders_events", Partitions: 1}}, "want at least 3"},
		{"no partitions", []kafka.TopicSpec{good, {Name: "a.b.c"}}, "partitions 0, want at least 1"},
		{"negative replication", []kafka.TopicSpec{{Name: "a.b.c", Partitions: 1, ReplicationFactor: -1}}, "replication factor -1"},
		{"min isr above replication", []kafka.TopicSpec{{Name: "a.b.c", Partitions: 1, ReplicationFactor: 1, MinInsyncReplicas: 2}}, "exceeds replication factor 1"},
		{"declared twice", []kafka.TopicSpec{good, good}, "declared twice"},
	}
	for _, tt := range tests {
		_, err := kafka.ApplyTopics(ctx, adm, tt.specs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.want)
		}
	}
	// A bad spec in the list stops the good ones too.
	topics, err := kafka.ListTopics(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	if len(topics) != 0 {
		t.Errorf("bad specs created topics: %+v", topics)
	}
}

func TestApplyTopics(t *testing.T) {
	t.Parallel()
	kafkatest.Run(t, func(t *testing.T, brokers []string) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		adm := kafkatest.Admin(t, brokers)
		base := kafkatest.TopicName(t)
		events := kafka.TopicSpec{Name: base + ".events", Partitions: 3, ReplicationFactor: 1, MinInsyncReplicas: 1, Retention: 7 * 24 * time.Hour}
		dead := kafka.TopicSpec{Name: base + ".dead", Partitions: 1, ReplicationFactor: 1, Retention: -1}
		t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), events.Name, dead.Name) })

		apply := func(specs ...kafka.TopicSpec) []kafka.TopicResult {
			t.Helper()
			res, err := kafka.ApplyTopics(ctx, adm, specs)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}

		got := apply(events, dead)
		want := []kafka.TopicResult{
			{Name: events.Name, Created: true, Partitions: 3},
			{Name: dead.Name, Created: true, Partitions: 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("first apply:\n got %+v\nwant %+v", got, want)
		}
		checkTopic(ctx, t, adm, kafka.TopicInfo{Name: events.Name, Partitions: 3, ReplicationFactor: 1, MinInsyncReplicas: 1, Retention: 7 * 24 * time.Hour, CleanupPolicy: "delete"})
		checkTopic(ctx, t, adm, kafka.TopicInfo{Name: dead.Name, Partitions: 1, ReplicationFactor: 1, MinInsyncReplicas: 1, Retention: -1, CleanupPolicy: "delete"})

		// Idempotent: the same specs again change nothing.
		got = apply(events, dead)
		want = []kafka.TopicResult{{Name: events.Name, Partitions: 3}, {Name: dead.Name, Partitions: 1}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("second apply:\n got %+v\nwant %+v", got, want)
		}

		// A changed retention is altered, and only it.
		events.Retention = 36 * time.Hour
		got = apply(events)
		want = []kafka.TopicResult{{Name: events.Name, Partitions: 3, Altered: []string{"retention.ms: 604800000 -> 129600000"}}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("apply with new retention:\n got %+v\nwant %+v", got, want)
		}
		checkTopic(ctx, t, adm, kafka.TopicInfo{Name: events.Name, Partitions: 3, ReplicationFactor: 1, MinInsyncReplicas: 1, Retention: 36 * time.Hour, CleanupPolicy: "delete"})
		if got = apply(events); !reflect.DeepEqual(got, []kafka.TopicResult{{Name: events.Name, Partitions: 3}}) {
			t.Fatalf("apply after altering: %+v", got)
		}

		// More partitions are added; fewer, or another replication factor,
		// are reported and left alone.
		events.Partitions = 6
		got = apply(events)
		want = []kafka.TopicResult{{Name: events.Name, Partitions: 6, PartitionsAdded: 3}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("apply with more partitions:\n got %+v\nwant %+v", got, want)
		}
		events.Partitions, events.ReplicationFactor, events.MinInsyncReplicas = 2, 3, 2
		got = apply(events)
		want = []kafka.TopicResult{{
			Name:       events.Name,
			Partitions: 6,
			Altered:    []string{"min.insync.replicas: 1 -> 2"},
			Mismatches: []string{
				"has 6 partitions, spec wants 2; partitions are never removed",
				"has replication factor 1, spec wants 3; reassign replicas to change it",
			},
		}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("apply with fewer partitions:\n got %+v\nwant %+v", got, want)
		}
		checkTopic(ctx, t, adm, kafka.TopicInfo{Name: events.Name, Partitions: 6, ReplicationFactor: 1, MinInsyncReplicas: 2, Retention: 36 * time.Hour, CleanupPolicy: "delete"})
	})
}

// checkTopic checks that ListTopics lists want as it is, and no internal
// topic.
func checkTopic(ctx context.Context, t *testing.T, adm *kadm.Client, want kafka.TopicInfo) {
	t.Helper()
	topics, err := kafka.ListTopics(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ti := range topics {
		if strings.HasPrefix(ti.Name, "__") {
			t.Errorf("ListTopics lists internal topic %s", ti.Name)
		}
		if ti.Name == want.Name {
			found = true
			if ti != want {
				t.Errorf("ListTopics:\n got %+v\nwant %+v", ti, want)
			}
		}
	}
	if !found {
		t.Errorf("ListTopics does not list %s", want.Name)
	}
}
