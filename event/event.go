// Package event defines the events eventflow publishes: CloudEvents 1.0
// envelopes with JSON data, one JSON Schema per event type and version, and
// the small interfaces that move them between services. It knows no broker:
// the kafka package encodes these events for Kafka.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode"
	"unicode/utf8"
)

// SpecVersion is the CloudEvents specification version of every event.
const SpecVersion = "1.0"

// Event is one CloudEvents 1.0 event with JSON data.
type Event struct {
	// ID identifies the event; a UUIDv7, unique across all events. Consumers
	// deduplicate by it.
	ID string `json:"id"`
	// Source names the producer, e.g. "/eventflow/orders".
	Source string `json:"source"`
	// Type follows the <domain>.<entity>.<action> rule, e.g. "orders.order.created".
	Type string `json:"type"`
	// Subject is the entity the event is about: the order id.
	Subject string `json:"subject"`
	// Time is when the change was committed.
	Time time.Time `json:"time"`
	// DataSchema is the URL of the JSON Schema that Data conforms to.
	DataSchema string `json:"dataschema"`
	// Sequence orders the events of one subject: the entity's version after
	// the change (1 for its creation). It is the CloudEvents "sequence"
	// extension, carried as a decimal string on the wire.
	Sequence int64 `json:"sequence,string"`
	// TraceParent is the W3C trace context of the request that caused the
	// event (the Distributed Tracing extension), empty when none was given.
	TraceParent string `json:"traceparent,omitempty"`
	// Data is the event payload, a JSON object.
	Data json.RawMessage `json:"data"`
}

// DataContentType is the media type of every event's data.
const DataContentType = "application/json"

// typePattern is the seed's naming rule: <domain>.<entity>.<action>, each part
// lower case, digits and dashes allowed after the first letter.
var typePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*\.[a-z][a-z0-9_-]*$`)

// ValidType reports whether t follows the <domain>.<entity>.<action> rule.
func ValidType(t string) bool { return typePattern.MatchString(t) }

// Validate checks the envelope's required attributes. It does not check the
// data against its schema: see Schemas.Validate.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("event: missing id")
	case e.Source == "":
		return fmt.Errorf("event %s: missing source", e.ID)
	case !ValidType(e.Type):
		return fmt.Errorf("event %s: type %q does not follow <domain>.<entity>.<action>", e.ID, e.Type)
	case e.Time.IsZero():
		return fmt.Errorf("event %s: missing time", e.ID)
	case len(e.Data) == 0 || !json.Valid(e.Data):
		return fmt.Errorf("event %s: data is not JSON", e.ID)
	case !utf8.Valid(e.Data):
		// json.Valid lets invalid UTF-8 through inside strings; a database
		// would refuse it, and refuse it again on every retry.
		return fmt.Errorf("event %s: data is not valid UTF-8", e.ID)
	}
	// An array, not a map: this runs for every event published and consumed.
	for _, a := range [...]struct{ name, value string }{
		{"id", e.ID}, {"source", e.Source}, {"subject", e.Subject}, {"dataschema", e.DataSchema}, {"traceparent", e.TraceParent},
	} {
		if len(a.value) > MaxAttributeLength {
			return fmt.Errorf("event %.64q…: %s is %d bytes, more than %d", e.ID, a.name, len(a.value), MaxAttributeLength)
		}
		if !printable(a.value) {
			return fmt.Errorf("event %q: %s holds control characters or invalid UTF-8", e.ID, a.name)
		}
	}
	return nil
}

// MaxAttributeLength bounds each string attribute of an event, in bytes.
// Attributes are stored and indexed (the id keys the notifier's inbox, the
// subject orders deliveries), and a database index entry has a size limit
// (PostgreSQL's B-tree: about 2.7 kB); an event over it would fail on every
// retry. eventflow's own ids and subjects are 36-byte UUIDs.
const MaxAttributeLength = 1024

// printable reports whether s is valid UTF-8 without control characters:
// attributes arrive in headers from anyone who can write to the topic, and
// must be safe to store and to log.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// unprocessable marks an event that handling it again cannot fix.
type unprocessable struct{ err error }

func (u unprocessable) Error() string { return u.err.Error() }
func (u unprocessable) Unwrap() error { return u.err }

// Unprocessable marks err, returned by an event handler, as a failure that
// retrying cannot fix: the consumer sets the event aside in its dead-letter
// topic and moves on. Any other error is retried, so that an outage (a
// database restarting) delays events but never discards them.
func Unprocessable(err error) error {
	if err == nil {
		return nil
	}
	return unprocessable{err}
}

// IsUnprocessable reports whether err was marked by Unprocessable.
func IsUnprocessable(err error) bool {
	var u unprocessable
	return errors.As(err, &u)
}
