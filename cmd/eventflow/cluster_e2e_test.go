package main

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventflow/eventflow/internal/testenv"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

// envCluster names the three brokers of scripts/kafka-cluster.sh, which
// `scripts/kafka-cluster.sh env` prints.
const envCluster = "EVENTFLOW_TEST_KAFKA_CLUSTER"

// clusterWait bounds each wait on the cluster: a restarted broker back in
// every ISR, the outbox drained.
const clusterWait = 2 * time.Minute

// Replication under broker failure: eventflow's orders API and relay run as
// processes of their own on a three-broker cluster (replication factor 3,
// min.insync.replicas 2), once per delivery guarantee that waits for
// acks=all.
//
//  1. The broker leading the most partitions of the topic is SIGKILLed while
//     orders are created and changed, and restarted while they still are.
//     Every committed order change (an order at version v has events 1..v)
//     is then in the topic, in order per order.
//  2. Two of the three brokers are SIGKILLed. Orders are still taken, since
//     they only need the database, but no publish can be acknowledged: the
//     outbox keeps every one of their events, and the surviving broker
//     refuses a record sent to it with acks=all. One broker back, the outbox
//     drains; both back, the topic holds everything.
//
// Run it with scripts/kafka-cluster.sh (see docs/testing.md).
func TestKafkaClusterLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts Kafka brokers")
	}
	if raceDetector {
		// The race detector watches this process, which only drives the
		// test; eventflow runs in processes of its own, built without it.
		// A second run of several minutes would check nothing more.
		t.Skip("not under -race")
	}
	c := requireCluster(t)
	for _, g := range []kafka.Guarantee{kafka.ExactlyOnce, kafka.AtLeastOnce} {
		t.Run(string(g), func(t *testing.T) { testClusterFailures(t, c, g) })
	}
}

