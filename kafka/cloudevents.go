package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/event"
)

// Header names of the CloudEvents 1.0 Kafka protocol binding, binary mode:
// each context attribute is a header named "ce_" + attribute, and the data's
// media type is the record's "content-type" header.
const (
	headerSpecVersion = "ce_specversion"
	headerID          = "ce_id"
	headerSource      = "ce_source"
	headerType        = "ce_type"
	headerSubject     = "ce_subject"
	headerTime        = "ce_time"
	headerDataSchema  = "ce_dataschema"
	headerSequence    = "ce_sequence"
	headerTraceParent = "ce_traceparent"
	headerContentType = "content-type"
)

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// ce_time values of one topic sort as strings in time order, which
// time.RFC3339Nano (it trims trailing zeros) does not give.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// EncodeRecord returns e as a record for topic in CloudEvents binary mode:
// the key is e.Subject (the order id), so that all events of one order land
// in one partition and keep their order; the value is e.Data; the context
// attributes are ce_* headers.
//
// The record's timestamp is left for the client to set at produce time: an
// event that waited in the outbox keeps its own time in ce_time, and the
// broker's retention counts from when the record reached it.
func EncodeRecord(topic string, e event.Event) *kgo.Record {
	// All header values share one buffer, and the key shares ce_subject's
	// bytes: two allocations per record instead of a dozen, which the relay
	// pays for every event. Neither franz-go nor the broker writes to them.
	buf := make([]byte, 0, len(event.SpecVersion)+len(e.ID)+len(e.Source)+len(e.Type)+len(e.Subject)+
		len(timeLayout)+len(e.DataSchema)+20+len(e.TraceParent)+len(event.DataContentType))
	headers := make([]kgo.RecordHeader, 0, 10)
	// add appends the value that grow appended to buf, as the header key.
	add := func(key string, grow func([]byte) []byte) {
		start := len(buf)
		buf = grow(buf)
		headers = append(headers, kgo.RecordHeader{Key: key, Value: buf[start:len(buf):len(buf)]})
	}
	str := func(v string) func([]byte) []byte { return func(b []byte) []byte { return append(b, v...) } }
	add(headerSpecVersion, str(event.SpecVersion))
	add(headerID, str(e.ID))
	add(headerSource, str(e.Source))
	add(headerType, str(e.Type))
	add(headerSubject, str(e.Subject))
	subject := headers[len(headers)-1].Value
	add(headerTime, func(b []byte) []byte { return e.Time.UTC().AppendFormat(b, timeLayout) })
	add(headerDataSchema, str(e.DataSchema))
	add(headerSequence, func(b []byte) []byte { return strconv.AppendInt(b, e.Sequence, 10) })
	if e.TraceParent != "" {
		add(headerTraceParent, str(e.TraceParent))
	}
	add(headerContentType, str(event.DataContentType))
	return &kgo.Record{
		Topic:   topic,
		Key:     subject,
		Value:   e.Data,
		Headers: headers,
	}
}

// DecodeRecord is the inverse of EncodeRecord. It fails on a record that is
// not a CloudEvents 1.0 event eventflow can handle: a required attribute
// (specversion 1.0, id, source, type, time) missing or malformed, an
// attribute header given twice, a content type other than JSON, or a value
// that is not JSON. Such a record will never decode, so a consumer should set
// it aside rather than retry it.
func DecodeRecord(r *kgo.Record) (event.Event, error) {
	e, err := decodeRecord(r)
	if err != nil {
		return event.Event{}, fmt.Errorf("decode record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return e, nil
}

func decodeRecord(r *kgo.Record) (event.Event, error) {
	h := make(map[string]string, len(r.Headers))
	for _, rh := range r.Headers {
		key := strings.ToLower(rh.Key)
		if key != headerContentType && !strings.HasPrefix(key, "ce_") {
			continue // not ours to judge
		}
		if _, dup := h[key]; dup {
			return event.Event{}, fmt.Errorf("header %s given twice", key)
		}
		h[key] = string(rh.Value)
	}

	required := func(key string) (string, error) {
		v, ok := h[key]
		if !ok {
			return "", fmt.Errorf("missing header %s", key)
		}
		if v == "" {
			return "", fmt.Errorf("empty header %s", key)
		}
		return v, nil
	}

	var e event.Event
	spec, err := required(headerSpecVersion)
	if err != nil {
		return e, err
	}
	if spec != event.SpecVersion {
		return e, fmt.Errorf("header %s is %q, want %q", headerSpecVersion, spec, event.SpecVersion)
	}
	if e.ID, err = required(headerID); err != nil {
		return e, err
	}
	if e.Source, err = required(headerSource); err != nil {
		return e, err
	}
	if e.Type, err = required(headerType); err != nil {
		return e, err
	}
	if !event.ValidType(e.Type) {
		return e, fmt.Errorf("header %s %q does not follow <domain>.<entity>.<action>", headerType, e.Type)
	}
	ts, err := required(headerTime)
	if err != nil {
		return e, err
	}
	if e.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return e, fmt.Errorf("header %s is not an RFC 3339 time: %w", headerTime, err)
	}
	e.Time = e.Time.UTC()
	e.Subject = h[headerSubject]
	e.DataSchema = h[headerDataSchema]
	e.TraceParent = h[headerTraceParent]
	if seq, ok := h[headerSequence]; ok {
		if e.Sequence, err = strconv.ParseInt(seq, 10, 64); err != nil {
			return e, fmt.Errorf("header %s %q is not a decimal integer", headerSequence, seq)
		}
	}
	if ct, ok := h[headerContentType]; ok {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return e, fmt.Errorf("header %s %q: %w", headerContentType, ct, err)
		}
		if mt != event.DataContentType {
			return e, fmt.Errorf("header %s is %q, want %q", headerContentType, ct, event.DataContentType)
		}
	}
	if len(r.Value) == 0 {
		return e, errors.New("empty value, want JSON data")
	}
	if !json.Valid(r.Value) {
		return e, errors.New("value is not valid JSON")
	}
	e.Data = bytes.Clone(r.Value)
	return e, nil
}
