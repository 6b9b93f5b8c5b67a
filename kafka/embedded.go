package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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
	// KeepRecords is how many of its newest records each partition keeps
	// once they are consumed: records that every consumer group reading
	// the topic has committed, and that are older than the newest
	// KeepRecords, are deleted. Records a group has not read yet stay,
	// within the topic's retention.ms. 0 or less keeps every record (within
	// retention.ms).
	//
	// The bound is about memory as much as disk: the broker keeps an
	// index entry in memory for every record batch it holds, so without it
	// its size grows with every record ever produced.
	KeepRecords int64
	// TrimEvery is how often consumed records are deleted; 0 means every
	// 30 seconds.
	TrimEvery time.Duration
	// Logger receives the broker's warnings and errors; nil discards them.
	Logger *slog.Logger
}

// trimmedSegmentBytes is the segment size of a broker that deletes
// consumed records. A segment file leaves the disk only once all of it is
// deleted, and at start kfake reads every segment file whole and decodes
// all its batches: with its default of 100 MiB a partition, a restart
// would hold that much of deleted records in memory for a moment.
const trimmedSegmentBytes = 1 << 20

// EmbeddedBroker is a single-node Kafka-protocol broker running in this
// process (franz-go's kfake), for eventflow's embedded defaults and for
// tests. It supports what eventflow uses: idempotent and transactional
// producing, read_committed fetching and consumer groups. Any Kafka client
// can connect to it.
type EmbeddedBroker struct {
	cluster *kfake.Cluster

	// trimming, when KeepRecords is set
	admin    *kgo.Client
	keep     int64
	log      *slog.Logger
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
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
	if cfg.KeepRecords > 0 {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{
			"log.segment.bytes": strconv.Itoa(trimmedSegmentBytes),
		}))
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on 127.0.0.1:%d: %w", cfg.Port, err)
	}
	b := &EmbeddedBroker{cluster: cluster, stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.KeepRecords <= 0 {
		close(b.done)
		return b, nil
	}
	b.admin, err = NewClient(cluster.ListenAddrs())
	if err != nil {
		cluster.Close()
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	b.keep = cfg.KeepRecords
	b.log = cfg.Logger
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	every := cfg.TrimEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	go b.trimLoop(every)
	return b, nil
}

// Addrs returns the broker's address, "127.0.0.1:port", as a seed list.
func (b *EmbeddedBroker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker and, with a DataDir, writes its state to disk.
// Clients still connected see their connections drop.
func (b *EmbeddedBroker) Close() {
	b.stopOnce.Do(func() {
		close(b.stop)
		<-b.done
		if b.admin != nil {
			b.admin.Close()
		}
	})
	b.cluster.Close()
}

// trimLoop deletes consumed records every interval until Close.
func (b *EmbeddedBroker) trimLoop(every time.Duration) {
	defer close(b.done)
	// Close must not wait for a round trip in progress to time out.
	stopped, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-b.stop; cancel() }()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stopped.Done():
			return
		case <-t.C:
		}
		ctx, cancelRound := context.WithTimeout(stopped, every)
		if err := b.trimConsumed(ctx); err != nil && stopped.Err() == nil {
			b.log.Warn("embedded kafka: delete consumed records", "err", err)
		}
		cancelRound()
	}
}

// trimConsumed deletes, in every partition, the records that every consumer
// group reading its topic has committed, except the newest KeepRecords.
//
// A group reads a topic once it has committed an offset on any of its
// partitions; where it has not committed, the partition is kept whole,
// since the group would start there from the beginning. A group that never
// committed is not known to read anything: a consumer that starts later
// finds the newest KeepRecords of each partition.
func (b *EmbeddedBroker) trimConsumed(ctx context.Context) error {
	adm := kadm.NewClient(b.admin)
	// Records past the last stable offset may belong to an open
	// transaction: never delete up to there.
	stable, err := adm.ListCommittedOffsets(ctx)
	if err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx)
	if err != nil {
		return err
	}
	// upTo[topic][partition] is where deleting stops: KeepRecords before
	// the end, and no further than any group's committed offset.
	upTo := map[string]map[int32]int64{}
	stable.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || strings.HasPrefix(o.Topic, "__") {
			return
		}
		if upTo[o.Topic] == nil {
			upTo[o.Topic] = map[int32]int64{}
		}
		upTo[o.Topic][o.Partition] = o.Offset - b.keep
	})

	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return err
	}
	for _, g := range groups.Groups() {
		offsets, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			return fmt.Errorf("group %s: %w", g, err)
		}
		committed := map[string]map[int32]int64{}
		offsets.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil || o.At < 0 {
				return
			}
			if committed[o.Topic] == nil {
				committed[o.Topic] = map[int32]int64{}
			}
			committed[o.Topic][o.Partition] = o.At
		})
		for topic, parts := range committed {
			for p, to := range upTo[topic] {
				upTo[topic][p] = min(to, parts[p]) // 0 where not committed
			}
		}
	}

	del := kadm.Offsets{}
	for topic, parts := range upTo {
		for p, to := range parts {
			if start, ok := starts.Lookup(topic, p); ok && start.Err == nil && to > start.Offset {
				del.Add(kadm.Offset{Topic: topic, Partition: p, At: to, LeaderEpoch: -1})
			}
		}
	}
	if len(del) == 0 {
		return nil
	}
	resp, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		return err
	}
	return resp.Error()
}