func testClusterFailures(t *testing.T, c *kafkaCluster, guarantee kafka.Guarantee) {
	ctx := context.Background()
	dbURL := testenv.FreshPostgres(t)
	topic, deadLetters, probe := kafkatest.TopicName(t), kafkatest.TopicName(t), kafkatest.TopicName(t)
	// Cleanups run last first: stop eventflow, start the brokers the test
	// stopped, delete the topics.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = c.adm.DeleteTopics(ctx, topic, deadLetters, probe) // best effort: names are unique
	})
	c.use(t)
	c.createTopic(t, probe)
	env := map[string]string{
		"EVENTFLOW_DATABASE_URL":              dbURL,
		"EVENTFLOW_KAFKA_BROKERS":             strings.Join(c.brokers, ","),
		"EVENTFLOW_DATA_DIR":                  t.TempDir(),
		"EVENTFLOW_HTTP_ADDR":                 "127.0.0.1:0",
		"EVENTFLOW_LOG_LEVEL":                 "warn",
		"EVENTFLOW_ORDERS_TOPIC":              topic,
		"EVENTFLOW_DEAD_LETTER_TOPIC":         deadLetters,
		"EVENTFLOW_TOPIC_REPLICATION_FACTOR":  "3",
		"EVENTFLOW_TOPIC_MIN_INSYNC_REPLICAS": "2",
		"EVENTFLOW_DELIVERY_GUARANTEE":        string(guarantee),
		"EVENTFLOW_RELAY_POLL_INTERVAL":       "100ms",
		"EVENTFLOW_RELAY_BATCH_SIZE":          "100",
	}
	// A transactional id of its own, so that no earlier run's relay can
	// fence this one, or be.
	txnID := "eventflow-relay-" + topic
	if guarantee == kafka.ExactlyOnce {
		env["EVENTFLOW_RELAY_TRANSACTIONAL_ID"] = txnID
	}
	api := startProcess(t, withEnv(env, "EVENTFLOW_ROLES", "orders-api"))
	relay := startProcess(t, withEnv(env, "EVENTFLOW_ROLES", "relay"))
	c.checkTopicSettings(t, topic)

	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// 1. One broker killed mid-stream and restarted.
	backlog := watchBacklog(t, db)
	failuresBefore := metricValue(t, relay.baseURL, "eventflow_relay_publish_failures_total")
	drv := driveOrders(api.baseURL, 4, 5000)
	waitMetric(t, relay.baseURL, "eventflow_relay_published_events_total", 200, time.Minute)
	coordinator := int32(-1)
	if guarantee == kafka.ExactlyOnce {
		coordinator = c.txnCoordinator(t, txnID)
	}
	leaders := c.leaderCounts(t, topic)
	victim := busiest(leaders, coordinator)
	t.Logf("partition leaders of %s by broker: %v; transaction coordinator: %d; killing broker %d",
		topic, leaders, coordinator, victim)
	killed := time.Now()
	c.kill(t, victim)
	fenced := c.waitFenced(t, victim)
	// Keep writing through the leader elections, then bring it back while
	// writes go on.
	time.Sleep(time.Until(killed.Add(15 * time.Second)))
	c.restart(t, victim)
	down := time.Since(killed)
	time.Sleep(2 * time.Second)
	acked := drv.halt(t)
	drained := waitOutboxEmpty(t, db)
	maxBacklog := backlog.stop()
	c.waitHealthy(t)
	versions := committedVersions(t, db)
	got := checkTopic(t, c.brokers, topic, versions)
	checkAcked(t, acked, versions)
	failures := metricValue(t, relay.baseURL, "eventflow_relay_publish_failures_total") - failuresBefore
	t.Logf("%s, broker %d SIGKILLed (fenced after %v, back after %v): %d orders, %d events committed, "+
		"%d records read, %d duplicates, 0 lost, 0 out of order; relay publish failures %v, "+
		"largest outbox backlog %d, outbox drained %v after the writers stopped",
		guarantee, victim, fenced.Round(100*time.Millisecond), down.Round(100*time.Millisecond),
		len(versions), got.events, got.records, got.duplicates, failures, maxBacklog,
		drained.Round(100*time.Millisecond))

	// 2. Two brokers down: nothing can be acknowledged, so nothing may leave
	// the outbox; orders are still taken.
	before := sumVersions(versions)
	// Leadership back on the preferred replicas (as Kafka's periodic
	// rebalance would do in a few minutes), so that every broker leads
	// partitions again; the one that leads the probe's partition 0 stays.
	c.electPreferred(t)
	const probePartition = 0
	survivor := c.leaderOf(t, probe, probePartition)
	var first, second int32
	for n := int32(1); n <= 3; n++ {
		switch {
		case n == survivor:
		case first == 0:
			first = n
		default:
			second = n
		}
	}
	// The same request while all three run is acknowledged: the refusal
	// below is the outage's doing, not the request's. (Until the broker
	// has applied the election, it answers NOT_LEADER_FOR_PARTITION.)
	probeID := c.metadata(t, probe).Topics[probe].ID
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		answer, err := c.produceAcksAll(probe, probeID, probePartition, survivor, 5*time.Second)
		if err == nil && answer == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("broker %d, all three brokers up, answered a record with %v (%v)", survivor, answer, err)
		}
	}
	failuresBefore = metricValue(t, relay.baseURL, "eventflow_relay_publish_failures_total")
	published := metricValue(t, relay.baseURL, "eventflow_relay_published_events_total")
	c.kill(t, first)
	c.kill(t, second)
	outage := time.Now()
	drv = driveOrders(api.baseURL, 2, 25)
	acked = drv.wait(t)
	versions = committedVersions(t, db)
	waiting := sumVersions(versions) - before
	if waiting == 0 {
		t.Fatal("no order change committed with two brokers down")
	}
	// The surviving broker, leader of the probe's partition, is asked to
	// take a record with acks=all, while the outbox is watched for the rest
	// of the outage.
	type probeResult struct {
		answer, err error
		took        time.Duration
	}
	probed := make(chan probeResult, 1)
	go func() {
		start := time.Now()
		answer, err := c.produceAcksAll(probe, probeID, probePartition, survivor, 5*time.Second)
		probed <- probeResult{answer, err, time.Since(start)}
	}()
	const hold = 20 * time.Second
	for time.Since(outage) < hold {
		if n := outboxCount(t, db); n != waiting {
			t.Fatalf("with brokers %d and %d down, %d of %d events left the outbox: "+
				"the relay was acknowledged below min.insync.replicas", first, second, waiting-n, waiting)
		}
		time.Sleep(250 * time.Millisecond)
	}
	switch r := <-probed; {
	case r.err != nil:
		t.Fatalf("produce to broker %d: %v", survivor, r.err)
	case r.answer == nil:
		t.Fatalf("broker %d alone acknowledged a record with acks=all", survivor)
	default:
		t.Logf("broker %d alone, asked to take a record for %s/%d (which it leads) with acks=all, "+
			"answered after %v: %v", survivor, probe, probePartition, r.took.Round(100*time.Millisecond), r.answer)
	}
	if n := metricValue(t, relay.baseURL, "eventflow_relay_published_events_total"); n != published {
		t.Fatalf("the relay counted %v events published with two brokers down", n-published)
	}
	failures = metricValue(t, relay.baseURL, "eventflow_relay_publish_failures_total") - failuresBefore
	t.Logf("brokers %d and %d down for %v: %d orders and %d events taken by the API, all %d still in the outbox, "+
		"0 published; relay publish failures in that time: %v", first, second, time.Since(outage).Round(time.Second),
		len(acked), waiting, waiting, failures)

	c.restart(t, second)
	drained = waitOutboxEmpty(t, db)
	t.Logf("broker %d back: the outbox drained %v later", second, drained.Round(100*time.Millisecond))
	c.restart(t, first)
	c.waitHealthy(t)
	versions = committedVersions(t, db)
	checkAcked(t, acked, versions)
	got = checkTopic(t, c.brokers, topic, versions)
	t.Logf("%s, end of run: %d orders, %d events committed, %d records read, %d duplicates, 0 lost, 0 out of order",
		guarantee, len(versions), got.events, got.records, got.duplicates)
}

