package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/kafka"
)

// ReadTopic reads every record of topic from the start, read_committed or
// not, and returns them in partition and offset order. It reads up to the
// end offsets it finds first: the last stable offset for read_committed
// (records of open transactions are not readable yet), the high watermark
// otherwise. It fails if that takes over two minutes.
func ReadTopic(ctx context.Context, brokers []string, topic string, committed bool) ([]*kgo.Record, error) {
	ends, err := endOffsets(ctx, brokers, topic, committed)
	if err != nil {
		return nil, err
	}
	isolation := kgo.ReadUncommitted()
	if committed {
		isolation = kgo.ReadCommitted()
	}
	client, err := kafka.NewClient(brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(isolation),
		// Transaction markers take offsets too: with them the reader sees
		// every offset up to the end, and knows when it got there.
		kgo.KeepControlRecords())
	if err != nil {
		return nil, err
	}
	defer client.Close()
	return readUntil(ctx, client, ends)
}

// readUntil polls client until every partition reached its end offset in
// ends, and returns the data records (not the transaction markers) in
// partition and offset order.
func readUntil(ctx context.Context, client *kgo.Client, ends map[int32]int64) ([]*kgo.Record, error) {
	var recs []*kgo.Record
	next := map[int32]int64{}
	behind := func() []string {
		var out []string
		for p, end := range ends {
			if next[p] < end {
				out = append(out, fmt.Sprintf("partition %d at %d of %d", p, next[p], end))
			}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(behind()) > 0 {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading the topic: %v; %s", ctx.Err(), strings.Join(behind(), ", "))
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				next[r.Partition] = r.Offset + 1
				if !r.Attrs.IsControl() {
					recs = append(recs, r)
				}
			}
		})
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].Partition != recs[j].Partition {
			return recs[i].Partition < recs[j].Partition
		}
		return recs[i].Offset < recs[j].Offset
	})
	return recs, nil
}

// endOffsets lists the end of each partition: the last stable offset when
// committed, else the high watermark.
func endOffsets(ctx context.Context, brokers []string, topic string, committed bool) (map[int32]int64, error) {
	client, err := kafka.NewClient(brokers)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(client)
	list := adm.ListEndOffsets
	if committed {
		list = adm.ListCommittedOffsets
	}
	listed, err := list(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	var lerr error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = o.Err
		}
		ends[o.Partition] = o.Offset
	})
	if lerr != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, lerr)
	}
	return ends, nil
}

// OpenTransactions lists the partitions whose last stable offset is behind
// their high watermark: a transaction is open there, and read_committed
// consumers cannot read past its start until it ends.
func OpenTransactions(ctx context.Context, brokers []string, topic string) ([]string, error) {
	stable, err := endOffsets(ctx, brokers, topic, true)
	if err != nil {
		return nil, err
	}
	high, err := endOffsets(ctx, brokers, topic, false)
	if err != nil {
		return nil, err
	}
	var open []string
	for p, h := range high {
		if stable[p] < h {
			open = append(open, fmt.Sprintf("partition %d stable at %d of %d", p, stable[p], h))
		}
	}
	sort.Strings(open)
	return open, nil
}

// HandledNotCommitted counts the events past the group's committed offsets
// for which has reports true (the notifier recorded them): the events a
// consumer that dies now has handled but not committed, and that the next
// owner of their partitions reads again.
func HandledNotCommitted(ctx context.Context, brokers []string, topic, group string, has func(ids []string) (int, error)) (int, int, error) {
	client, err := kafka.NewClient(brokers)
	if err != nil {
		return 0, 0, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(client)
	offsets, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("group offsets: %w", err)
	}
	ends, err := endOffsets(ctx, brokers, topic, true)
	if err != nil {
		return 0, 0, err
	}
	from := map[int32]kgo.Offset{}
	want := map[int32]int64{}
	for p, end := range ends {
		at := int64(0)
		if o, ok := offsets.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
			at = o.At
		}
		if at < end {
			from[p] = kgo.NewOffset().At(at)
			want[p] = end
		}
	}
	if len(from) == 0 {
		return 0, 0, nil
	}
	reader, err := kafka.NewClient(brokers,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	if err != nil {
		return 0, 0, err
	}
	defer reader.Close()
	recs, err := readUntil(ctx, reader, want)
	if err != nil {
		return 0, 0, err
	}
	var ids []string
	for _, r := range recs {
		if e, err := kafka.DecodeRecord(r); err == nil {
			ids = append(ids, e.ID)
		}
	}
	n, err := has(ids)
	return n, len(ids), err
}

