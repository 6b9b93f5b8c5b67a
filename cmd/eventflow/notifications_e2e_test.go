package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventflow/eventflow/webhook"
)

type subscriptionJSON struct {
	ID            string   `json:"id"`
	UserID        string   `json:"user_id"`
	Status        string   `json:"status"`
	Patterns      []string `json:"patterns"`
	WebhookSecret string   `json:"webhook_secret"`
}

type deliveryJSON struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

func (a *app) subscribe(t *testing.T, body string) subscriptionJSON {
	t.Helper()
	r := a.do(t, "POST", "/v1/subscriptions", body)
	if r.status != http.StatusCreated {
		t.Fatalf("subscribe %s: %d %s", body, r.status, r.body)
	}
	var s subscriptionJSON
	r.json(t, &s)
	return s
}

func (a *app) createOrder(t *testing.T, user string, total int64) orderJSON {
	t.Helper()
	r := a.do(t, "POST", "/v1/orders", fmt.Sprintf(`{"user_id":%q,"currency":"EUR","total":%d}`, user, total))
	if r.status != http.StatusCreated {
		t.Fatalf("create order: %d %s", r.status, r.body)
	}
	var o orderJSON
	r.json(t, &o)
	return o
}

func (a *app) deliveries(t *testing.T, query string) []deliveryJSON {
	t.Helper()
	var page struct {
		Deliveries []deliveryJSON `json:"deliveries"`
	}
	r := a.do(t, "GET", "/v1/deliveries?"+query, nil)
	if r.status != 200 {
		t.Fatalf("deliveries: %d %s", r.status, r.body)
	}
	r.json(t, &page)
	return page.Deliveries
}

// A subscriber gets exactly one email for a matching event, with the right
// content and headers; subscriptions that do not match get nothing; the
// one-click unsubscribe stops further mail, and a GET alone does not.
func TestSubscriberGetsExactlyOneEmail(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		box, env := mailboxFor(t, tr)
		a := startApp(t, tr, env)

		alice := uniqueAddress("alice")
		wanted := a.subscribe(t, `{"user_id":"alice","channel":"email","address":"`+alice+`","patterns":["orders.order.created"]}`)
		others := map[string]string{
			"other user":   `{"user_id":"bob","channel":"email","address":"%s","patterns":["orders.order.*"]}`,
			"other type":   `{"user_id":"alice","channel":"email","address":"%s","patterns":["orders.order.cancelled"]}`,
			"filter false": `{"user_id":"alice","channel":"email","address":"%s","patterns":["orders.#"],"filter":"data.total > 1000000"}`,
			"paused":       `{"user_id":"alice","channel":"email","address":"%s","patterns":["orders.order.created"]}`,
		}
		otherAddrs := map[string]string{}
		for name, body := range others {
			addr := uniqueAddress(strings.ReplaceAll(name, " ", "-"))
			otherAddrs[name] = addr
			s := a.subscribe(t, fmt.Sprintf(body, addr))
			if name == "paused" {
				if r := a.do(t, "PATCH", "/v1/subscriptions/"+s.ID, `{"status":"paused"}`); r.status != 200 {
					t.Fatalf("pause: %d %s", r.status, r.body)
				}
			}
		}

		o := a.createOrder(t, "alice", 2599)
		got := waitForMail(t, box, alice, 1)
		if len(got) != 1 {
			t.Fatalf("%d emails to the subscriber; want exactly 1", len(got))
		}
		m := got[0]
		if !strings.Contains(m.Subject, o.ID) || !strings.Contains(m.Text, "25.99 EUR") || !strings.Contains(m.HTML, "25.99 EUR") {
			t.Errorf("email subject %q, text %q", m.Subject, m.Text)
		}
		unsubscribe := strings.Trim(m.header("List-Unsubscribe"), "<>")
		if !strings.HasPrefix(unsubscribe, a.baseURL+"/unsubscribe/") || m.header("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Fatalf("unsubscribe headers: %q / %q", m.header("List-Unsubscribe"), m.header("List-Unsubscribe-Post"))
		}
		ds := a.deliveries(t, "subscription_id="+wanted.ID)
		if len(ds) != 1 || ds[0].Status != "sent" || ds[0].Attempts != 1 {
			t.Fatalf("activity log: %+v", ds)
		}
		if mid := m.header("Message-Id"); mid != "<"+ds[0].ID+"@eventflow.localhost>" {
			t.Errorf("Message-ID %q is not derived from delivery %s", mid, ds[0].ID)
		}
		for name, addr := range otherAddrs {
			if n := len(box.to(t, addr)); n != 0 {
				t.Errorf("%s subscription got %d emails", name, n)
			}
		}

		// A GET shows a page with a button and changes nothing.
		page := a.do(t, "GET", strings.TrimPrefix(unsubscribe, a.baseURL), nil)
		if page.status != 200 || !strings.Contains(string(page.body), `<form method="post">`) {
			t.Fatalf("unsubscribe page: %d %s", page.status, page.body)
		}
		var s subscriptionJSON
		a.do(t, "GET", "/v1/subscriptions/"+wanted.ID, nil).json(t, &s)
		if s.Status != "active" {
			t.Fatalf("a GET of the unsubscribe link changed the subscription to %s", s.Status)
		}
		// The RFC 8058 one-click POST, as a mail client sends it.
		res, err := http.Post(unsubscribe, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("one-click unsubscribe: %v %v", res, err)
		}
		res.Body.Close()
		forged := unsubscribe[:len(unsubscribe)-2] + "AA"
		if r := a.do(t, "POST", strings.TrimPrefix(forged, a.baseURL), nil); r.status != 404 {
			t.Fatalf("a forged token: %d", r.status)
		}

		a.createOrder(t, "alice", 100)
		time.Sleep(2 * time.Second)
		if n := len(box.to(t, alice)); n != 1 {
			t.Fatalf("after unsubscribing, %d emails; want still 1", n)
		}
	})
}

