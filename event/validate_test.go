package event_test

import (
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
)

// An envelope the inbox could never store is refused before it is tried:
// data that is valid JSON but not UTF-8, attributes longer than a database
// index entry may be, control characters.
func TestValidateRefusesUnstorableEvents(t *testing.T) {
	valid := event.Event{ID: "0190c0de-0000-7000-8000-000000000001", Source: "/eventflow/orders", Type: "orders.order.created",
		Subject: "0190c0de-0000-7000-8000-000000000002", Time: time.Now(), DataSchema: "http://x/v1/schemas/orders.order.created/v1",
		Data: []byte(`{"comment":"café"}`)}
	if err := valid.Validate(); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", event.MaxAttributeLength+1)
	for name, edit := range map[string]func(*event.Event){
		"data not UTF-8":     func(e *event.Event) { e.Data = []byte("{\"comment\":\"caf\xe9\"}") },
		"data not JSON":      func(e *event.Event) { e.Data = []byte(`{`) },
		"long id":            func(e *event.Event) { e.ID = long },
		"long source":        func(e *event.Event) { e.Source = long },
		"long subject":       func(e *event.Event) { e.Subject = long },
		"long dataschema":    func(e *event.Event) { e.DataSchema = long },
		"long traceparent":   func(e *event.Event) { e.TraceParent = long },
		"NUL in the subject": func(e *event.Event) { e.Subject = "a\x00b" },
		"CRLF in the source": func(e *event.Event) { e.Source = "a\r\nb" },
	} {
		e := valid
		edit(&e)
		if err := e.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	e := valid
	e.ID = strings.Repeat("a", event.MaxAttributeLength)
	if err := e.Validate(); err != nil {
		t.Errorf("an id of exactly %d bytes: %v", event.MaxAttributeLength, err)
	}
}
