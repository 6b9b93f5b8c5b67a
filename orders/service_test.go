package orders_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
	"github.com/eventflow/eventflow/sqlite"
)

// newService returns a service over a fresh embedded database, and the
// outbox it writes to.
func newService(t *testing.T, now func() time.Time) (*orders.Service, outbox.Store) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc := orders.NewService(sqlite.NewOrders(db), orders.ServiceConfig{
		SchemaBaseURL:  "http://eventflow.test",
		IdempotencyTTL: time.Hour,
		Now:            now,
	})
	return svc, sqlite.NewOutbox(db)
}

func total(n int64) *int64 { return &n }

// admin is the caller of the tests that are not about access control.
var admin = eventflow.Caller{Admin: true}

func validRequest() orders.CreateRequest {
	return orders.CreateRequest{
		UserID:   "user-1",
		Currency: "EUR",
		Items: []orders.Item{
			{SKU: "SKU-1", Name: "Tea", Quantity: 2, UnitPrice: 450},
			{SKU: "SKU-2", Name: "Cup", Quantity: 1, UnitPrice: 1200},
		},
		Comment: "leave at the door",
	}
}

func TestCreateComputesTotalAndPublishesValidEvent(t *testing.T) {
	svc, ob := newService(t, nil)
	res, err := svc.Create(t.Context(), admin, validRequest(), "", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if err != nil {
		t.Fatal(err)
	}
	o := res.Order
	if o.Total != 2100 || o.Status != orders.StatusCreated || o.Version != 1 || o.Currency != "EUR" {
		t.Fatalf("order = %+v", o)
	}
	pending, err := ob.Pending(t.Context(), 10)
	if err != nil || len(pending) != 1 {
		t.Fatalf("outbox = %v, %v; want one record", pending, err)
	}
	e := pending[0].Event
	if e.Type != orders.EventCreated || e.Subject != o.ID || e.Sequence != 1 ||
		e.DataSchema != "http://eventflow.test/v1/schemas/orders.order.created/v1" ||
		e.TraceParent != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Fatalf("event = %+v", e)
	}
	schemas, err := event.LoadSchemas(orders.Schemas())
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(&e); err != nil {
		t.Fatalf("event does not match its schema: %v", err)
	}
	var data orders.EventData
	if err := json.Unmarshal(e.Data, &data); err != nil || data.Total != 2100 || len(data.Items) != 2 {
		t.Fatalf("data = %s (%v)", e.Data, err)
	}
}

func TestCreateRejectsInvalidRequests(t *testing.T) {
	svc, ob := newService(t, nil)
	tests := []struct {
		name  string
		edit  func(*orders.CreateRequest)
		field string
	}{
		{"no user", func(r *orders.CreateRequest) { r.UserID = "" }, "/user_id"},
		{"user with CRLF", func(r *orders.CreateRequest) { r.UserID = "a\r\nBcc: x@y" }, "/user_id"},
		{"unknown currency", func(r *orders.CreateRequest) { r.Currency = "ABC" }, "/currency"},
		{"lower-case currency", func(r *orders.CreateRequest) { r.Currency = "eur" }, "/currency"},
		{"test currency", func(r *orders.CreateRequest) { r.Currency = "XTS" }, "/currency"},
		{"no items and no total", func(r *orders.CreateRequest) { r.Items = nil }, "/items"},
		{"zero quantity", func(r *orders.CreateRequest) { r.Items[0].Quantity = 0 }, "/items/0/quantity"},
		{"negative price", func(r *orders.CreateRequest) { r.Items[1].UnitPrice = -1 }, "/items/1/unit_price"},
		{"empty sku", func(r *orders.CreateRequest) { r.Items[0].SKU = "" }, "/items/0/sku"},
		{"name with newline", func(r *orders.CreateRequest) { r.Items[0].Name = "Tea\r\nX-Evil: 1" }, "/items/0/name"},
		{"blank name", func(r *orders.CreateRequest) { r.Items[0].Name = "   " }, "/items/0/name"},
		{"overflowing line", func(r *orders.CreateRequest) {
			r.Items[0].Quantity = orders.MaxQuantity
			r.Items[0].UnitPrice = orders.MaxAmount
		}, "/items/0"},
		{"total disagrees with items", func(r *orders.CreateRequest) { r.Total = total(1) }, "/total"},
		{"negative total", func(r *orders.CreateRequest) { r.Items = nil; r.Total = total(-5) }, "/total"},
		{"comment with carriage return", func(r *orders.CreateRequest) { r.Comment = "a\rb" }, "/comment"},
		{"comment with NUL", func(r *orders.CreateRequest) { r.Comment = "a\x00b" }, "/comment"},
		{"comment too long", func(r *orders.CreateRequest) { r.Comment = strings.Repeat("é", orders.MaxCommentLength+1) }, "/comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			req.Items = append([]orders.Item(nil), req.Items...)
			tt.edit(&req)
			_, err := svc.Create(t.Context(), admin, req, "", "")
			var e *eventflow.Error
			if !asError(err, &e) || e.Code != eventflow.EINVALID || e.Field != tt.field {
				t.Fatalf("err = %v; want invalid %s", err, tt.field)
			}
		})
	}
	if b, _ := ob.Backlog(t.Context()); b.Count != 0 {
		t.Fatalf("rejected requests wrote %d events", b.Count)
	}
}

