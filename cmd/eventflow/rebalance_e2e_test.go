package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A second notifier joins the consumer group mid-stream and later leaves
// it: the partitions move twice, and every event still reaches the
// subscriber exactly once.
func TestRebalanceLosesNothing(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		var (
			mu    sync.Mutex
			calls = map[string]int{}
		)
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var ce struct {
				ID string `json:"id"`
			}
			json.Unmarshal(body, &ce)
			mu.Lock()
			calls[ce.ID]++
			mu.Unlock()
		}))
		defer receiver.Close()
		env := map[string]string{"EVENTFLOW_WEBHOOK_ALLOW_PRIVATE": "true"}
		a := startApp(t, tr, env)
		a.subscribe(t, `{"user_id":"ivan","channel":"webhook","address":"`+receiver.URL+`","patterns":["orders.order.created"]}`)

		// The second notifier shares the first one's database and broker.
		second := withEnv(env, "EVENTFLOW_ROLES", "notifier")
		second["EVENTFLOW_KAFKA_BROKERS"] = strings.Join(a.brokers, ",")
		second["EVENTFLOW_ORDERS_TOPIC"] = a.topic
		const orders = 120
		var b *app
		for i := range orders {
			switch i {
			case 30:
				b = startApp(t, tr, second)
			case 80:
				b.stop()
			}
			a.createOrder(t, "ivan", int64(100+i))
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			n := len(calls)
			mu.Unlock()
			if n >= orders || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second)
		mu.Lock()
		defer mu.Unlock()
		dup := 0
		for _, c := range calls {
			dup += c - 1
		}
		if len(calls) != orders || dup != 0 {
			t.Fatalf("%d of %d events delivered, %d duplicates", len(calls), orders, dup)
		}
	})
}