// ProduceCopies produces again n records of topic picked by rng among its
// events: what a retrying producer or a replayed topic would deliver. It
// returns how many it produced and of how many orders.
func ProduceCopies(ctx context.Context, brokers []string, topic string, rng *rand.Rand, n int) (int, int, error) {
	recs, err := ReadTopic(ctx, brokers, topic, true)
	if err != nil {
		return 0, 0, err
	}
	var events []*kgo.Record
	for _, r := range recs {
		if _, err := kafka.DecodeRecord(r); err == nil {
			events = append(events, r)
		}
	}
	if len(events) == 0 {
		return 0, 0, nil
	}
	orders := map[string]bool{}
	var copies []*kgo.Record
	for range n {
		r := events[rng.IntN(len(events))]
		orders[string(r.Key)] = true
		copies = append(copies, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: r.Headers})
	}
	if err := produce(ctx, brokers, copies); err != nil {
		return 0, 0, err
	}
	return len(copies), len(orders), nil
}

// ProducePoison produces n records the notifier cannot handle, keyed
// PoisonPrefix+<first+i>, of several kinds: random bytes with no headers,
// a schema-invalid event, an event without its id, data that is not JSON.
func ProducePoison(ctx context.Context, brokers []string, topic string, rng *rand.Rand, first, n int) error {
	header := func(kv ...string) []kgo.RecordHeader {
		var hs []kgo.RecordHeader
		for i := 0; i+1 < len(kv); i += 2 {
			hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return hs
	}
	ce := func(id string) []string {
		h := []string{"ce_specversion", "1.0", "ce_source", "/eventflow/orders", "ce_type", "orders.order.created",
			"ce_time", time.Now().UTC().Format(time.RFC3339Nano), "ce_subject", "0190c0de-0000-7000-8000-00000000dead",
			"ce_dataschema", "http://127.0.0.1/v1/schemas/orders.order.created/v1", "content-type", "application/json"}
		if id != "" {
			h = append(h, "ce_id", id)
		}
		return h
	}
	var recs []*kgo.Record
	for i := range n {
		key := []byte(fmt.Sprintf("%s%d", PoisonPrefix, first+i))
		r := &kgo.Record{Topic: topic, Key: key}
		switch i % 4 {
		case 0:
			r.Value = make([]byte, 64+rng.IntN(512))
			for j := range r.Value {
				r.Value[j] = byte(rng.IntN(256))
			}
		case 1:
			r.Value = []byte(`{"id":"x","total":"lots"}`)
			r.Headers = header(ce(fmt.Sprintf("0190c0de-0000-7000-8000-%012d", first+i))...)
		case 2:
			r.Value = []byte(`{"id":"0190c0de-0000-7000-8000-00000000dead","user_id":"u0","status":"created","currency":"EUR","total":100}`)
			r.Headers = header(ce("")...)
		case 3:
			r.Value = []byte(`{"id": "0190c0de-0000-7000-8000-00000000dead", "total": 1`)
			r.Headers = header(ce(fmt.Sprintf("0190c0de-0000-7000-8000-%012d", first+i))...)
		}
		recs = append(recs, r)
	}
	return produce(ctx, brokers, recs)
}

func produce(ctx context.Context, brokers []string, recs []*kgo.Record) error {
	client, err := kafka.NewClient(brokers, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return client.ProduceSync(ctx, recs...).FirstErr()
}

// DeleteTopics deletes the run's topics.
func DeleteTopics(brokers []string, topics ...string) error {
	client, err := kafka.NewClient(brokers)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = kadm.NewClient(client).DeleteTopics(ctx, topics...)
	return err
}

// DeleteGroup deletes the run's consumer group.
func DeleteGroup(brokers []string, group string) {
	client, err := kafka.NewClient(brokers)
	if err != nil {
		return
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kadm.NewClient(client).DeleteGroups(ctx, group)
}