// kafkaCluster is the cluster of scripts/kafka-cluster.sh, whose node N is
// broker N.
type kafkaCluster struct {
	brokers []string
	script  string
	client  *kgo.Client
	adm     *kadm.Client
	down    map[int32]bool
}

// requireCluster returns the cluster named by EVENTFLOW_TEST_KAFKA_CLUSTER.
// Without the setting it skips the test, or fails it in a strict run.
func requireCluster(t *testing.T) *kafkaCluster {
	t.Helper()
	var brokers []string
	for _, b := range strings.Split(os.Getenv(envCluster), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		msg := envCluster + " is not set, so the three-broker tests cannot run; start the cluster with " +
			`scripts/kafka-cluster.sh start and eval "$(scripts/kafka-cluster.sh env)"`
		if testenv.Strict() {
			t.Fatal(msg + " (a strict run, CI=true or EVENTFLOW_TEST_FULL=1, needs it)")
		}
		t.Skip(msg)
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "kafka-cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := kafka.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return &kafkaCluster{brokers: brokers, script: script, client: client, adm: kadm.NewClient(client), down: map[int32]bool{}}
}

// use waits until all three brokers run and every partition is fully
// replicated, and starts again, when t ends, every broker t stopped.
func (c *kafkaCluster) use(t *testing.T) {
	t.Helper()
	c.waitHealthy(t)
	t.Cleanup(func() {
		for _, n := range slices.Sorted(maps.Keys(c.down)) {
			c.restart(t, n)
		}
		c.waitHealthy(t)
	})
}

// runScript runs scripts/kafka-cluster.sh with args.
func (c *kafkaCluster) runScript(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.script, args...).CombinedOutput()
	t.Logf("kafka-cluster.sh %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("kafka-cluster.sh %s: %v", strings.Join(args, " "), err)
	}
}

// kill SIGKILLs broker n.
func (c *kafkaCluster) kill(t *testing.T, n int32) {
	t.Helper()
	c.down[n] = true
	c.runScript(t, "kill", strconv.Itoa(int(n)))
}

// restart starts broker n again on its data.
func (c *kafkaCluster) restart(t *testing.T, n int32) {
	t.Helper()
	c.runScript(t, "restart", strconv.Itoa(int(n)))
	delete(c.down, n)
}

