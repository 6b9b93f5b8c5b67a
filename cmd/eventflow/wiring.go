package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/eventflow/eventflow/config"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
	"github.com/eventflow/eventflow/postgres"
	"github.com/eventflow/eventflow/sqlite"
)

// storage is the database behind the stores, whichever it is.
type storage struct {
	Orders          orders.Store
	Outbox          outbox.Store
	Notifications   notifications.Store
	Ping            func(context.Context) error
	Migrate         func(context.Context) error
	MigrationStatus func(context.Context) ([]*goose.MigrationStatus, error)
	Close           func()
	Description     string
}

// openStorage opens PostgreSQL when a database URL is set, and the embedded
// SQLite file in the data folder otherwise.
func openStorage(ctx context.Context, cfg config.Config) (*storage, error) {
	if !cfg.EmbeddedDatabase() {
		db, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, err
		}
		return &storage{
			Orders:          postgres.NewOrders(db),
			Outbox:          postgres.NewOutbox(db),
			Notifications:   postgres.NewNotifications(db),
			Ping:            db.Ping,
			Migrate:         db.Migrate,
			MigrationStatus: db.MigrationStatus,
			Close:           db.Close,
			Description:     "external PostgreSQL at " + redactURL(cfg.DatabaseURL),
		}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	db, err := sqlite.Open(ctx, cfg.SQLitePath())
	if err != nil {
		return nil, err
	}
	return &storage{
		Orders:          sqlite.NewOrders(db),
		Outbox:          sqlite.NewOutbox(db),
		Notifications:   sqlite.NewNotifications(db),
		Ping:            db.Ping,
		Migrate:         db.Migrate,
		MigrationStatus: db.MigrationStatus,
		Close:           func() { db.Close() },
		Description:     "embedded SQLite at " + cfg.SQLitePath(),
	}, nil
}

// redactURL hides the password of a connection URL in logs.
func redactURL(raw string) string {
	at := strings.LastIndex(raw, "@")
	scheme := strings.Index(raw, "://")
	if at < 0 || scheme < 0 {
		return raw
	}
	userinfo := raw[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return raw[:scheme+3] + user + ":xxxxx" + raw[at:]
	}
	return raw
}

// broker is the Kafka cluster eventflow talks to: an external one, or the
// embedded broker started here.
type broker struct {
	Brokers     []string
	Embedded    *kafka.EmbeddedBroker
	Description string
}

func startBroker(cfg config.Config, log *slog.Logger) (*broker, error) {
	if !cfg.EmbeddedKafka() {
		return &broker{
			Brokers:     cfg.KafkaBrokers,
			Description: "external Kafka at " + strings.Join(cfg.KafkaBrokers, ","),
		}, nil
	}
	if err := os.MkdirAll(cfg.KafkaDataDir(), 0o750); err != nil {
		return nil, fmt.Errorf("create broker data folder: %w", err)
	}
	eb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{
		Port:        cfg.EmbeddedKafkaPort,
		DataDir:     cfg.KafkaDataDir(),
		KeepRecords: cfg.EmbeddedKafkaKeepRecords,
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	return &broker{
		Brokers:     eb.Addrs(),
		Embedded:    eb,
		Description: "embedded Kafka-protocol broker at " + strings.Join(eb.Addrs(), ",") + " (data in " + cfg.KafkaDataDir() + ")",
	}, nil
}

func (b *broker) Close() {
	if b.Embedded != nil {
		b.Embedded.Close()
	}
}

// topicSpecs are the topics eventflow needs, from configuration: the order
// events and the notifier's dead letters, alike but for the name.
func topicSpecs(cfg config.Config) []kafka.TopicSpec {
	t := cfg.OrdersTopic
	spec := kafka.TopicSpec{
		Name:              t.Name,
		Partitions:        int32(t.Partitions),
		ReplicationFactor: int16(t.ReplicationFactor),
		MinInsyncReplicas: t.MinInsyncReplicas,
		Retention:         t.Retention,
	}
	deadLetters := spec
	deadLetters.Name = cfg.DeadLetterTopic
	return []kafka.TopicSpec{spec, deadLetters}
}

// applyTopics creates or updates the configured topics.
func applyTopics(ctx context.Context, brokers []string, cfg config.Config, out io.Writer) error {
	for _, spec := range topicSpecs(cfg) {
		if err := kafka.ValidTopicName(spec.Name); err != nil {
			return err
		}
	}
	client, err := kafka.NewClient(brokers)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results, err := kafka.ApplyTopics(ctx, kadm.NewClient(client), topicSpecs(cfg))
	if err != nil {
		return fmt.Errorf("apply topics: %w", err)
	}
	for _, r := range results {
		fmt.Fprintln(out, r)
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// limitMemory gives the Go runtime the configured soft memory limit and
// reports whether the process is to keep its memory small (see
// releaseIdleMemory). GOMEMLIMIT, when set, is the operator's own choice and
// wins over the setting.
func limitMemory(cfg config.Config, log *slog.Logger) bool {
	limit, ok, err := cfg.MemoryLimitBytes()
	if err != nil || !ok { // config.Parse has already refused a bad value
		return false
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Debug("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
	} else {
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit", "bytes", limit)
	}
	// On embedded defaults the live heap is small (10 to 20 MiB: the
	// broker's index, pools, templates), and the default GOGC of 100 lets
	// the heap reach twice that between collections. Half of it costs a
	// collection more often, each of a few milliseconds.
	if auto := cfg.MemoryLimit == "" || cfg.MemoryLimit == "auto"; auto && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(embeddedGCPercent)
	}
	return true
}

// embeddedGCPercent is GOGC on embedded defaults (see limitMemory).
const embeddedGCPercent = 50

// Idle memory release: see releaseIdleMemory.
const (
	idleCheckEvery = 30 * time.Second
	// idleAllocBytes is the most an idle eventflow allocates between two
	// checks (polling relay and workers, heartbeats, a metrics scrape): a
	// few MiB. A loaded one allocates tens of MiB a second.
	idleAllocBytes = 16 << 20
	// minReleaseBytes is the free heap worth giving back.
	minReleaseBytes = 4 << 20
)

// releaseIdleMemory gives the heap's free memory back to the operating
// system when the process has gone quiet. After a burst of load the heap
// keeps the pages it grew to: the runtime's own scavenger returns them
// slowly and only down to about twice the live heap, so a laptop would see
// the load's peak as eventflow's size for a long time. Releasing costs one
// garbage collection, and it runs only while nothing much is allocated.
func releaseIdleMemory(ctx context.Context) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(samples)
	lastAllocs := samples[0].Value.Uint64()
	t := time.NewTicker(idleCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		allocs, free := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		quiet := allocs-lastAllocs < idleAllocBytes
		lastAllocs = allocs
		if quiet && free >= minReleaseBytes {
			debug.FreeOSMemory()
		}
	}
}
