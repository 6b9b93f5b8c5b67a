package orders

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/google/uuid"

	"github.com/eventflow/eventflow/event"
)

// Event types. Every change of an order publishes one event of the type named
// for what happened: orders.order.created on creation, and one type per status
// it moves to, so subscribers can pick exactly the changes they care about
// ("orders.order.cancelled") or all of them ("orders.order.*").
const (
	EventCreated   = "orders.order.created"
	EventPaid      = "orders.order.paid"
	EventShipped   = "orders.order.shipped"
	EventDelivered = "orders.order.delivered"
	EventCancelled = "orders.order.cancelled"
)

// EventSource is the CloudEvents source of every order event.
const EventSource = "/eventflow/orders"

// EventSchemaVersion is the version of the schemas the service publishes.
const EventSchemaVersion = 1

//go:embed schemas/*.json
var schemaFiles embed.FS

// Schemas returns the JSON Schemas of the order events, one file per type and
// version.
func Schemas() fs.FS {
	sub, err := fs.Sub(schemaFiles, "schemas")
	if err != nil {
		panic(err) // the embedded folder exists at build time
	}
	return sub
}

// EventData is the payload of every order event: the order as it is after
// the change, and for a status change the status it left.
type EventData struct {
	Order
	PreviousStatus Status `json:"previous_status,omitempty"`
}

// statusEventType is the event type published when an order enters a status.
func statusEventType(s Status) string {
	return "orders.order." + string(s)
}

// newEvent builds the event for an order as it is after a change.
// schemaBaseURL prefixes the schema path in dataschema.
func newEvent(o Order, previous Status, eventType, schemaBaseURL, traceParent string) (event.Event, error) {
	data, err := json.Marshal(EventData{Order: o, PreviousStatus: previous})
	if err != nil {
		return event.Event{}, fmt.Errorf("encode event data: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return event.Event{}, fmt.Errorf("new event id: %w", err)
	}
	return event.Event{
		ID:          id.String(),
		Source:      EventSource,
		Type:        eventType,
		Subject:     o.ID,
		Time:        o.UpdatedAt,
		DataSchema:  schemaBaseURL + event.SchemaPath(eventType, EventSchemaVersion),
		Sequence:    o.Version,
		TraceParent: traceParent,
		Data:        data,
	}, nil
}
