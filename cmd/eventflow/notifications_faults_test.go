package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/internal/mailpittest"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

// An event that reaches the notifier again — injected twice more into the
// topic, and then every event re-read because the consumer group lost its
// offsets, as after a notifier killed between recording deliveries and
// committing — still makes exactly one email.
func TestRedeliveredEventNotifiesOnce(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		box, env := mailboxFor(t, tr)
		env = withEnv(env, "EVENTFLOW_ORDERS_TOPIC", kafkatest.TopicName(t))
		a := startApp(t, tr, env)
		addr := uniqueAddress("dave")
		a.subscribe(t, `{"user_id":"dave","channel":"email","address":"`+addr+`","patterns":["orders.#"]}`)
		a.createOrder(t, "dave", 1000)
		waitForMail(t, box, addr, 1)

		// The same record, twice more, as a producer retry or a replayed
		// topic would deliver it.
		recs := kafkaRecords(t, a, 1)
		client, err := kafka.NewClient(a.brokers)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		for range 2 {
			dup := &kgo.Record{Topic: a.topic, Key: recs[0].Key, Value: recs[0].Value, Headers: recs[0].Headers}
			if err := client.ProduceSync(context.Background(), dup).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if got := waitForMail(t, box, addr, 1); len(got) != 1 {
			t.Fatalf("after duplicates: %d emails; want 1", len(got))
		}

		// The notifier dies before committing: model it by stopping it and
		// deleting the group's committed offsets, so the restarted one
		// reads every event again.
		a.stop()
		if tr.name == "embedded" {
			// The embedded broker lived in the stopped process; the group
			// is deleted through the restarted one.
			a = startApp(t, tr, withEnv(env, "EVENTFLOW_ROLES", "orders-api"))
			deleteGroup(t, a.brokers)
			a.stop()
		} else {
			deleteGroup(t, a.brokers)
		}
		a = startApp(t, tr, env)
		a.createOrder(t, "dave", 2000) // a new event after the replayed ones
		got := waitForMail(t, box, addr, 2)
		time.Sleep(time.Second)
		if got = box.to(t, addr); len(got) != 2 {
			t.Fatalf("after the notifier re-read everything: %d emails; want 2 (one per order)", len(got))
		}
		if ds := a.deliveries(t, ""); len(ds) != 2 {
			t.Fatalf("%d deliveries recorded; want 2", len(ds))
		}
	})
}

func deleteGroup(t *testing.T, brokers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kafkatest.Admin(t, brokers)
	res, err := adm.DeleteGroups(ctx, "eventflow-notifier")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("delete group: %v", r.Err)
		}
	}
}

// The mail server fails in each way a real one does: down for a while,
// answering 451 for a while, answering 550. Temporary failures delay the
// mail and lose none; a permanent one makes the delivery dead, visible in
// the activity log, and a retry through the API sends it.
func TestMailServerFailures(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		mp := mailpittest.Start(t)
		box := mailpitBox{mp}
		a := startApp(t, tr, map[string]string{
			"EVENTFLOW_SMTP_URL":               mp.SMTPURL,
			"EVENTFLOW_DELIVERY_BACKOFF":       "100ms",
			"EVENTFLOW_DELIVERY_MAX_BACKOFF":   "500ms",
			"EVENTFLOW_DELIVERY_POLL_INTERVAL": "100ms",
		})

		t.Run("down", func(t *testing.T) {
			addr := uniqueAddress("down")
			s := a.subscribe(t, `{"user_id":"erin","channel":"email","address":"`+addr+`","patterns":["orders.order.created"]}`)
			mp.Stop()
			a.createOrder(t, "erin", 100)
			waitForDelivery(t, a, s.ID, func(d deliveryJSON) bool { return d.Attempts >= 2 && d.Status == "pending" })
			mp.Restart(t)
			if got := waitForMail(t, box, addr, 1); len(got) != 1 {
				t.Fatalf("%d emails; want 1", len(got))
			}
			waitForDelivery(t, a, s.ID, func(d deliveryJSON) bool { return d.Status == "sent" })
		})

		t.Run("451 then accepted", func(t *testing.T) {
			addr := uniqueAddress("greylisted")
			s := a.subscribe(t, `{"user_id":"frank","channel":"email","address":"`+addr+`","patterns":["orders.order.created"]}`)
			mp.SetChaos(t, 451, 100)
			a.createOrder(t, "frank", 100)
			d := waitForDelivery(t, a, s.ID, func(d deliveryJSON) bool { return d.Attempts >= 2 })
			if d.Status != "pending" || !strings.Contains(d.LastError, "451") {
				t.Fatalf("while 451: %+v", d)
			}
			mp.SetChaos(t, 0, 0)
			if got := waitForMail(t, box, addr, 1); len(got) != 1 {
				t.Fatalf("%d emails; want 1", len(got))
			}
		})

		t.Run("550 is dead and re-drivable", func(t *testing.T) {
			addr := uniqueAddress("rejected")
			s := a.subscribe(t, `{"user_id":"gina","channel":"email","address":"`+addr+`","patterns":["orders.order.created"]}`)
			mp.SetChaos(t, 550, 100)
			a.createOrder(t, "gina", 100)
			d := waitForDelivery(t, a, s.ID, func(d deliveryJSON) bool { return d.Status == "dead" })
			if d.Attempts != 1 || !strings.Contains(d.LastError, "550") {
				t.Fatalf("a 550 should kill the delivery at once: %+v", d)
			}
			if dead := a.deliveries(t, "status=dead&subscription_id="+s.ID); len(dead) != 1 {
				t.Fatalf("dead deliveries listed: %+v", dead)
			}
			mp.SetChaos(t, 0, 0)
			if r := a.do(t, "POST", "/v1/deliveries/"+d.ID+"/retry", nil); r.status != 202 {
				t.Fatalf("retry: %d %s", r.status, r.body)
			}
			if got := waitForMail(t, box, addr, 1); len(got) != 1 {
				t.Fatalf("%d emails after the retry; want 1", len(got))
			}
			waitForDelivery(t, a, s.ID, func(d deliveryJSON) bool { return d.Status == "sent" })
			if r := a.do(t, "POST", "/v1/deliveries/"+d.ID+"/retry", nil); r.status != 409 {
				t.Fatalf("retrying a sent delivery: %d", r.status)
			}
		})
	})
}