// A webhook subscriber gets one signed POST of the CloudEvent per event,
// which a receiver verifies with the subscription's secret.
func TestWebhookDelivery(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		var (
			mu       sync.Mutex
			received []map[string]any
			secret   string
			failures []string
		)
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			if err := webhook.Verify(secret, r.Header, body, 5*time.Minute); err != nil {
				failures = append(failures, err.Error())
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			var ce map[string]any
			json.Unmarshal(body, &ce)
			received = append(received, ce)
		}))
		defer receiver.Close()

		a := startApp(t, tr, map[string]string{"EVENTFLOW_WEBHOOK_ALLOW_PRIVATE": "true"})
		s := a.subscribe(t, `{"user_id":"carol","channel":"webhook","address":"`+receiver.URL+`/hook","patterns":["orders.order.*"]}`)
		if !strings.HasPrefix(s.WebhookSecret, "whsec_") {
			t.Fatalf("webhook secret %q", s.WebhookSecret)
		}
		mu.Lock()
		secret = s.WebhookSecret
		mu.Unlock()
		if got := a.do(t, "GET", "/v1/subscriptions/"+s.ID, nil); strings.Contains(string(got.body), "whsec_") {
			t.Fatalf("the webhook secret is shown again after creation: %s", got.body)
		}

		o := a.createOrder(t, "carol", 500)
		a.do(t, "POST", "/v1/orders/"+o.ID+"/status", `{"status":"cancelled"}`)
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(received)
			mu.Unlock()
			if n >= 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if len(failures) > 0 {
			t.Fatalf("signature failures: %v", failures)
		}
		if len(received) != 2 || received[0]["type"] != "orders.order.created" || received[1]["type"] != "orders.order.cancelled" ||
			received[0]["subject"] != o.ID || received[0]["specversion"] != "1.0" {
			t.Fatalf("received %v", received)
		}
	})
}
