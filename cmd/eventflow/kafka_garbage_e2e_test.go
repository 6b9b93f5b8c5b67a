package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

// garbageRecord is a record the notifier cannot use, and what the reason it
// is set aside for must say.
type garbageRecord struct {
	name   string
	rec    *kgo.Record
	reason string
}

// garbagePartitions is how many partitions the garbage test's topic has;
// garbage goes to each of them.
const garbagePartitions = 3

// Whatever anyone writes to the topic — random bytes, CloudEvents headers
// missing, wrong or twice, data that is not JSON or not an order, values
// near the broker's size limit, attributes a database cannot store — goes to
// the dead-letter topic with the reason and its origin, and every partition
// keeps flowing: a valid event after the garbage, in the same partition,
// is still emailed, and so is an order created through the API.
func TestKafkaGarbageGoesToDeadLetters(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		box, env := mailboxFor(t, tr)
		dlq := "test.dead-letter." + strings.TrimPrefix(kafkatest.TopicName(t), "test.")
		env = withEnv(env, "EVENTFLOW_DEAD_LETTER_TOPIC", dlq)
		env = withEnv(env, "EVENTFLOW_TOPIC_PARTITIONS", strconv.Itoa(garbagePartitions))
		a := startApp(t, tr, env)
		addr := uniqueAddress("ivy")
		a.subscribe(t, `{"user_id":"ivy","channel":"email","address":"`+addr+`","patterns":["orders.#"]}`)

		client, err := kafka.NewClient(a.brokers,
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchMaxBytes(1_040_000), // room for the record at the limit
			kgo.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()

		garbage := garbageRecords(a.topic)
		for i, g := range garbage {
			g.rec.Partition = int32(i % garbagePartitions)
			if err := client.ProduceSync(context.Background(), g.rec).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", g.name, err)
			}
		}
		// After the garbage, in each partition, a valid event for ivy.
		var valid []string
		for p := range int32(garbagePartitions) {
			orderID, rec := validOrderEvent(a.topic, "ivy")
			rec.Partition = p
			if err := client.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
			valid = append(valid, orderID)
		}
		o := a.createOrder(t, "ivy", 700)
		valid = append(valid, o.ID)

		mails := waitForMail(t, box, addr, len(valid))
		if len(mails) != len(valid) {
			t.Fatalf("%d emails; want %d, one per valid event", len(mails), len(valid))
		}
		for _, id := range valid {
			found := false
			for _, m := range mails {
				found = found || strings.Contains(m.Subject, id)
			}
			if !found {
				t.Errorf("no email about order %s", id)
			}
		}

		dead := kafkatest.Consume(t, a.brokers, dlq, len(garbage), 60*time.Second)
		byKey := map[string]*kgo.Record{}
		for _, r := range dead {
			byKey[string(r.Key)] = r
		}
		for i, g := range garbage {
			r := byKey[g.name]
			if r == nil {
				t.Errorf("%s: not in the dead-letter topic", g.name)
				continue
			}
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if !strings.Contains(h[kafka.HeaderDLQError], g.reason) {
				t.Errorf("%s: reason %.300q; want it to say %q", g.name, h[kafka.HeaderDLQError], g.reason)
			}
			if h[kafka.HeaderDLQTopic] != a.topic || h[kafka.HeaderDLQPartition] != strconv.Itoa(i%garbagePartitions) ||
				h[kafka.HeaderDLQOffset] != strconv.FormatInt(g.rec.Offset, 10) || h[kafka.HeaderDLQGroup] != "eventflow-notifier" {
				t.Errorf("%s: origin %s/%s@%s group %q; want %s/%d@%d", g.name, h[kafka.HeaderDLQTopic], h[kafka.HeaderDLQPartition],
					h[kafka.HeaderDLQOffset], h[kafka.HeaderDLQGroup], a.topic, i%garbagePartitions, g.rec.Offset)
			}
			if _, dropped := h[kafka.HeaderDLQValueDropped]; dropped {
				if g.name != "at the size limit" || len(r.Value) != 0 {
					t.Errorf("%s: value dropped (%s), %d bytes kept", g.name, h[kafka.HeaderDLQValueDropped], len(r.Value))
				}
			} else if !bytes.Equal(r.Value, g.rec.Value) {
				t.Errorf("%s: the dead letter's value (%d bytes) is not the original (%d bytes)", g.name, len(r.Value), len(g.rec.Value))
			}
		}
		if all := consumeAll(t, a.brokers, dlq); len(all) != len(garbage) {
			t.Errorf("%d dead letters; want %d", len(all), len(garbage))
		}
		metrics := string(a.do(t, "GET", "/metrics", nil).body)
		if want := fmt.Sprintf(`eventflow_consumer_records_total{outcome="dead_lettered"} %d`, len(garbage)); !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
		if strings.Contains(metrics, `eventflow_consumer_records_total{outcome="retried"}`) {
			t.Errorf("the consumer retried a record: garbage must be set aside, not retried")
		}
		t.Logf("%s: %d garbage records dead-lettered; %d valid events after them emailed", tr.name, len(garbage), len(valid))
	})
}