// waitForDelivery waits until the subscription's one delivery satisfies ok.
func waitForDelivery(t *testing.T, a *app, subscriptionID string, ok func(deliveryJSON) bool) deliveryJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds := a.deliveries(t, "subscription_id="+subscriptionID)
		if len(ds) == 1 && ok(ds[0]) {
			return ds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery never reached the expected state: %+v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Records the notifier cannot read go to the dead-letter topic with the
// reason and their origin, and the events after them are still delivered.
func TestPoisonRecordsGoToDeadLetters(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		box, env := mailboxFor(t, tr)
		dlq := "test.dead-letter." + strings.TrimPrefix(kafkatest.TopicName(t), "test.")
		env = withEnv(env, "EVENTFLOW_DEAD_LETTER_TOPIC", dlq)
		a := startApp(t, tr, env)
		addr := uniqueAddress("henry")
		a.subscribe(t, `{"user_id":"henry","channel":"email","address":"`+addr+`","patterns":["orders.#"]}`)

		client, err := kafka.NewClient(a.brokers)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		poison := []*kgo.Record{
			{Topic: a.topic, Key: []byte("garbage"), Value: []byte{0xff, 0x00, 0x13, 0x37}},
			{Topic: a.topic, Key: []byte("bad-schema"), Value: []byte(`{"total":"lots"}`), Headers: []kgo.RecordHeader{
				{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("0190c0de-0000-7000-8000-000000000001")},
				{Key: "ce_source", Value: []byte("/eventflow/orders")}, {Key: "ce_type", Value: []byte("orders.order.created")},
				{Key: "ce_time", Value: []byte("2026-01-01T00:00:00Z")},
				{Key: "ce_dataschema", Value: []byte("http://x/v1/schemas/orders.order.created/v1")},
				{Key: "content-type", Value: []byte("application/json")}}},
		}
		if err := client.ProduceSync(context.Background(), poison...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		a.createOrder(t, "henry", 4200)
		if got := waitForMail(t, box, addr, 1); len(got) != 1 {
			t.Fatalf("%d emails; want 1", len(got))
		}
		dead := kafkatest.Consume(t, a.brokers, dlq, 2, 30*time.Second)
		for _, r := range dead {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h[kafka.HeaderDLQError] == "" || h[kafka.HeaderDLQTopic] != a.topic || h[kafka.HeaderDLQOffset] == "" || h[kafka.HeaderDLQGroup] != "eventflow-notifier" {
				t.Errorf("dead letter %q lacks its reason or origin: %v", r.Key, h)
			}
		}
		lag := string(a.do(t, "GET", "/metrics", nil).body)
		if !strings.Contains(lag, `eventflow_consumer_records_total{outcome="dead_lettered"} 2`) {
			t.Errorf("metrics do not count the dead letters")
		}
	})
}
