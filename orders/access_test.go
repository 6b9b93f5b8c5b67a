package orders_test

import (
	"testing"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/orders"
)

// A caller sees and changes only their own orders; an admin, every user's.
func TestOrdersAreTheirOwners(t *testing.T) {
	svc, _ := newService(t, nil)
	ctx := t.Context()
	alice, bob := eventflow.Caller{UserID: "alice"}, eventflow.Caller{UserID: "bob"}

	res, err := svc.Create(ctx, alice, orders.CreateRequest{Currency: "EUR", Total: total(100)}, "", "")
	if err != nil || res.Order.UserID != "alice" {
		t.Fatalf("alice creates without user_id: %+v %v", res.Order, err)
	}
	id := res.Order.ID
	if _, err := svc.Create(ctx, alice, orders.CreateRequest{UserID: "bob", Currency: "EUR", Total: total(1)}, "", ""); eventflow.ErrorCode(err) != eventflow.EFORBIDDEN {
		t.Fatalf("alice creates for bob: %v", err)
	}
	if _, err := svc.Create(ctx, eventflow.Caller{}, orders.CreateRequest{UserID: "bob", Currency: "EUR", Total: total(1)}, "", ""); eventflow.ErrorCode(err) != eventflow.EFORBIDDEN {
		t.Fatalf("the zero caller creates: %v", err)
	}
	if _, err := svc.Order(ctx, bob, id); eventflow.ErrorCode(err) != eventflow.ENOTFOUND {
		t.Fatalf("bob reads alice's order: %v", err)
	}
	if _, err := svc.ChangeStatus(ctx, bob, id, orders.StatusCancelled, ""); eventflow.ErrorCode(err) != eventflow.ENOTFOUND {
		t.Fatalf("bob cancels alice's order: %v", err)
	}
	if o, err := svc.Order(ctx, admin, id); err != nil || o.Status != orders.StatusCreated {
		t.Fatalf("admin reads alice's order: %+v %v", o, err)
	}
	for asked, want := range map[string]int{"": 0, "alice": 0, "bob": 0} {
		page, err := svc.List(ctx, bob, asked, "", 0)
		if err != nil || len(page.Orders) != want {
			t.Fatalf("bob lists %q: %d orders, %v", asked, len(page.Orders), err)
		}
	}
	if page, _ := svc.List(ctx, alice, "", "", 0); len(page.Orders) != 1 {
		t.Fatalf("alice lists %d orders", len(page.Orders))
	}
	if page, _ := svc.List(ctx, admin, "", "", 0); len(page.Orders) != 1 {
		t.Fatalf("admin lists %d orders", len(page.Orders))
	}
}

// An Idempotency-Key is its user's own: the same key from another user
// neither replays the first user's order nor is refused.
func TestIdempotencyKeysArePerUser(t *testing.T) {
	svc, _ := newService(t, nil)
	ctx := t.Context()
	a, err := svc.Create(ctx, eventflow.Caller{UserID: "alice"}, orders.CreateRequest{Currency: "EUR", Total: total(100)}, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.Create(ctx, eventflow.Caller{UserID: "bob"}, orders.CreateRequest{Currency: "EUR", Total: total(100)}, "k", "")
	if err != nil || b.Replayed || b.Order.ID == a.Order.ID || b.Order.UserID != "bob" {
		t.Fatalf("bob with alice's key: %+v %v", b, err)
	}
	again, err := svc.Create(ctx, eventflow.Caller{UserID: "alice"}, orders.CreateRequest{Currency: "EUR", Total: total(100)}, "k", "")
	if err != nil || !again.Replayed || again.Order.ID != a.Order.ID {
		t.Fatalf("alice's retry: %+v %v", again, err)
	}
}
