// Package storetest is the contract that every implementation of orders.Store
// and outbox.Store meets. Each storage package runs Run against its own
// stores, so the behaviour the rest of eventflow relies on is written down,
// and checked, once.
//
// Where the interfaces' documentation leaves a choice open, the suite pins
// it; each such test says so in its comment.
package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
)

// Run runs the contract's tests as parallel subtests of t. Each subtest
// calls open, which must return the stores of a fresh, empty, migrated
// database that lives as long as the subtest's t; open is called from
// parallel subtests.
func Run(t *testing.T, open func(t *testing.T) (orders.Store, outbox.Store)) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, stores)
	}{
		{"CreateOrder", testCreateOrder},
		{"CreateOrderIsAtomic", testCreateOrderIsAtomic},
		{"OrderNotFound", testOrderNotFound},
		{"Orders", testOrders},
		{"UpdateOrder", testUpdateOrder},
		{"UpdateOrderStaleVersion", testUpdateOrderStaleVersion},
		{"UpdateOrderNotFound", testUpdateOrderNotFound},
		{"UpdateOrderRace", testUpdateOrderRace},
		{"ConcurrentUpdatesKeepSeqOrder", testConcurrentUpdatesKeepSeqOrder},
		{"IdempotencyKeyLive", testIdempotencyKeyLive},
		{"IdempotencyKeyExpired", testIdempotencyKeyExpired},
		{"IdempotencyRecordExpiry", testIdempotencyRecordExpiry},
		{"DeleteExpiredIdempotencyRecords", testDeleteExpiredIdempotencyRecords},
		{"OutboxPending", testOutboxPending},
		{"OutboxPendingAfter", testOutboxPendingAfter},
		{"OutboxDelete", testOutboxDelete},
		{"OutboxBacklog", testOutboxBacklog},
		{"Lease", testLease},
		{"Committed", testCommitted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, ob := open(t)
			tc.test(t, stores{orders: o, outbox: ob})
		})
	}
}

// stores are the two stores of one database.
type stores struct {
	orders orders.Store
	outbox outbox.Store
}

// zone is where the test orders' times are given: the stores must return
// every time in UTC whatever zone it came in.
var zone = time.FixedZone("UTC+3", 3*60*60)

// testTime returns now in zone, with nanoseconds that the stores must
// truncate: a whole number of microseconds plus 789 ns.
func testTime() time.Time {
	return time.Now().Truncate(time.Microsecond).Add(789 * time.Nanosecond).In(zone)
}

// stored is t as every store keeps it: in UTC, truncated to the microsecond.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// NewOrder returns a valid new order of userID, not yet stored, with two
// items and times in a zone other than UTC, and its orders.order.created
// event, built as the orders service builds them. Tests of other packages
// that need orders or outbox records may use it too.
func NewOrder(userID string) (orders.Order, event.Event) {
	now := testTime()
	o := orders.Order{
		ID:       newID(),
		UserID:   userID,
		Status:   orders.StatusCreated,
		Currency: "EUR",
		Items: []orders.Item{
			{SKU: "SKU-1", Name: `Кофе "Арабика" ☕`, Quantity: 2, UnitPrice: 1250},
			{SKU: "SKU-2", Name: "Tea <green> & lemon", Quantity: 1, UnitPrice: 399},
		},
		Total:     2899,
		Comment:   "leave at the door",
		Version:   1,
		CreatedAt: now,
		UpdatedAt: now,
	}
	return o, orderEvent(o, orders.EventCreated, "")
}

// eventTypes names the event each status change publishes.
var eventTypes = map[orders.Status]string{
	orders.StatusCreated:   orders.EventCreated,
	orders.StatusPaid:      orders.EventPaid,
	orders.StatusShipped:   orders.EventShipped,
	orders.StatusDelivered: orders.EventDelivered,
	orders.StatusCancelled: orders.EventCancelled,
}

// changed returns o moved to status, one version on, and the event of that
// change. The stores do not check transitions, so any status will do.
func changed(o orders.Order, status orders.Status) (orders.Order, event.Event) {
	previous := o.Status
	o.Status = status
	o.Version++
	o.UpdatedAt = testTime()
	return o, orderEvent(o, eventTypes[status], previous)
}

// orderEvent builds the event of o's latest change, as the orders service does.
func orderEvent(o orders.Order, eventType string, previous orders.Status) event.Event {
	data, err := json.Marshal(orders.EventData{Order: o, PreviousStatus: previous})
	if err != nil {
		panic(err) // an Order always encodes
	}
	return event.Event{
		ID:          newID(),
		Source:      orders.EventSource,
		Type:        eventType,
		Subject:     o.ID,
		Time:        o.UpdatedAt,
		DataSchema:  "https://eventflow.example" + event.SchemaPath(eventType, orders.EventSchemaVersion),
		Sequence:    o.Version,
		TraceParent: "00-" + randomHex(16) + "-" + randomHex(8) + "-01",
		Data:        data,
	}
}