func TestCreateWithTotalOnly(t *testing.T) {
	svc, _ := newService(t, nil)
	res, err := svc.Create(t.Context(), admin, orders.CreateRequest{UserID: "u", Currency: "JPY", Total: total(15000)}, "", "")
	if err != nil || res.Order.Total != 15000 || len(res.Order.Items) != 0 {
		t.Fatalf("res = %+v, %v", res, err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	svc, ob := newService(t, clock)
	ctx := t.Context()

	first, err := svc.Create(ctx, admin, validRequest(), "key-1", "")
	if err != nil || first.Replayed {
		t.Fatalf("first = %+v, %v", first, err)
	}
	again, err := svc.Create(ctx, admin, validRequest(), "key-1", "")
	if err != nil || !again.Replayed || again.Order.ID != first.Order.ID {
		t.Fatalf("retry = %+v, %v; want the first order replayed", again, err)
	}
	other := validRequest()
	other.Comment = "something else"
	if _, err := svc.Create(ctx, admin, other, "key-1", ""); eventflow.ErrorCode(err) != eventflow.ECONFLICT {
		t.Fatalf("same key, other request: err = %v; want conflict", err)
	}
	if b, _ := ob.Backlog(ctx); b.Count != 1 {
		t.Fatalf("outbox holds %d events; want 1", b.Count)
	}

	mu.Lock()
	now = now.Add(2 * time.Hour) // past the TTL
	mu.Unlock()
	later, err := svc.Create(ctx, admin, validRequest(), "key-1", "")
	if err != nil || later.Replayed || later.Order.ID == first.Order.ID {
		t.Fatalf("after expiry = %+v, %v; want a new order", later, err)
	}
}

func TestConcurrentIdempotentCreatesMakeOneOrder(t *testing.T) {
	svc, ob := newService(t, nil)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			res, err := svc.Create(context.Background(), admin, validRequest(), "same-key", "")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res.Order.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids = %v; want one order", ids)
		}
	}
	if b, _ := ob.Backlog(t.Context()); b.Count != 1 {
		t.Fatalf("outbox holds %d events; want 1", b.Count)
	}
}

