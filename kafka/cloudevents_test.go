package kafka_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/kafka"
)

// testEvent returns a valid order event; n varies its id and sequence.
func testEvent(subject string, n int64) event.Event {
	return event.Event{
		ID:          fmt.Sprintf("0190a1b2-c3d4-7e5f-8a9b-%012d", n),
		Source:      "/eventflow/orders",
		Type:        "orders.order.created",
		Subject:     subject,
		Time:        time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC),
		DataSchema:  "https://eventflow.example/schemas/orders.order.created.v1.json",
		Sequence:    n,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Data:        json.RawMessage(fmt.Sprintf(`{"id":%q,"n":%d}`, subject, n)),
	}
}

func headerMap(t *testing.T, r *kgo.Record) map[string]string {
	t.Helper()
	m := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		if _, dup := m[h.Key]; dup {
			t.Fatalf("header %s appears twice", h.Key)
		}
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestEncodeRecord(t *testing.T) {
	e := testEvent("ord_1", 7)
	e.Time = time.Date(2025, 3, 4, 8, 6, 7, 5000, time.FixedZone("UTC+3", 3*3600))
	r := kafka.EncodeRecord("orders.order.events", e)

	if r.Topic != "orders.order.events" {
		t.Errorf("topic = %q", r.Topic)
	}
	if string(r.Key) != "ord_1" {
		t.Errorf("key = %q, want the subject", r.Key)
	}
	if !bytes.Equal(r.Value, e.Data) {
		t.Errorf("value = %s, want the data", r.Value)
	}
	want := map[string]string{
		"ce_specversion": "1.0",
		"ce_id":          e.ID,
		"ce_source":      "/eventflow/orders",
		"ce_type":        "orders.order.created",
		"ce_subject":     "ord_1",
		"ce_time":        "2025-03-04T05:06:07.000005000Z", // in UTC, nine digits
		"ce_dataschema":  e.DataSchema,
		"ce_sequence":    "7",
		"ce_traceparent": e.TraceParent,
		"content-type":   "application/json",
	}
	if got := headerMap(t, r); !reflect.DeepEqual(got, want) {
		t.Errorf("headers:\n got %v\nwant %v", got, want)
	}

	e.TraceParent = ""
	if _, ok := headerMap(t, kafka.EncodeRecord("orders.order.events", e))["ce_traceparent"]; ok {
		t.Error("ce_traceparent sent for an event without trace context")
	}
}

func TestDecodeRecordRoundTrip(t *testing.T) {
	for _, traceParent := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		e := testEvent("ord_2", 3)
		e.TraceParent = traceParent
		e.Time = e.Time.In(time.FixedZone("UTC-7", -7*3600))
		got, err := kafka.DecodeRecord(kafka.EncodeRecord("orders.order.events", e))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Time.Equal(e.Time) || got.Time.Location() != time.UTC {
			t.Errorf("time = %v, want %v in UTC", got.Time, e.Time)
		}
		got.Time, e.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
}

func TestDecodeRecordAccepts(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *kgo.Record)
	}{
		{"content type with parameters", func(r *kgo.Record) { setHeader(r, "content-type", "application/json; charset=utf-8") }},
		{"no content type", func(r *kgo.Record) { dropHeader(r, "content-type") }},
		{"time without fraction", func(r *kgo.Record) { setHeader(r, "ce_time", "2025-03-04T05:06:07Z") }},
		{"time with offset", func(r *kgo.Record) { setHeader(r, "ce_time", "2025-03-04T08:06:07.5+03:00") }},
		{"no sequence", func(r *kgo.Record) { dropHeader(r, "ce_sequence") }},
		{"foreign headers", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "x-retry", Value: []byte("1")}, kgo.RecordHeader{Key: "x-retry", Value: []byte("2")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kafka.EncodeRecord("orders.order.events", testEvent("ord_3", 1))
			tt.modify(r)
			if _, err := kafka.DecodeRecord(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *kgo.Record)
		want   string // in the error
	}{
		{"missing specversion", func(r *kgo.Record) { dropHeader(r, "ce_specversion") }, "missing header ce_specversion"},
		{"other specversion", func(r *kgo.Record) { setHeader(r, "ce_specversion", "0.3") }, `ce_specversion is "0.3", want "1.0"`},
		{"missing id", func(r *kgo.Record) { dropHeader(r, "ce_id") }, "missing header ce_id"},
		{"empty id", func(r *kgo.Record) { setHeader(r, "ce_id", "") }, "empty header ce_id"},
		{"missing source", func(r *kgo.Record) { dropHeader(r, "ce_source") }, "missing header ce_source"},
		{"missing type", func(r *kgo.Record) { dropHeader(r, "ce_type") }, "missing header ce_type"},
		{"invalid type", func(r *kgo.Record) { setHeader(r, "ce_type", "OrderCreated") }, "does not follow <domain>.<entity>.<action>"},
		{"missing time", func(r *kgo.Record) { dropHeader(r, "ce_time") }, "missing header ce_time"},
		{"invalid time", func(r *kgo.Record) { setHeader(r, "ce_time", "2025-03-04 05:06:07") }, "ce_time is not an RFC 3339 time"},
		{"invalid sequence", func(r *kgo.Record) { setHeader(r, "ce_sequence", "seven") }, `ce_sequence "seven" is not a decimal integer`},
		{"other content type", func(r *kgo.Record) { setHeader(r, "content-type", "application/avro") }, `content-type is "application/avro"`},
		{"malformed content type", func(r *kgo.Record) { setHeader(r, "content-type", "application/json;;") }, "content-type"},
		{"header twice", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "ce_id", Value: []byte("other")})
		}, "header ce_id given twice"},
		{"header twice, other case", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "CE_Type", Value: []byte("orders.order.paid")})
		}, "header ce_type given twice"},
		{"empty value", func(r *kgo.Record) { r.Value = nil }, "empty value"},
		{"value not JSON", func(r *kgo.Record) { r.Value = []byte(`{"id":`) }, "value is not valid JSON"},
		{"no headers", func(r *kgo.Record) { r.Headers = nil }, "missing header ce_specversion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kafka.EncodeRecord("orders.order.events", testEvent("ord_4", 1))
			r.Partition, r.Offset = 2, 41
			tt.modify(r)
			_, err := kafka.DecodeRecord(r)
			if err == nil {
				t.Fatal("decoded a bad record")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "decode record orders.order.events/2@41: ") {
				t.Errorf("error %q does not name the record", err)
			}
		})
	}
}

func setHeader(r *kgo.Record, key, value string) {
	for i := range r.Headers {
		if r.Headers[i].Key == key {
			r.Headers[i].Value = []byte(value)
			return
		}
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func dropHeader(r *kgo.Record, key string) {
	hs := r.Headers[:0]
	for _, h := range r.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	r.Headers = hs
}
