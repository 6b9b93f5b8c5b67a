package event_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/smtp"
)

// Any event checked against the schemas passes or fails without a panic.
// One that passes is one the notifier can send: it renders to an email
// whose subject and headers are single lines, and which the message builder
// accepts (an event the notifier accepted and the mail could never carry
// would die at every attempt).
//
//	go test ./event -run '^$' -fuzz '^FuzzSchemasValidate$' -fuzztime 1m
func FuzzSchemasValidate(f *testing.F) {
	order := `{"id":"0190c0de-0000-7000-8000-000000000002","user_id":"alice","status":"created","currency":"EUR",` +
		`"items":[{"sku":"TEA-1","name":"Green tea","quantity":2,"unit_price":450}],"total":900,"comment":"ring twice",` +
		`"version":1,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`
	cancelled := strings.Replace(strings.Replace(order, `"created","currency"`, `"cancelled","currency"`, 1), `"version":1`, `"version":2,"previous_status":"paid"`, 1)
	for _, s := range [][3]string{
		{"orders.order.created", "http://x/v1/schemas/orders.order.created/v1", order},
		{"orders.order.cancelled", "http://x/v1/schemas/orders.order.cancelled/v1", cancelled},
		{"orders.order.created", "http://x/v1/schemas/orders.order.created/v1", strings.Replace(order, "ring twice", `a\r\nBcc: v@example.com`, 1)},
		{"orders.order.created", "http://x/v1/schemas/orders.order.created/v1", strings.Replace(order, `"0190c0de-0000-7000-8000-000000000002"`, `"x\r\nBcc: v@example.com"`, 1)},
		{"orders.order.created", "http://x/v1/schemas/orders.order.created/v1", strings.Replace(order, "EUR", "E\u0000R", 1)},
		{"orders.order.created", "http://x/v1/schemas/orders.order.created/v1", strings.Replace(order, "ring twice", "caf\xe9", 1)},
		{"orders.order.created", "http://x/v1/schemas/orders.order.created/v2", order},
		{"orders.order.created", "http://x/v1/schemas/orders.order.paid/v1", order},
		{"orders.order.exploded", "http://x/v1/schemas/orders.order.exploded/v1", order},
		{"orders.order.created", "", `[]`},
	} {
		f.Add("0190c0de-0000-7000-8000-000000000001", s[0], "0190c0de-0000-7000-8000-000000000002", s[1], []byte(s[2]))
	}
	schemas, err := event.LoadSchemas(orders.Schemas())
	if err != nil {
		f.Fatal(err)
	}
	renderer, err := notifications.NewRenderer("eventflow <notifications@eventflow.localhost>", "http://127.0.0.1:8080", notifications.NewTokens(make([]byte, 32)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, typ, subject, dataschema string, data []byte) {
		e := event.Event{ID: id, Source: "/eventflow/orders", Type: typ, Subject: subject, Time: time.Now(),
			DataSchema: dataschema, Sequence: 1, Data: json.RawMessage(data)}
		if err := schemas.Validate(&e); err != nil {
			return
		}
		email, err := renderer.Email(notifications.Job{
			Event:        e,
			Subscription: notifications.Subscription{ID: "0190c0de-0000-7000-8000-000000000003"},
			Delivery:     notifications.Delivery{ID: "0190c0de-0000-7000-8000-000000000004", Address: "alice@example.com"},
		})
		if err != nil {
			t.Fatalf("an accepted event does not render: %v\n%s", err, data)
		}
		for name, v := range email.Headers {
			if strings.ContainsAny(v, "\r\n") {
				t.Fatalf("header %s of an accepted event holds a line break: %q", name, v)
			}
		}
		if strings.ContainsAny(email.Subject, "\r\n") {
			t.Fatalf("the subject of an accepted event holds a line break: %q", email.Subject)
		}
		if _, err := smtp.BuildMessage(email); err != nil {
			t.Fatalf("an accepted event makes an email the builder refuses: %v\n%+v", err, email)
		}
	})
}
