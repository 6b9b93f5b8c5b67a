package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/webhook"
)

// The fuzz targets here feed arbitrary bodies to the routes that read one,
// through the real handlers and the real domain services over in-memory
// stores. Whatever the body: no panic, no 5xx; a refusal is a problem JSON
// with the status it claims, and a decode error is never an internal one;
// what is accepted is what the stores and the notifier can take (an order's
// event is valid against its schema, a subscription's text holds no
// control character, its patterns parse and its filter compiles).
//
//	go test ./httpapi -run '^$' -fuzz '^FuzzCreateOrderRequest$' -fuzztime 1m

// fuzzMaxBody is small so that the fuzzer reaches the 413 path too.
const fuzzMaxBody = 4096

const (
	fuzzOrderID        = "0190c0de-0000-7000-8000-0000000000f1"
	fuzzSubscriptionID = "0190c0de-0000-7000-8000-0000000000f2"
)

func FuzzCreateOrderRequest(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"alice","currency":"EUR","items":[{"sku":"TEA-1","name":"Green tea","quantity":2,"unit_price":450}],"comment":"ring twice"}`,
		`{"user_id":"alice","currency":"JPY","total":1500}`,
		`{"user_id":"a","currency":"EUR","total":1,"items":[{"sku":"A","name":"A","quantity":1,"unit_price":1}]}`,
		`{"user_id":"a","currency":"EUR","total":99999999999999999999}`,
		`{"user_id":"a","currency":"EUR","items":[{"sku":"A","name":"A","quantity":1000000,"unit_price":1000000000000000}]}`,
		`{"user_id":"a\r\nb","currency":"EUR","total":1}`,
		`{"user_id":"a","currency":"EUR","total":1,"comment":"line\nline\u0000"}`,
		`{"user_id":"a","currency":"EUR","total":1,"comment":"\ud800"}`,
		`{"items":[[[[[[[[[[]]]]]]]]]]}`,
		`{"user_id":"a"}{}`,
		`[]`, `null`, ``, `{"user_id":`,
	} {
		f.Add([]byte(s))
	}
	h, st := fuzzHandler(f)
	schemas := fuzzSchemas(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode[orders.CreateRequest](t, body)
		st.orders.last = nil
		rec := fuzzServe(h, "POST", "/v1/orders", body)
		checkAnswer(t, rec, 201, 400, 413)
		if rec.Code != 201 {
			return
		}
		checkOrderEvent(t, schemas, st.orders.last)
	})
}

func FuzzChangeStatusRequest(f *testing.F) {
	for _, s := range []string{
		`{"status":"paid"}`, `{"status":"cancelled"}`, `{"status":"delivered"}`, `{"status":"created"}`,
		`{"status":"lost"}`, `{"status":1}`, `{"status":"paid","x":1}`, `{"status":"pa\u0000id"}`, `{}`, `{"status":"paid"} `, `"paid"`,
	} {
		f.Add([]byte(s))
	}
	h, st := fuzzHandler(f)
	schemas := fuzzSchemas(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode[struct {
			Status orders.Status `json:"status"`
		}](t, body)
		st.orders.last = nil
		rec := fuzzServe(h, "POST", "/v1/orders/"+fuzzOrderID+"/status", body)
		checkAnswer(t, rec, 200, 400, 409, 413)
		if rec.Code == 200 {
			checkOrderEvent(t, schemas, st.orders.last)
		}
	})
}

func FuzzCreateSubscriptionRequest(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"alice","channel":"email","address":"alice@example.com","patterns":["orders.order.*"]}`,
		`{"user_id":"alice","channel":"webhook","address":"https://hooks.example.com/x","patterns":["orders.#"],"filter":"data.total >= 10000 && data.currency == \"EUR\""}`,
		`{"user_id":"alice","channel":"webhook","address":"https://169.254.169.254/","patterns":["#"]}`,
		`{"user_id":"alice","channel":"email","address":"Alice <alice@example.com>","patterns":["#"]}`,
		`{"user_id":"alice","channel":"email","address":"a@[127.0.0.1]","patterns":["#"]}`,
		`{"user_id":"alice","channel":"email","address":"a@example.com","patterns":["orders.#"],"filter":"type == \"\u0000\""}`,
		`{"user_id":"alice","channel":"email","address":"a@example.com","patterns":["orders.#"],"scope":"all"}`,
		`{"user_id":"alice","channel":"email","address":"a@example.com\r\nBcc: v@example.com","patterns":["#"]}`,
		`{"user_id":"alice","channel":"email","address":"a@example.com","patterns":["a.#.*.#.b"],"webhook_secret":"x"}`,
	} {
		f.Add([]byte(s))
	}
	h, st := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode[notifications.CreateSubscriptionRequest](t, body)
		st.subs.last = nil
		rec := fuzzServe(h, "POST", "/v1/subscriptions", body)
		checkAnswer(t, rec, 201, 400, 403, 413)
		if rec.Code == 201 {
			checkSubscription(t, st.subs.last)
		}
	})
}