// newID returns a new UUIDv7: later calls return greater ids.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// wantOrder is o as a store returns it: times in UTC to the microsecond and
// Items never nil (an order without items has an empty slice, so that it
// shows as "items": [] in JSON).
func wantOrder(o orders.Order) orders.Order {
	o.CreatedAt, o.UpdatedAt = stored(o.CreatedAt), stored(o.UpdatedAt)
	if o.Items == nil {
		o.Items = []orders.Item{}
	}
	return o
}

// checkOrder reports how got differs from wantOrder(stored).
func checkOrder(t *testing.T, got, stored orders.Order) {
	t.Helper()
	want := wantOrder(stored)
	if got.Items == nil {
		t.Errorf("order %s: Items is nil, want an empty slice", got.ID)
	}
	checkTime(t, "order "+got.ID+" CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "order "+got.ID+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order:\n got %+v\nwant %+v", got, want)
	}
}

// checkTime reports a time that is not want, or not in UTC.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("%s = %s, want %s (UTC, to the microsecond)", what, got.Format(time.RFC3339Nano+" MST"), want.Format(time.RFC3339Nano))
	}
}

// checkEvent reports how got differs from the event that was written.
func checkEvent(t *testing.T, got, written event.Event) {
	t.Helper()
	checkTime(t, "event "+written.ID+" Time", got.Time, stored(written.Time))
	if !jsonEqual(got.Data, written.Data) {
		t.Errorf("event %s data:\n got %s\nwant %s", written.ID, got.Data, written.Data)
	}
	got.Time, written.Time = time.Time{}, time.Time{}
	got.Data, written.Data = nil, nil
	if !reflect.DeepEqual(got, written) {
		t.Errorf("event:\n got %+v\nwant %+v", got, written)
	}
}

// jsonEqual reports whether a and b are the same JSON value: a store may
// change the spacing and the order of object members.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// checkCode reports an error that is not an eventflow.Error of code.
func checkCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := eventflow.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func mustCreate(t *testing.T, s stores, o orders.Order, e event.Event, idem *orders.IdempotencyRecord) {
	t.Helper()
	if err := s.orders.CreateOrder(t.Context(), o, e, idem); err != nil {
		t.Fatalf("CreateOrder %s: %v", o.ID, err)
	}
}

func mustUpdate(t *testing.T, s stores, o orders.Order, e event.Event) {
	t.Helper()
	if err := s.orders.UpdateOrder(t.Context(), o, e); err != nil {
		t.Fatalf("UpdateOrder %s to version %d: %v", o.ID, o.Version, err)
	}
}

// pending returns every record waiting in the outbox.
func pending(t *testing.T, s stores) []outbox.Record {
	t.Helper()
	records, err := s.outbox.Pending(t.Context(), 1000)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return records
}

// checkPending reports how the records waiting in the outbox differ from
// the events written, in order.
func checkPending(t *testing.T, s stores, written ...event.Event) []outbox.Record {
	t.Helper()
	records := pending(t, s)
	checkRecords(t, records, written...)
	return records
}

// checkRecords reports records that are not in strictly increasing Seq
// order or do not hold the events written, in order.
func checkRecords(t *testing.T, records []outbox.Record, written ...event.Event) {
	t.Helper()
	if len(records) != len(written) {
		t.Errorf("outbox holds %d records (%s), want %d (%s)", len(records), recordIDs(records), len(written), eventIDs(written))
		return
	}
	for i, r := range records {
		if i > 0 && r.Seq <= records[i-1].Seq {
			t.Errorf("record %d has Seq %d after Seq %d", i, r.Seq, records[i-1].Seq)
		}
		if r.CreatedAt.IsZero() || r.CreatedAt.Location() != time.UTC {
			t.Errorf("record %d CreatedAt = %v, want a time in UTC", r.Seq, r.CreatedAt)
		}
		checkEvent(t, r.Event, written[i])
	}
}

func recordIDs(records []outbox.Record) string {
	ids := make([]string, len(records))
	for i, r := range records {
		ids[i] = fmt.Sprintf("%d:%s", r.Seq, r.Event.ID)
	}
	return fmt.Sprint(ids)
}

func eventIDs(events []event.Event) string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return fmt.Sprint(ids)
}