// metadata asks a broker, not the client's cache.
func (c *kafkaCluster) metadata(t *testing.T, topics ...string) kadm.Metadata {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := c.adm.Metadata(kadm.WithAuthorizedOps(ctx), topics...)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	return m
}

// waitFenced waits until the cluster stops listing broker n, which happens
// when the controller quorum has noticed it gone, and returns how long that
// took.
func (c *kafkaCluster) waitFenced(t *testing.T, n int32) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < clusterWait {
		if !slices.ContainsFunc(c.metadata(t).Brokers, func(b kadm.BrokerDetail) bool { return b.NodeID == n }) {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("broker %d still listed %v after SIGKILL: is %s a cluster of scripts/kafka-cluster.sh?",
		n, clusterWait, envCluster)
	return 0
}

// waitHealthy waits until all three brokers are listed and every partition
// of every topic, Kafka's own included, has a leader and all its replicas
// in sync.
func (c *kafkaCluster) waitHealthy(t *testing.T) {
	t.Helper()
	start := time.Now()
	var problem string
	for time.Since(start) < clusterWait {
		problem = ""
		m := c.metadata(t)
		if len(m.Brokers) != 3 {
			problem = fmt.Sprintf("%d brokers listed", len(m.Brokers))
		}
		for _, td := range m.Topics {
			for _, p := range td.Partitions {
				if problem == "" && (p.Leader < 0 || len(p.ISR) < len(p.Replicas)) {
					problem = fmt.Sprintf("%s/%d: leader %d, replicas %v, in sync %v", td.Topic, p.Partition, p.Leader, p.Replicas, p.ISR)
				}
			}
		}
		if problem == "" {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("cluster not healthy after %v: %s", clusterWait, problem)
}

// checkTopicSettings checks that eventflow created topic as configured.
func (c *kafkaCluster) checkTopicSettings(t *testing.T, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	infos, err := kafka.ListTopics(ctx, c.adm)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(infos, func(ti kafka.TopicInfo) bool { return ti.Name == topic })
	if i < 0 {
		t.Fatalf("topic %s not created", topic)
	}
	if info := infos[i]; info.ReplicationFactor != 3 || info.MinInsyncReplicas != 2 {
		t.Fatalf("topic %s: replication factor %d, min.insync.replicas %d; want 3 and 2",
			topic, info.ReplicationFactor, info.MinInsyncReplicas)
	}
}

// createTopic creates a topic with three partitions, replication factor 3
// and min.insync.replicas 2.
func (c *kafkaCluster) createTopic(t *testing.T, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := kafka.TopicSpec{Name: topic, Partitions: 3, ReplicationFactor: 3, MinInsyncReplicas: 2}
	if _, err := kafka.ApplyTopics(ctx, c.adm, []kafka.TopicSpec{spec}); err != nil {
		t.Fatal(err)
	}
}

// leaderOf returns the broker leading partition p of topic.
func (c *kafkaCluster) leaderOf(t *testing.T, topic string, p int32) int32 {
	t.Helper()
	leader := c.metadata(t, topic).Topics[topic].Partitions[p].Leader
	if leader < 1 || leader > 3 {
		t.Fatalf("%s/%d has no leader among brokers 1 to 3 (leader %d)", topic, p, leader)
	}
	return leader
}

// electPreferred moves the leadership of every partition back to its
// preferred replica (all are in sync: see waitHealthy) and waits until the
// brokers say so.
func (c *kafkaCluster) electPreferred(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Partitions already led by their preferred replica answer
	// ELECTION_NOT_NEEDED; only the request itself must succeed.
	if _, err := c.adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil); err != nil {
		t.Fatalf("elect preferred leaders: %v", err)
	}
	start := time.Now()
	for {
		moved := true
		for _, td := range c.metadata(t).Topics {
			for _, p := range td.Partitions {
				moved = moved && len(p.Replicas) > 0 && p.Leader == p.Replicas[0]
			}
		}
		if moved {
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("leaders not on their preferred replicas 30s after the election")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// produceAcksAll sends one record straight to broker leader, for partition
// p of topic (whose id is topicID), with acks=all and no retries, and returns
// the broker's answer: nil if it acknowledged the record, else the error of
// the code it answered with. err is set if no answer came.
func (c *kafkaCluster) produceAcksAll(topic string, topicID kadm.TopicID, p, leader int32, timeout time.Duration) (answer, err error) {
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = p
	rp.Records = recordBatch([]byte("probe"))
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = topic, topicID // by name before Produce v13, by id since
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = int32(timeout.Milliseconds())
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.client.Broker(int(leader)))
	if err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("an answer for %d topics", len(resp.Topics))
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode), nil
}

// recordBatch encodes value as a batch of one record (magic 2) of no
// producer.
func recordBatch(value []byte) []byte {
	rec := kmsg.Record{Value: value}
	// A record's length counts the bytes after it; encoded as 0 it took one.
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	now := time.Now().UnixMilli()
	batch := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              rec.AppendTo(nil),
	}
	raw := batch.AppendTo(nil)
	// The batch length counts the bytes after the first offset and itself;
	// the CRC-32C covers those after the CRC, from the attributes on.
	putUint32 := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
	putUint32(raw[8:], uint32(len(raw)-12))
	putUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// leaderCounts counts the partitions of topic each live broker leads.
func (c *kafkaCluster) leaderCounts(t *testing.T, topic string) map[int32]int {
	t.Helper()
	m := c.metadata(t, topic)
	counts := map[int32]int{}
	for _, b := range m.Brokers {
		counts[b.NodeID] = 0
	}
	for _, p := range m.Topics[topic].Partitions {
		if p.Leader >= 0 {
			counts[p.Leader]++
		}
	}
	return counts
}

// txnCoordinator returns the broker coordinating the transactions of txnID.
func (c *kafkaCluster) txnCoordinator(t *testing.T, txnID string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, ok := c.adm.FindTxnCoordinators(ctx, txnID)[txnID]
	if !ok || r.Err != nil {
		t.Fatalf("find the coordinator of %s: %v", txnID, r.Err)
	}
	return r.NodeID
}

// busiest returns the broker leading the most partitions; a tie goes to
// prefer, then to the lowest id.
func busiest(counts map[int32]int, prefer int32) int32 {
	best, bestN := int32(-1), -1
	for _, b := range slices.Sorted(maps.Keys(counts)) {
		if n := counts[b]; n > bestN || n == bestN && b == prefer {
			best, bestN = b, n
		}
	}
	return best
}

// orderDriver creates orders and moves some along their lifecycle, from
// several writers at once, and remembers the version the API acknowledged
// for each order.
type orderDriver struct {
	stop   atomic.Bool
	wg     sync.WaitGroup
	failed atomic.Int64
	mu     sync.Mutex
	acked  map[string]int64
}

// driveOrders starts writers, each writing up to perWriter orders until
// halted.
func driveOrders(base string, writers, perWriter int) *orderDriver {
	d := &orderDriver{acked: map[string]int64{}}
	for w := range writers {
		d.wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < perWriter && !d.stop.Load(); i++ {
				id, ok := postOrder(client, base, fmt.Sprintf("cluster-user-%d", w))
				if !ok {
					d.failed.Add(1)
					continue
				}
				version := int64(1)
				for _, s := range []string{"paid", "shipped", "delivered"}[:i%4] {
					if !postStatus(client, base, id, s) {
						d.failed.Add(1)
						break
					}
					version++
				}
				d.mu.Lock()
				d.acked[id] = version
				d.mu.Unlock()
				time.Sleep(15 * time.Millisecond)
			}
		})
	}
	return d
}

// halt stops the writers and returns what the API acknowledged.
func (d *orderDriver) halt(t *testing.T) map[string]int64 {
	t.Helper()
	d.stop.Store(true)
	return d.wait(t)
}

// wait waits until the writers are done and returns what the API
// acknowledged. The API needs only the database, so no request may fail
// whatever the brokers do.
func (d *orderDriver) wait(t *testing.T) map[string]int64 {
	t.Helper()
	d.wg.Wait()
	if n := d.failed.Load(); n > 0 {
		t.Errorf("%d order requests failed", n)
	}
	return d.acked
}

// backlogWatch records the largest outbox backlog seen.
type backlogWatch struct {
	done chan struct{}
	max  atomic.Int64
	wg   sync.WaitGroup
}

func watchBacklog(t *testing.T, db *pgxpool.Pool) *backlogWatch {
	w := &backlogWatch{done: make(chan struct{})}
	w.wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			var n int64
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := db.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n)
			cancel()
			if err != nil {
				t.Errorf("count the outbox: %v", err)
				return
			}
			if n > w.max.Load() {
				w.max.Store(n)
			}
		}
	})
	return w
}

