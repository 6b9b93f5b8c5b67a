package kafka

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedConfig configures the embedded broker.
type EmbeddedConfig struct {
	// Port is the port to listen on, on 127.0.0.1 only; 0 picks a free one.
	// The application's default is 9092, Kafka's usual port, so that
	// Kafka tools find it without settings.
	Port int
	// DataDir keeps topics, records, committed offsets and group state
	// across restarts; "" keeps everything in memory. Records are written
	// to the operating system, not synced to disk, before they are
	// acknowledged: they survive a crash of the process but not necessarily
	// of the machine. A failed write (a full disk) fails the produce.
	DataDir string
	// Logger receives the broker's warnings and errors; nil discards them.
	Logger *slog.Logger
}

// EmbeddedBroker is a single-node Kafka-protocol broker running in this
// process (franz-go's kfake), for eventflow's embedded defaults and for
// tests. It supports what eventflow uses: idempotent and transactional
// producing, read_committed fetching and consumer groups. Any Kafka client
// can connect to it.
type EmbeddedBroker struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts an embedded broker. Topics are not created
// automatically, as on a production cluster: create them with ApplyTopics.
func StartEmbedded(cfg EmbeddedConfig) (*EmbeddedBroker, error) {
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("start embedded kafka: port %d out of range", cfg.Port)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("start embedded kafka: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on 127.0.0.1:%d: %w", cfg.Port, err)
	}
	return &EmbeddedBroker{cluster: cluster}, nil
}

// Addrs returns the broker's address, "127.0.0.1:port", as a seed list.
func (b *EmbeddedBroker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker and, with a DataDir, writes its state to disk.
// Clients still connected see their connections drop.
func (b *EmbeddedBroker) Close() { b.cluster.Close() }