// ceHeaders are the headers of a valid orders.order.created event.
func ceHeaders(id string, at time.Time) map[string]string {
	return map[string]string{
		"ce_specversion": "1.0",
		"ce_id":          id,
		"ce_source":      "/eventflow/orders",
		"ce_type":        "orders.order.created",
		"ce_subject":     id,
		"ce_time":        at.UTC().Format(time.RFC3339Nano),
		"ce_dataschema":  "http://127.0.0.1/v1/schemas/orders.order.created/v1",
		"ce_sequence":    "1",
		"content-type":   "application/json",
	}
}

// orderData is the data of an orders.order.created event for user.
func orderData(id, user string, at time.Time) map[string]any {
	return map[string]any{
		"id": id, "user_id": user, "status": "created", "currency": "EUR", "items": []any{},
		"total": 4200, "version": 1, "created_at": at.UTC().Format(time.RFC3339Nano), "updated_at": at.UTC().Format(time.RFC3339Nano),
	}
}

func record(topic, key string, headers map[string]string, value []byte) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	for _, k := range []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time", "ce_dataschema", "ce_sequence", "content-type"} {
		if v, ok := headers[k]; ok {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	return r
}

// validOrderEvent is an orders.order.created event for user, as the relay
// would publish it, and its order id.
func validOrderEvent(topic, user string) (string, *kgo.Record) {
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now()
	data, _ := json.Marshal(orderData(id, user, now))
	return id, record(topic, id, ceHeaders(id, now), data)
}