func TestStatusLifecycle(t *testing.T) {
	svc, ob := newService(t, nil)
	ctx := t.Context()
	res, err := svc.Create(ctx, admin, validRequest(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	id := res.Order.ID
	if _, err := svc.ChangeStatus(ctx, admin, id, orders.StatusShipped, ""); eventflow.ErrorCode(err) != eventflow.ECONFLICT {
		t.Fatalf("created → shipped: err = %v; want conflict", err)
	}
	for _, s := range []orders.Status{orders.StatusPaid, orders.StatusShipped, orders.StatusDelivered} {
		if _, err := svc.ChangeStatus(ctx, admin, id, s, ""); err != nil {
			t.Fatalf("→ %s: %v", s, err)
		}
	}
	if _, err := svc.ChangeStatus(ctx, admin, id, orders.StatusCancelled, ""); eventflow.ErrorCode(err) != eventflow.ECONFLICT {
		t.Fatalf("delivered → cancelled: err = %v; want conflict", err)
	}
	if _, err := svc.ChangeStatus(ctx, admin, id, "refunded", ""); eventflow.ErrorCode(err) != eventflow.EINVALID {
		t.Fatalf("unknown status: err = %v; want invalid", err)
	}
	if _, err := svc.ChangeStatus(ctx, admin, "0190c0de-0000-7000-8000-000000000000", orders.StatusPaid, ""); eventflow.ErrorCode(err) != eventflow.ENOTFOUND {
		t.Fatalf("unknown order: err = %v; want not found", err)
	}
	if _, err := svc.ChangeStatus(ctx, admin, "not-a-uuid", orders.StatusPaid, ""); eventflow.ErrorCode(err) != eventflow.ENOTFOUND {
		t.Fatalf("malformed id: err = %v; want not found", err)
	}
	recs, _ := ob.Pending(ctx, 10)
	var types []string
	for i, r := range recs {
		types = append(types, r.Event.Type)
		if r.Event.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d", i, r.Event.Sequence)
		}
	}
	want := "orders.order.created orders.order.paid orders.order.shipped orders.order.delivered"
	if strings.Join(types, " ") != want {
		t.Fatalf("events = %v; want %s", types, want)
	}
}

// Concurrent changes of one order: paid and cancelled race from created.
// Whatever wins, the loser is re-checked against the winner's state, so the
// outcome is always a valid history and no change is silently lost.
func TestConcurrentStatusChangesAreSerialised(t *testing.T) {
	svc, ob := newService(t, nil)
	ctx := t.Context()
	for range 10 {
		res, err := svc.Create(ctx, admin, orders.CreateRequest{UserID: "u", Currency: "EUR", Total: total(100)}, "", "")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []orders.Status{orders.StatusPaid, orders.StatusCancelled} {
			wg.Go(func() { _, errs[i] = svc.ChangeStatus(context.Background(), admin, res.Order.ID, s, "") })
		}
		wg.Wait()
		o, _ := svc.Order(ctx, admin, res.Order.ID)
		changes := 0
		for _, err := range errs {
			if err == nil {
				changes++
			} else if eventflow.ErrorCode(err) != eventflow.ECONFLICT {
				t.Fatalf("err = %v", err)
			}
		}
		// paid then cancelled is allowed (both succeed); cancelled then
		// paid is not (one succeeds).
		if o.Version != int64(1+changes) || o.Status == orders.StatusCreated {
			t.Fatalf("order %+v after %d successful changes", o, changes)
		}
	}
	recs, _ := ob.Pending(ctx, 1000)
	seen := map[string]int64{}
	for _, r := range recs {
		if r.Event.Sequence != seen[r.Event.Subject]+1 {
			t.Fatalf("order %s: event sequence %d after %d", r.Event.Subject, r.Event.Sequence, seen[r.Event.Subject])
		}
		seen[r.Event.Subject] = r.Event.Sequence
	}
}

func TestListPagination(t *testing.T) {
	svc, _ := newService(t, nil)
	ctx := t.Context()
	var created []string
	for i := range 7 {
		user := "alice"
		if i%3 == 2 {
			user = "bob"
		}
		res, err := svc.Create(ctx, admin, orders.CreateRequest{UserID: user, Currency: "EUR", Total: total(int64(i + 1))}, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if user == "alice" {
			created = append(created, res.Order.ID)
		}
	}
	var got []string
	cursor := ""
	for {
		page, err := svc.List(ctx, admin, "alice", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Orders {
			got = append(got, o.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(got) != len(created) {
		t.Fatalf("listed %d orders; want %d", len(got), len(created))
	}
	for i := range got {
		if got[i] != created[len(created)-1-i] {
			t.Fatalf("listed %v; want newest first %v", got, created)
		}
	}
	if _, err := svc.List(ctx, admin, "", "garbage", 0); eventflow.ErrorCode(err) != eventflow.EINVALID {
		t.Fatalf("bad cursor: err = %v", err)
	}
}

func asError(err error, target **eventflow.Error) bool {
	e, ok := err.(*eventflow.Error)
	if ok {
		*target = e
	}
	return ok
}
