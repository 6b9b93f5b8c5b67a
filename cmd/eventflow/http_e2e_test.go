package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

type problemJSON struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// expectProblem checks that r is an RFC 9457 problem with the status and,
// when given, the failing field.
func expectProblem(t *testing.T, r response, status int, field string) problemJSON {
	t.Helper()
	var p problemJSON
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q; want application/problem+json (status %d, body %s)", ct, r.status, r.body)
	}
	r.json(t, &p)
	if r.status != status || p.Status != status || p.Title == "" || p.Type == "" {
		t.Fatalf("problem = %d %+v; want status %d", r.status, p, status)
	}
	if field != "" && p.Field != field {
		t.Fatalf("problem field = %q; want %q (%s)", p.Field, field, p.Detail)
	}
	return p
}

// Bad requests get a problem that names what failed, and change nothing.
func TestAPIRefusesBadRequests(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		a := startApp(t, tr, map[string]string{"EVENTFLOW_HTTP_MAX_BODY_BYTES": "4096"})
		cases := []struct {
			name   string
			body   string
			status int
			field  string
		}{
			{"malformed JSON", `{"user_id":`, 400, ""},
			{"not an object", `[1,2]`, 400, ""},
			{"wrong type", `{"user_id":"a","currency":"EUR","total":"100"}`, 400, "/total"},
			{"unknown field", `{"user_id":"a","currency":"EUR","total":100,"admin":true}`, 400, "/admin"},
			{"two values", `{"user_id":"a","currency":"EUR","total":100}{}`, 400, ""},
			{"invalid UTF-8", "{\"user_id\":\"a\xff\",\"currency\":\"EUR\",\"total\":100}", 400, ""},
			{"invalid currency", `{"user_id":"a","currency":"EURO","total":100}`, 400, "/currency"},
			{"negative quantity", `{"user_id":"a","currency":"EUR","items":[{"sku":"A","name":"A","quantity":-1,"unit_price":1}]}`, 400, "/items/0/quantity"},
			{"overflowing amount", `{"user_id":"a","currency":"EUR","total":99999999999999999999}`, 400, "/total"},
			{"SQL in user id", `{"user_id":"a'; DROP TABLE orders;--","currency":"EUR","total":1}`, 400, "/user_id"},
			{"too large", `{"user_id":"a","currency":"EUR","total":1,"comment":"` + strings.Repeat("x", 5000) + `"}`, 413, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				expectProblem(t, a.do(t, "POST", "/v1/orders", c.body), c.status, c.field)
			})
		}
		r := a.do(t, "POST", "/v1/orders", `{}`, "Content-Type", "text/plain")
		expectProblem(t, r, http.StatusUnsupportedMediaType, "")

		var page struct {
			Orders []json.RawMessage `json:"orders"`
		}
		a.do(t, "GET", "/v1/orders", nil).json(t, &page)
		if len(page.Orders) != 0 {
			t.Fatalf("bad requests stored %d orders", len(page.Orders))
		}
	})
}

func TestAPIStatusAndLookupErrors(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		a := startApp(t, tr, nil)
		var o orderJSON
		a.do(t, "POST", "/v1/orders", createBody).json(t, &o)

		expectProblem(t, a.do(t, "POST", "/v1/orders/"+o.ID+"/status", `{"status":"delivered"}`), 409, "")
		expectProblem(t, a.do(t, "POST", "/v1/orders/"+o.ID+"/status", `{"status":"lost"}`), 400, "/status")
		expectProblem(t, a.do(t, "GET", "/v1/orders/not-a-uuid", nil), 404, "")
		expectProblem(t, a.do(t, "GET", "/v1/orders/0190c0de-0000-7000-8000-000000000000", nil), 404, "")
		expectProblem(t, a.do(t, "POST", "/v1/orders/0190c0de-0000-7000-8000-000000000000/status", `{"status":"paid"}`), 404, "")
		expectProblem(t, a.do(t, "GET", "/v1/orders?limit=0", nil), 400, "limit")
		expectProblem(t, a.do(t, "GET", "/v1/orders?cursor=zzz", nil), 400, "cursor")
		expectProblem(t, a.do(t, "GET", "/no/such/route", nil), 404, "")
		r := a.do(t, "DELETE", "/v1/orders", nil)
		expectProblem(t, r, 405, "")
		if r.header.Get("Allow") == "" {
			t.Errorf("405 without Allow header")
		}
		other := strings.Replace(createBody, "ring twice", "ring once", 1)
		a.do(t, "POST", "/v1/orders", createBody, "Idempotency-Key", "k1")
		expectProblem(t, a.do(t, "POST", "/v1/orders", other, "Idempotency-Key", "k1"), 409, "Idempotency-Key")

		if got := a.do(t, "GET", "/v1/orders/"+o.ID, nil); !strings.Contains(string(got.body), `"version":1`) {
			t.Fatalf("refused changes changed the order: %s", got.body)
		}
	})
}

// The operational endpoints a person running eventflow relies on.
func TestOperationalEndpoints(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		a := startApp(t, tr, nil)
		a.do(t, "POST", "/v1/orders", createBody)
		kafkaRecords(t, a, 1)

		if r := a.do(t, "GET", "/healthz", nil); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
		var ready struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}
		r := a.do(t, "GET", "/readyz", nil)
		r.json(t, &ready)
		if r.status != 200 || ready.Checks["database"] != "ok" || ready.Checks["broker"] != "ok" {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
		metrics := string(a.do(t, "GET", "/metrics", nil).body)
		for _, want := range []string{
			`eventflow_http_requests_total{method="POST",route="POST /v1/orders",status="201"} 1`,
			`eventflow_http_request_duration_seconds_bucket{method="POST",route="POST /v1/orders"`,
			"eventflow_relay_published_events_total 1",
			"eventflow_relay_batch_size_bucket",
			"eventflow_relay_publish_seconds_bucket",
			"eventflow_outbox_backlog_events 0",
			"eventflow_outbox_oldest_unpublished_age_seconds 0",
			"eventflow_kafka_produce_bytes_total",
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		var spec struct {
			OpenAPI string                     `json:"openapi"`
			Paths   map[string]json.RawMessage `json:"paths"`
		}
		a.do(t, "GET", "/openapi.json", nil).json(t, &spec)
		for _, p := range []string{"/v1/orders", "/v1/orders/{id}", "/v1/orders/{id}/status", "/v1/schemas/{type}/{version}", "/readyz", "/metrics",
			"/v1/subscriptions", "/v1/subscriptions/{id}", "/v1/deliveries", "/v1/deliveries/{id}/retry", "/unsubscribe/{token}"} {
			if spec.Paths[p] == nil {
				t.Errorf("openapi.json lacks %s", p)
			}
		}
	})
}