func garbageRecords(topic string) []garbageRecord {
	var out []garbageRecord
	// garbled is a record named name: a valid event for nobody, with edit
	// applied to its headers and data; value, when not nil, replaces the
	// data.
	garbled := func(name, reason string, edit func(h map[string]string, d map[string]any), value []byte) {
		id := uuid.Must(uuid.NewV7()).String()
		now := time.Now()
		h, d := ceHeaders(id, now), orderData(id, "nobody", now)
		if edit != nil {
			edit(h, d)
		}
		if value == nil {
			value, _ = json.Marshal(d)
		}
		out = append(out, garbageRecord{name: name, rec: record(topic, name, h, value), reason: reason})
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	set := func(k, v string) func(map[string]string, map[string]any) {
		return func(h map[string]string, _ map[string]any) { h[k] = v }
	}
	drop := func(k string) func(map[string]string, map[string]any) {
		return func(h map[string]string, _ map[string]any) { delete(h, k) }
	}
	data := func(k string, v any) func(map[string]string, map[string]any) {
		return func(_ map[string]string, d map[string]any) { d[k] = v }
	}

	out = append(out, garbageRecord{name: "random bytes", rec: &kgo.Record{Topic: topic, Key: []byte("random bytes"), Value: random(512)}, reason: "missing header ce_specversion"})
	out = append(out, garbageRecord{name: "no value, no headers", rec: &kgo.Record{Topic: topic, Key: []byte("no value, no headers")}, reason: "missing header ce_specversion"})
	garbled("random bytes with headers", "not valid JSON", nil, random(512))
	garbled("no specversion", "missing header ce_specversion", drop("ce_specversion"), nil)
	garbled("specversion 0.3", `ce_specversion is "0.3"`, set("ce_specversion", "0.3"), nil)
	garbled("no id", "missing header ce_id", drop("ce_id"), nil)
	garbled("empty id", "empty header ce_id", set("ce_id", ""), nil)
	garbled("no source", "missing header ce_source", drop("ce_source"), nil)
	garbled("no type", "missing header ce_type", drop("ce_type"), nil)
	garbled("type not dotted", "does not follow", set("ce_type", "OrderCreated"), nil)
	garbled("unknown type", "no schema for orders.order.exploded", func(h map[string]string, _ map[string]any) {
		h["ce_type"], h["ce_dataschema"] = "orders.order.exploded", "http://x/v1/schemas/orders.order.exploded/v1"
	}, nil)
	garbled("no time", "missing header ce_time", drop("ce_time"), nil)
	garbled("time in words", "not an RFC 3339 time", set("ce_time", "yesterday"), nil)
	garbled("time out of range", "not an RFC 3339 time", set("ce_time", "2026-13-45T99:00:00Z"), nil)
	garbled("time zero", "missing time", set("ce_time", "0001-01-01T00:00:00Z"), nil)
	garbled("sequence not a number", "not a decimal integer", set("ce_sequence", "one"), nil)
	garbled("content type text", "content-type", set("content-type", "text/plain"), nil)
	garbled("content type malformed", "content-type", set("content-type", "application/json; ;="), nil)
	garbled("dataschema of another type", "does not name a version", set("ce_dataschema", "http://x/v1/schemas/orders.order.paid/v1"), nil)
	garbled("dataschema version 9", "no schema for orders.order.created v9", set("ce_dataschema", "http://x/v1/schemas/orders.order.created/v9"), nil)
	garbled("NUL in subject", "control characters", set("ce_subject", "a\x00b"), nil)
	garbled("CRLF in source", "control characters", set("ce_source", "/x\r\nBcc: v@example.com"), nil)
	garbled("invalid UTF-8 in source", "invalid UTF-8", set("ce_source", "/x\xff"), nil)
	garbled("id of 4000 bytes", "more than 1024", set("ce_id", fmt.Sprintf("%x", random(2000))), nil)
	garbled("subject of 4000 bytes", "more than 1024", set("ce_subject", fmt.Sprintf("%x", random(2000))), nil)
	garbled("data not JSON", "not valid JSON", nil, []byte("hello, world"))
	garbled("data empty", "empty value", nil, []byte{})
	garbled("data an array", "does not match", nil, []byte(`[]`))
	garbled("data a string", "does not match", nil, []byte(`"order"`))
	garbled("data 100k nested", "not valid JSON", nil, []byte(nested(100_000)))
	garbled("data truncated", "not valid JSON", nil, []byte(`{"id":"`))
	garbled("data of the wrong shape", "does not match", nil, []byte(`{"total":"lots"}`))
	garbled("data invalid UTF-8", "not valid UTF-8", nil, []byte(`{"id":"a","user_id":"nobody","comment":"`+"\xff\xfe"+`"}`))
	garbled("data invalid UTF-8, schema-valid", "not valid UTF-8", nil, invalidUTF8Order())
	garbled("order id not a uuid", "does not match", data("id", "x\r\nBcc: victim@example.com"), nil)
	garbled("negative total", "does not match", data("total", -1), nil)
	garbled("extra field", "does not match", data("admin", true), nil)
	garbled("created_at not a time", "does not match", data("created_at", "yesterday"), nil)
	garbled("value of 900 KB", "does not match", data("comment", strings.Repeat("x", 900_000)), nil)
	garbled("random 900 KB", "not valid JSON", nil, random(900_000))
	// With the dead-letter headers added, this one is over the producer's
	// limit: it is set aside without its value rather than holding the
	// partition forever.
	garbled("at the size limit", "not valid JSON", nil, random(1_000_000))
	garbled("duplicate id header", "given twice", nil, nil)
	dup := out[len(out)-1].rec
	dup.Headers = append(dup.Headers, kgo.RecordHeader{Key: "ce_id", Value: []byte("another")})
	return out
}

// invalidUTF8Order is a created event's data, valid against its schema but
// for a comment holding bytes that are not UTF-8, which encoding/json and
// the schema validator accept and PostgreSQL refuses.
func invalidUTF8Order() []byte {
	id := uuid.Must(uuid.NewV7()).String()
	d := orderData(id, "nobody", time.Now())
	d["comment"] = "PLACEHOLDER"
	b, _ := json.Marshal(d)
	return bytes.Replace(b, []byte("PLACEHOLDER"), []byte("caf\xe9"), 1)
}