func (w *backlogWatch) stop() int64 {
	close(w.done)
	w.wg.Wait()
	return w.max.Load()
}

func outboxCount(t *testing.T, db *pgxpool.Pool) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n); err != nil {
		t.Fatalf("count the outbox: %v", err)
	}
	return n
}

// waitOutboxEmpty waits until the relay has published and deleted every
// outbox record and returns how long that took.
func waitOutboxEmpty(t *testing.T, db *pgxpool.Pool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < clusterWait {
		if outboxCount(t, db) == 0 {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%d events still in the outbox after %v", outboxCount(t, db), clusterWait)
	return 0
}

// committedVersions returns every order's version from the database: the
// order changes that committed, each of which has its event.
func committedVersions(t *testing.T, db *pgxpool.Pool) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, "SELECT id::text, version FROM orders")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	versions := map[string]int64{}
	for rows.Next() {
		var (
			id string
			v  int64
		)
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		versions[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return versions
}

func sumVersions(versions map[string]int64) int64 {
	var n int64
	for _, v := range versions {
		n += v
	}
	return n
}

// checkAcked checks that every change the API acknowledged is committed.
func checkAcked(t *testing.T, acked, versions map[string]int64) {
	t.Helper()
	for id, v := range acked {
		if versions[id] < v {
			t.Errorf("order %s: the API acknowledged version %d, the database has %d", id, v, versions[id])
		}
	}
}

type topicCheck struct{ records, events, duplicates int }

// checkTopic reads the whole topic (read_committed) and checks it against
// the committed versions: for each order at version v, events 1..v, each
// after the one before, none missing, none for changes that never
// committed. Repeated event ids are counted, not failed: the relay's
// guarantees allow them after a failure.
func checkTopic(t *testing.T, brokers []string, topic string, versions map[string]int64) topicCheck {
	t.Helper()
	records := consumeAll(t, brokers, topic)
	seen := map[string]bool{}
	last := map[string]int64{}
	var c topicCheck
	c.records = len(records)
	for _, rec := range records {
		e, err := kafka.DecodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.ID] {
			c.duplicates++
			continue
		}
		seen[e.ID] = true
		c.events++
		if string(rec.Key) != e.Subject {
			t.Fatalf("event %s keyed %q, not by its order %s", e.ID, rec.Key, e.Subject)
		}
		if e.Sequence != last[e.Subject]+1 {
			t.Fatalf("order %s: event %d after %d: out of order or missing", e.Subject, e.Sequence, last[e.Subject])
		}
		if e.Sequence > versions[e.Subject] {
			t.Fatalf("order %s: event %d in Kafka, but the database has version %d", e.Subject, e.Sequence, versions[e.Subject])
		}
		last[e.Subject] = e.Sequence
	}
	lost := 0
	for id, v := range versions {
		if last[id] != v {
			lost += int(v - last[id])
			if lost < 20 {
				t.Errorf("order %s: %d of %d events in Kafka", id, last[id], v)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d committed events missing from %s", lost, topic)
	}
	return c
}

// metricValue reads an unlabelled metric from the process's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		if v, ok := strings.CutPrefix(lines.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return 0 // not reported yet
}

// waitMetric waits until the metric reaches at least want.
func waitMetric(t *testing.T, base, name string, want float64, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if metricValue(t, base, name) >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s below %v after %v", name, want, timeout)
}