func FuzzSubscriptionPatchRequest(f *testing.F) {
	for _, s := range []string{
		`{"status":"paused"}`, `{"status":"active"}`, `{"status":"unsubscribed"}`,
		`{"patterns":["orders.order.created","orders.#"]}`, `{"patterns":[]}`, `{"patterns":null}`,
		`{"filter":"data.total > 0"}`, `{"filter":""}`, `{"filter":"1 + 1"}`, `{"filter":"true\r\n"}`,
		`{"address":"v@example.com"}`, `{"status":"paused","patterns":["x y"]}`,
	} {
		f.Add([]byte(s))
	}
	h, st := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode[notifications.SubscriptionPatch](t, body)
		st.subs.last = nil
		rec := fuzzServe(h, "PATCH", "/v1/subscriptions/"+fuzzSubscriptionID, body)
		checkAnswer(t, rec, 200, 400, 413)
		if rec.Code == 200 {
			checkSubscription(t, st.subs.last)
		}
	})
}

// checkDecode runs decode on body: a body over the limit is errTooLarge,
// any other failure an EINVALID error (a 400, never a 500), and a success
// was one valid UTF-8 JSON value.
func checkDecode[T any](t *testing.T, body []byte) {
	t.Helper()
	var v T
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	err := decode(r, fuzzMaxBody, &v)
	switch {
	case len(body) > fuzzMaxBody:
		if err != errTooLarge {
			t.Fatalf("a body of %d bytes: %v; want errTooLarge", len(body), err)
		}
	case err != nil:
		if eventflow.ErrorCode(err) != eventflow.EINVALID {
			t.Fatalf("decode error %v has code %q; want %q", err, eventflow.ErrorCode(err), eventflow.EINVALID)
		}
	case !utf8.Valid(body) || !json.Valid(body):
		t.Fatalf("decode accepted a body that is not valid UTF-8 JSON: %q", body)
	}
}

// checkAnswer checks that rec is one of the statuses allowed, and a problem
// JSON saying so when it is an error.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, allowed ...int) {
	t.Helper()
	if !slices.Contains(allowed, rec.Code) {
		t.Fatalf("status %d, want one of %v: %s", rec.Code, allowed, rec.Body)
	}
	if rec.Code < 400 {
		return
	}
	var p Problem
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q", rec.Code, ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || p.Title == "" {
		t.Fatalf("status %d with problem %s (%v)", rec.Code, rec.Body, err)
	}
}

// checkOrderEvent checks that an accepted order's event is one the notifier
// accepts: a valid envelope, data valid against its schema.
func checkOrderEvent(t *testing.T, schemas *event.Schemas, e *event.Event) {
	t.Helper()
	if e == nil {
		t.Fatal("the order was accepted but no event was stored")
	}
	if err := schemas.Validate(e); err != nil {
		t.Fatalf("an accepted order's event would be dead-lettered: %v\n%s", err, e.Data)
	}
}

// checkSubscription checks that an accepted subscription is storable and
// usable: no control characters (no CR or LF to inject a header with, no
// NUL that PostgreSQL refuses), patterns that parse, a filter that
// compiles.
func checkSubscription(t *testing.T, s *notifications.Subscription) {
	t.Helper()
	if s == nil {
		t.Fatal("the subscription was accepted but not stored")
	}
	for name, v := range map[string]string{"user_id": s.UserID, "address": s.Address, "channel": string(s.Chan), "scope": string(s.Scope)} {
		if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			t.Fatalf("stored %s %q holds a control character or invalid UTF-8", name, v)
		}
	}
	if s.Chan == notifications.ChannelWebhook {
		if err := webhook.ValidateURL(s.Address, false); err != nil {
			t.Fatalf("stored webhook %q: %v", s.Address, err)
		}
	}
	if len(s.Patterns) == 0 {
		t.Fatal("stored without patterns")
	}
	for _, p := range s.Patterns {
		if _, err := notifications.ParsePattern(p); err != nil {
			t.Fatalf("stored pattern %q: %v", p, err)
		}
	}
	if strings.ContainsFunc(s.Filter, func(r rune) bool { return r != '\n' && r != '\t' && unicode.IsControl(r) }) || !utf8.ValidString(s.Filter) {
		t.Fatalf("stored filter %q holds a control character", s.Filter)
	}
	if s.Filter != "" {
		if _, err := fuzzFilters().Compile(s.Filter); err != nil {
			t.Fatalf("stored filter %q: %v", s.Filter, err)
		}
	}
}

