package kafka_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/orders"
)

// A record with any headers and any value decodes or fails without a panic,
// as the consumer does it (decode, then check against the schemas). What
// decodes encodes back to a record that decodes to the same event; what also
// passes the schemas is valid UTF-8 JSON with attributes of bounded length
// and no control characters — what the inbox can store.
//
// The headers are given as lines of key=value.
//
//	go test ./kafka -run '^$' -fuzz '^FuzzDecodeRecord$' -fuzztime 1m
func FuzzDecodeRecord(f *testing.F) {
	valid := "ce_specversion=1.0\nce_id=0190c0de-0000-7000-8000-000000000001\nce_source=/eventflow/orders\n" +
		"ce_type=orders.order.created\nce_subject=0190c0de-0000-7000-8000-000000000002\nce_time=2026-01-02T03:04:05.123456789Z\n" +
		"ce_dataschema=http://127.0.0.1:8080/v1/schemas/orders.order.created/v1\nce_sequence=1\ncontent-type=application/json"
	order := `{"id":"0190c0de-0000-7000-8000-000000000002","user_id":"alice","status":"created","currency":"EUR","items":[],` +
		`"total":100,"version":1,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`
	for _, s := range [][2]string{
		{valid, order},
		{valid + "\nce_traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", order},
		{valid, `{"total":"lots"}`},
		{valid, "\xff\x00"},
		{valid, `{"comment":"` + "\xff" + `"}`},
		{valid + "\nce_id=again", order},
		{strings.Replace(valid, "1.0", "0.3", 1), order},
		{strings.Replace(valid, "2026-01-02T03:04:05.123456789Z", "yesterday", 1), order},
		{strings.Replace(valid, "application/json", "text/plain", 1), order},
		{strings.Replace(valid, "orders.order.created\n", "orders.order.exploded\n", 1), order},
		{"CE_SPECVERSION=1.0\nCe_Id=x\nce_source=s\nce_type=a.b.c\nce_time=2026-01-01T00:00:00+05:00", `[]`},
		{"", ""},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	schemas, err := event.LoadSchemas(orders.Schemas())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, headers string, value []byte) {
		rec := &kgo.Record{Topic: "t", Partition: 1, Offset: 2, Value: value}
		for line := range strings.SplitSeq(headers, "\n") {
			k, v, _ := strings.Cut(line, "=")
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		e, err := kafka.DecodeRecord(rec)
		if err != nil {
			return
		}
		again, err := kafka.DecodeRecord(kafka.EncodeRecord("t", e))
		if err != nil {
			t.Fatalf("a decoded event does not decode again once encoded: %v\n%+v", err, e)
		}
		if again.ID != e.ID || again.Source != e.Source || again.Type != e.Type || again.Subject != e.Subject ||
			!again.Time.Equal(e.Time) || again.DataSchema != e.DataSchema || again.Sequence != e.Sequence ||
			again.TraceParent != e.TraceParent || !bytes.Equal(again.Data, e.Data) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, again)
		}
		if err := schemas.Validate(&e); err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("passed the schemas but not the envelope check: %v", err)
		}
		if !utf8.Valid(e.Data) || e.Data[0] != '{' {
			t.Fatalf("passed the schemas with data %q", e.Data)
		}
		for _, v := range []string{e.ID, e.Source, e.Subject, e.DataSchema, e.TraceParent} {
			if len(v) > event.MaxAttributeLength {
				t.Fatalf("passed the schemas with an attribute of %d bytes", len(v))
			}
		}
	})
}
