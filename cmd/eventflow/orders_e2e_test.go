package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/internal/testenv"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
	"github.com/eventflow/eventflow/orders"
)

type orderJSON struct {
	ID      string `json:"id"`
	UserID  string `json:"user_id"`
	Status  string `json:"status"`
	Total   int64  `json:"total"`
	Version int64  `json:"version"`
}

const createBody = `{"user_id":"alice","currency":"EUR","items":[
	{"sku":"TEA-1","name":"Green tea","quantity":2,"unit_price":450},
	{"sku":"CUP-1","name":"Cup","quantity":1,"unit_price":1200}],"comment":"ring twice"}`

// A user creates an order and moves it along; every change arrives in Kafka
// once, keyed by the order id, in order, as a CloudEvent whose data matches
// the schema the API serves.
func TestOrderEventsReachKafka(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		a := startApp(t, tr, nil)
		const traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

		res := a.do(t, "POST", "/v1/orders", createBody, "Idempotency-Key", "order-1", "traceparent", traceParent)
		if res.status != http.StatusCreated {
			t.Fatalf("create: %d %s", res.status, res.body)
		}
		var o orderJSON
		res.json(t, &o)
		if o.Total != 2100 || o.Status != "created" || o.Version != 1 || res.header.Get("Location") != "/v1/orders/"+o.ID {
			t.Fatalf("created %+v, Location %q", o, res.header.Get("Location"))
		}
		replay := a.do(t, "POST", "/v1/orders", createBody, "Idempotency-Key", "order-1")
		if replay.status != http.StatusCreated || replay.header.Get("Idempotent-Replayed") != "true" || string(replay.body) != string(res.body) {
			t.Fatalf("replay: %d %q %s", replay.status, replay.header.Get("Idempotent-Replayed"), replay.body)
		}
		for _, s := range []string{"paid", "shipped"} {
			if r := a.do(t, "POST", "/v1/orders/"+o.ID+"/status", `{"status":"`+s+`"}`); r.status != http.StatusOK {
				t.Fatalf("→ %s: %d %s", s, r.status, r.body)
			}
		}
		if r := a.do(t, "GET", "/v1/orders/"+o.ID, nil); r.status != 200 || !strings.Contains(string(r.body), `"status":"shipped"`) {
			t.Fatalf("get: %d %s", r.status, r.body)
		}

		records := kafkatest.Consume(t, a.brokers, a.topic, 3, 30*time.Second)
		schemas := loadServedSchemas(t, a)
		wantTypes := []string{orders.EventCreated, orders.EventPaid, orders.EventShipped}
		for i, rec := range records {
			if string(rec.Key) != o.ID {
				t.Errorf("record %d key = %q; want the order id %s", i, rec.Key, o.ID)
			}
			e, err := kafka.DecodeRecord(rec)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if e.Type != wantTypes[i] || e.Subject != o.ID || e.Sequence != int64(i+1) || e.Source != orders.EventSource {
				t.Errorf("record %d = %s %s seq %d; want %s", i, e.Type, e.Subject, e.Sequence, wantTypes[i])
			}
			if !strings.HasPrefix(e.DataSchema, a.baseURL+"/v1/schemas/"+e.Type+"/v1") {
				t.Errorf("dataschema %q does not point at this API", e.DataSchema)
			}
			if err := schemas.Validate(&e); err != nil {
				t.Errorf("record %d: %v", i, err)
			}
			if i == 0 && e.TraceParent != traceParent {
				t.Errorf("traceparent = %q; want the request's", e.TraceParent)
			}
		}
		// Nothing more: the replayed create published nothing.
		time.Sleep(500 * time.Millisecond)
		if recs := countRecords(t, a); recs != 3 {
			t.Fatalf("topic holds %d records; want 3", recs)
		}
	})
}

// loadServedSchemas builds the schema registry from what GET /v1/schemas
// serves, so the test checks the published schemas, not the source files.
func loadServedSchemas(t *testing.T, a *app) *event.Schemas {
	t.Helper()
	var list struct {
		Schemas []struct {
			Type    string `json:"type"`
			Version int    `json:"version"`
			Path    string `json:"path"`
		} `json:"schemas"`
	}
	a.do(t, "GET", "/v1/schemas", nil).json(t, &list)
	if len(list.Schemas) != 5 {
		t.Fatalf("served %d schemas; want 5", len(list.Schemas))
	}
	files := fstest.MapFS{}
	for _, s := range list.Schemas {
		r := a.do(t, "GET", s.Path, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "application/schema+json" {
			t.Fatalf("GET %s: %d %s", s.Path, r.status, r.header.Get("Content-Type"))
		}
		files[s.Type+".v1.json"] = &fstest.MapFile{Data: r.body}
	}
	schemas, err := event.LoadSchemas(files)
	if err != nil {
		t.Fatal(err)
	}
	return schemas
}

// countRecords counts the committed records in the app's topic.
func countRecords(t *testing.T, a *app) int {
	t.Helper()
	return len(consumeAll(t, a.brokers, a.topic))
}

// kcat, a Kafka client that is not Go, reads the events with their key and
// CloudEvents headers.
func TestKcatReadsEvents(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if testenv.Strict() {
			t.Fatal("kcat is not installed; scripts/install-deps.sh installs it")
		}
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	forEachTier(t, func(t *testing.T, tr tier) {
		a := startApp(t, tr, nil)
		var o orderJSON
		a.do(t, "POST", "/v1/orders", createBody).json(t, &o)
		kafkatest.Consume(t, a.brokers, a.topic, 1, 30*time.Second) // published
		out, err := exec.Command(kcat, "-b", strings.Join(a.brokers, ","), "-C", "-t", a.topic,
			"-o", "beginning", "-e", "-J", "-X", "isolation.level=read_committed").Output()
		if err != nil {
			t.Fatalf("kcat: %v", err)
		}
		var msg struct {
			Key     string   `json:"key"`
			Payload string   `json:"payload"`
			Headers []string `json:"headers"`
		}
		if err := json.Unmarshal([]byte(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]), &msg); err != nil {
			t.Fatalf("kcat printed %q: %v", out, err)
		}
		headers := map[string]string{}
		for i := 0; i+1 < len(msg.Headers); i += 2 {
			headers[msg.Headers[i]] = msg.Headers[i+1]
		}
		if msg.Key != o.ID || headers["ce_type"] != "orders.order.created" || headers["ce_specversion"] != "1.0" ||
			headers["ce_subject"] != o.ID || headers["content-type"] != "application/json" ||
			!strings.Contains(msg.Payload, `"total":2100`) {
			t.Fatalf("kcat saw key %q headers %v payload %s", msg.Key, headers, msg.Payload)
		}
	})
}