var fuzzFilters = sync.OnceValue(func() *notifications.Filters {
	f, err := notifications.NewFilters()
	if err != nil {
		panic(err)
	}
	return f
})

func fuzzServe(h http.Handler, method, path string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

type fuzzStores struct {
	orders *memOrders
	subs   *memSubscriptions
}

// fuzzHandler is the API over the real services and in-memory stores, with
// access control off (every caller an admin, as on loopback without keys).
func fuzzHandler(f *testing.F) (http.Handler, fuzzStores) {
	f.Helper()
	filters, err := notifications.NewFilters()
	if err != nil {
		f.Fatal(err)
	}
	st := fuzzStores{orders: &memOrders{}, subs: &memSubscriptions{}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st.orders.order = orders.Order{ID: fuzzOrderID, UserID: "fuzz", Status: orders.StatusCreated, Currency: "EUR",
		Items: []orders.Item{}, Total: 100, Version: 1, CreatedAt: now, UpdatedAt: now}
	st.subs.sub = notifications.Subscription{ID: fuzzSubscriptionID, UserID: "fuzz", Chan: notifications.ChannelEmail,
		Address: "fuzz@example.com", Patterns: []string{"orders.#"}, Scope: notifications.ScopeOwn,
		Status: notifications.StatusActive, Version: 1, CreatedAt: now, UpdatedAt: now}
	h := NewHandler(Config{
		Orders: orders.NewService(st.orders, orders.ServiceConfig{SchemaBaseURL: "http://127.0.0.1:8080"}),
		Notifications: notifications.NewService(st.subs, filters, notifications.NewTokens(make([]byte, 32)), notifications.ServiceConfig{
			ValidateWebhookURL: func(u string) error { return webhook.ValidateURL(u, false) },
			NewWebhookSecret:   webhook.NewSecret,
		}),
		Schemas:      fuzzSchemas(f),
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.DiscardHandler),
		MaxBodyBytes: fuzzMaxBody,
	})
	return h, st
}

func fuzzSchemas(f *testing.F) *event.Schemas {
	f.Helper()
	s, err := event.LoadSchemas(orders.Schemas())
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// memOrders is an orders.Store with one order, fuzzOrderID, that keeps the
// last event written.
type memOrders struct {
	order orders.Order
	last  *event.Event
}

func (m *memOrders) CreateOrder(_ context.Context, _ orders.Order, e event.Event, _ *orders.IdempotencyRecord) error {
	m.last = &e
	return nil
}

func (m *memOrders) UpdateOrder(_ context.Context, _ orders.Order, e event.Event) error {
	m.last = &e
	return nil
}

func (m *memOrders) Order(_ context.Context, id string) (orders.Order, error) {
	if id != m.order.ID {
		return orders.Order{}, eventflow.Errorf(eventflow.ENOTFOUND, "order %q not found", id)
	}
	return m.order, nil
}

func (m *memOrders) Orders(context.Context, orders.Filter) ([]orders.Order, error) { return nil, nil }

func (m *memOrders) IdempotencyRecord(context.Context, string, time.Time) (*orders.IdempotencyRecord, error) {
	return nil, nil
}

func (m *memOrders) DeleteExpiredIdempotencyRecords(context.Context, time.Time) (int64, error) {
	return 0, nil
}

// memSubscriptions is the part of a notifications.Store that creating and
// changing subscriptions use, with one subscription, fuzzSubscriptionID,
// keeping the last one written. Any other method panics (the embedded
// interface is nil), which the fuzzer would report.
type memSubscriptions struct {
	notifications.Store
	sub  notifications.Subscription
	last *notifications.Subscription
}

func (m *memSubscriptions) CreateSubscription(_ context.Context, s notifications.Subscription) error {
	m.last = &s
	return nil
}

func (m *memSubscriptions) UpdateSubscription(_ context.Context, s notifications.Subscription) error {
	m.last = &s
	return nil
}

func (m *memSubscriptions) Subscription(_ context.Context, id string) (notifications.Subscription, error) {
	if id != m.sub.ID {
		return notifications.Subscription{}, eventflow.Errorf(eventflow.ENOTFOUND, "subscription %q not found", id)
	}
	s := m.sub
	s.Patterns = slices.Clone(s.Patterns)
	return s, nil
}
