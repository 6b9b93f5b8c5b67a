package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
)

// testCreateOrder: an order and its event come back as they were written,
// times in UTC to the microsecond; an order without items comes back with an
// empty, non-nil Items.
func testCreateOrder(t *testing.T, s stores) {
	o1, e1 := NewOrder("alice")
	o2, _ := NewOrder("bob")
	o2.Items, o2.Comment, o2.Currency, o2.Total = nil, "", "JPY", 1500
	e2 := orderEvent(o2, orders.EventCreated, "")
	e2.TraceParent = ""
	mustCreate(t, s, o1, e1, nil)
	mustCreate(t, s, o2, e2, nil)

	for _, o := range []orders.Order{o1, o2} {
		got, err := s.orders.Order(t.Context(), o.ID)
		if err != nil {
			t.Fatalf("Order %s: %v", o.ID, err)
		}
		checkOrder(t, got, o)
	}
	checkPending(t, s, e1, e2)
}

// testCreateOrderIsAtomic: when the event cannot be written (here: its id
// is in the outbox already), the order is not stored either, with or
// without an idempotency key; and the key is not taken.
func testCreateOrderIsAtomic(t *testing.T, s stores) {
	first, e := NewOrder("alice")
	mustCreate(t, s, first, e, nil)
	for _, withKey := range []bool{false, true} {
		o, clash := NewOrder("alice")
		clash.ID = e.ID
		var idem *orders.IdempotencyRecord
		if withKey {
			idem = &orders.IdempotencyRecord{Key: "atomic-" + newID(), RequestHash: "h", Order: o,
				CreatedAt: o.CreatedAt, ExpiresAt: o.CreatedAt.Add(time.Hour)}
		}
		if err := s.orders.CreateOrder(t.Context(), o, clash, idem); err == nil {
			t.Fatalf("CreateOrder (key %v) with an event id already in the outbox succeeded", withKey)
		}
		_, err := s.orders.Order(t.Context(), o.ID)
		checkCode(t, fmt.Sprintf("the order of the failed create (key %v)", withKey), err, eventflow.ENOTFOUND)
		if withKey {
			if rec, err := s.orders.IdempotencyRecord(t.Context(), idem.Key, o.CreatedAt); err != nil || rec != nil {
				t.Errorf("the failed create left its idempotency key taken: %+v, %v", rec, err)
			}
		}
	}
	checkPending(t, s, e)
}

// testOrderNotFound: an unknown id and an id that is not a canonical UUID
// (the contract pins: only the lower-case, hyphenated form finds an order)
// are ENOTFOUND, not internal errors.
func testOrderNotFound(t *testing.T, s stores) {
	o, e := NewOrder("alice")
	mustCreate(t, s, o, e, nil)
	for _, id := range []string{
		newID(),
		"",
		"not-a-uuid",
		"'; DROP TABLE orders; --",
		strings.ToUpper(o.ID),
		strings.ReplaceAll(o.ID, "-", ""),
		"{" + o.ID + "}",
	} {
		_, err := s.orders.Order(t.Context(), id)
		checkCode(t, fmt.Sprintf("Order(%q)", id), err, eventflow.ENOTFOUND)
	}
	if _, err := s.orders.Order(t.Context(), o.ID); err != nil {
		t.Errorf("Order %s: %v", o.ID, err)
	}
}

// testOrders: newest first, filtered by user, bounded by Limit (zero or less
// means no bound: pinned), paginated by the Before cursor; a Before that is
// not a UUID is EINVALID (pinned).
func testOrders(t *testing.T, s stores) {
	var all, alice []orders.Order // newest first
	for i := range 6 {
		user := []string{"alice", "bob"}[i%2]
		o, e := NewOrder(user)
		mustCreate(t, s, o, e, nil)
		all = append([]orders.Order{o}, all...)
		if user == "alice" {
			alice = append([]orders.Order{o}, alice...)
		}
	}
	list := func(f orders.Filter) []orders.Order {
		t.Helper()
		got, err := s.orders.Orders(t.Context(), f)
		if err != nil {
			t.Fatalf("Orders(%+v): %v", f, err)
		}
		return got
	}
	check := func(f orders.Filter, want []orders.Order) {
		t.Helper()
		got := list(f)
		if len(got) != len(want) {
			t.Errorf("Orders(%+v) returned %d orders %v, want %d %v", f, len(got), orderIDs(got), len(want), orderIDs(want))
			return
		}
		for i := range got {
			checkOrder(t, got[i], want[i])
		}
	}

	check(orders.Filter{}, all)
	check(orders.Filter{Limit: -1}, all)
	check(orders.Filter{Limit: 100}, all)
	check(orders.Filter{Limit: 4}, all[:4])
	check(orders.Filter{UserID: "alice", Limit: 100}, alice)
	check(orders.Filter{UserID: "nobody", Limit: 100}, nil)
	check(orders.Filter{Before: newID(), Limit: 100}, all) // a cursor newer than every order
	check(orders.Filter{Before: all[2].ID, Limit: 100}, all[3:])
	check(orders.Filter{Before: all[len(all)-1].ID, Limit: 100}, nil)
	check(orders.Filter{UserID: "alice", Before: alice[0].ID, Limit: 1}, alice[1:2])

	// Walking the pages with the last id of each as the next cursor visits
	// every order once, in order.
	for _, user := range []string{"", "alice"} {
		want := all
		if user != "" {
			want = alice
		}
		var walked []orders.Order
		f := orders.Filter{UserID: user, Limit: 2}
		for page := 0; ; page++ {
			if page > len(want) {
				t.Fatalf("pagination of %q does not end", user)
			}
			got := list(f)
			walked = append(walked, got...)
			if len(got) < f.Limit {
				break
			}
			f.Before = got[len(got)-1].ID
		}
		if fmt.Sprint(orderIDs(walked)) != fmt.Sprint(orderIDs(want)) {
			t.Errorf("pages of user %q: %v, want %v", user, orderIDs(walked), orderIDs(want))
		}
	}

	_, err := s.orders.Orders(t.Context(), orders.Filter{Before: "not-a-uuid", Limit: 10})
	checkCode(t, "Orders with a malformed cursor", err, eventflow.EINVALID)
}

func orderIDs(list []orders.Order) []string {
	ids := make([]string, len(list))
	for i, o := range list {
		ids[i] = o.ID
	}
	return ids
}

// testUpdateOrder: each update stores the order one version on and writes its
// event after the earlier ones. UpdateOrder keeps the stored CreatedAt
// (pinned: an order's creation time never changes).
func testUpdateOrder(t *testing.T, s stores) {
	o, e := NewOrder("alice")
	mustCreate(t, s, o, e, nil)

	paid, ePaid := changed(o, orders.StatusPaid)
	paid.Comment = "paid by card"
	mustUpdate(t, s, paid, ePaid)
	shipped, eShipped := changed(paid, orders.StatusShipped)
	shipped.CreatedAt = shipped.CreatedAt.Add(time.Hour)
	mustUpdate(t, s, shipped, eShipped)

	got, err := s.orders.Order(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	shipped.CreatedAt = o.CreatedAt
	checkOrder(t, got, shipped)
	if got.Version != 3 {
		t.Errorf("version after two updates = %d, want 3", got.Version)
	}
	checkPending(t, s, e, ePaid, eShipped)
}

// testUpdateOrderStaleVersion: an update whose version is not the stored
// one plus one is ErrVersionConflict and changes nothing, in the orders or
// the outbox.
func testUpdateOrderStaleVersion(t *testing.T, s stores) {
	o, e := NewOrder("alice")
	mustCreate(t, s, o, e, nil)
	paid, ePaid := changed(o, orders.StatusPaid)
	mustUpdate(t, s, paid, ePaid)

	stale, eStale := changed(o, orders.StatusCancelled) // version 2 again
	ahead, eAhead := changed(paid, orders.StatusShipped)
	ahead.Version = 5
	eAhead.Sequence = 5
	for _, u := range []struct {
		o orders.Order
		e event.Event
	}{{stale, eStale}, {ahead, eAhead}} {
		if err := s.orders.UpdateOrder(t.Context(), u.o, u.e); !errors.Is(err, orders.ErrVersionConflict) {
			t.Errorf("UpdateOrder to version %d over version 2: %v, want ErrVersionConflict", u.o.Version, err)
		}
	}

	got, err := s.orders.Order(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, got, paid)
	checkPending(t, s, e, ePaid)
}

// testUpdateOrderNotFound: updating an order that does not exist, or whose
// id is malformed, is ENOTFOUND and writes nothing.
func testUpdateOrderNotFound(t *testing.T, s stores) {
	o, _ := NewOrder("alice")
	paid, ePaid := changed(o, orders.StatusPaid)
	err := s.orders.UpdateOrder(t.Context(), paid, ePaid)
	checkCode(t, "UpdateOrder of a missing order", err, eventflow.ENOTFOUND)
	if errors.Is(err, orders.ErrVersionConflict) {
		t.Errorf("UpdateOrder of a missing order: %v is also ErrVersionConflict", err)
	}

	paid.ID = "not-a-uuid"
	err = s.orders.UpdateOrder(t.Context(), paid, ePaid)
	checkCode(t, "UpdateOrder with a malformed id", err, eventflow.ENOTFOUND)
	checkPending(t, s)
}

// testUpdateOrderRace: of writers that update the same version at once,
// exactly one wins, the others get ErrVersionConflict, and the outbox holds
// the winner's event only.
func testUpdateOrderRace(t *testing.T, s stores) {
	const writers = 8
	o, e := NewOrder("alice")
	mustCreate(t, s, o, e, nil)

	updates := make([]orders.Order, writers)
	events := make([]event.Event, writers)
	errs := make([]error, writers)
	for i := range writers {
		u, _ := changed(o, orders.StatusPaid)
		u.Comment = fmt.Sprintf("writer %d", i)
		updates[i], events[i] = u, orderEvent(u, orders.EventPaid, o.Status)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = s.orders.UpdateOrder(t.Context(), updates[i], events[i])
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, orders.ErrVersionConflict):
			t.Errorf("writer %d: %v, want nil or ErrVersionConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	got, err := s.orders.Order(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, got, updates[winner])
	checkPending(t, s, e, events[winner])
}

// testConcurrentUpdatesKeepSeqOrder: however concurrent writers interleave,
// the events of one order wait in the outbox in the order of their versions,
// so the relay publishes them in that order.
func testConcurrentUpdatesKeepSeqOrder(t *testing.T, s stores) {
	const writers, updatesEach = 4, 5
	o, e := NewOrder("alice")
	mustCreate(t, s, o, e, nil)

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for done := 0; done < updatesEach; {
				current, err := s.orders.Order(t.Context(), o.ID)
				if err != nil {
					t.Errorf("writer %d: Order: %v", w, err)
					return
				}
				u, ue := changed(current, current.Status)
				err = s.orders.UpdateOrder(t.Context(), u, ue)
				switch {
				case err == nil:
					done++
				case !errors.Is(err, orders.ErrVersionConflict):
					t.Errorf("writer %d: UpdateOrder: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()

	records := pending(t, s)
	const want = 1 + writers*updatesEach
	if len(records) != want {
		t.Fatalf("outbox holds %d records, want %d", len(records), want)
	}
	for i, r := range records {
		if r.Event.Sequence != int64(i+1) || r.Event.Subject != o.ID {
			t.Errorf("record %d (seq %d) has sequence %d of %s, want %d of %s",
				i, r.Seq, r.Event.Sequence, r.Event.Subject, i+1, o.ID)
		}
	}
}

// idempotencyRecord returns a record of key for o, created at createdAt and
// live for ttl.
func idempotencyRecord(key, hash string, o orders.Order, createdAt time.Time, ttl time.Duration) *orders.IdempotencyRecord {
	return &orders.IdempotencyRecord{
		Key:         key,
		RequestHash: hash,
		Order:       o,
		CreatedAt:   createdAt,
		ExpiresAt:   createdAt.Add(ttl),
	}
}

// checkIdempotencyRecord reports how got differs from the record written.
func checkIdempotencyRecord(t *testing.T, got, written *orders.IdempotencyRecord) {
	t.Helper()
	if got == nil {
		t.Errorf("idempotency record %q: nil, want the record of request %q", written.Key, written.RequestHash)
		return
	}
	if got.Key != written.Key || got.RequestHash != written.RequestHash {
		t.Errorf("idempotency record = key %q hash %q, want key %q hash %q", got.Key, got.RequestHash, written.Key, written.RequestHash)
	}
	checkOrder(t, got.Order, written.Order)
	checkTime(t, "idempotency record CreatedAt", got.CreatedAt, stored(written.CreatedAt))
	checkTime(t, "idempotency record ExpiresAt", got.ExpiresAt, stored(written.ExpiresAt))
}

// testIdempotencyKeyLive: a second order with the live key of a first is
// ErrIdempotencyKeyExists and stores nothing: no order, no event, and the
// first record stays.
func testIdempotencyKeyLive(t *testing.T, s stores) {
	now := testTime()
	o1, e1 := NewOrder("alice")
	rec1 := idempotencyRecord("key-1", "hash-1", o1, now, 24*time.Hour)
	mustCreate(t, s, o1, e1, rec1)

	got, err := s.orders.IdempotencyRecord(t.Context(), "key-1", now)
	if err != nil {
		t.Fatal(err)
	}
	checkIdempotencyRecord(t, got, rec1)

	o2, e2 := NewOrder("alice")
	rec2 := idempotencyRecord("key-1", "hash-2", o2, now.Add(time.Minute), 24*time.Hour)
	if err := s.orders.CreateOrder(t.Context(), o2, e2, rec2); !errors.Is(err, orders.ErrIdempotencyKeyExists) {
		t.Fatalf("CreateOrder with a live key: %v, want ErrIdempotencyKeyExists", err)
	}
	_, err = s.orders.Order(t.Context(), o2.ID)
	checkCode(t, "Order refused by its idempotency key", err, eventflow.ENOTFOUND)
	checkPending(t, s, e1)
	got, err = s.orders.IdempotencyRecord(t.Context(), "key-1", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	checkIdempotencyRecord(t, got, rec1)

	// Another key is another request; an order without items is kept with
	// an empty Items, as Order returns it.
	o3, _ := NewOrder("alice")
	o3.Items = nil
	e3 := orderEvent(o3, orders.EventCreated, "")
	rec3 := idempotencyRecord("key-2", "hash-1", o3, now, time.Hour)
	mustCreate(t, s, o3, e3, rec3)
	got, err = s.orders.IdempotencyRecord(t.Context(), "key-2", now)
	if err != nil {
		t.Fatal(err)
	}
	checkIdempotencyRecord(t, got, rec3)
	checkPending(t, s, e1, e3)
}

// testIdempotencyKeyExpired: a new record replaces an expired record of its
// key. CreateOrder judges expiry at the new record's CreatedAt, not by a
// clock of its own (pinned; the first record here expires an hour from now
// by the wall clock), and a record is expired at its ExpiresAt (pinned).
func testIdempotencyKeyExpired(t *testing.T, s stores) {
	base := testTime()
	o1, e1 := NewOrder("alice")
	mustCreate(t, s, o1, e1, idempotencyRecord("key", "hash-1", o1, base, time.Hour))

	o2, e2 := NewOrder("alice")
	rec2 := idempotencyRecord("key", "hash-2", o2, base.Add(time.Hour), 24*time.Hour)
	mustCreate(t, s, o2, e2, rec2)
	got, err := s.orders.IdempotencyRecord(t.Context(), "key", base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	checkIdempotencyRecord(t, got, rec2)

	// rec2 is live at base+2h.
	o3, e3 := NewOrder("alice")
	rec3 := idempotencyRecord("key", "hash-3", o3, base.Add(2*time.Hour), 24*time.Hour)
	if err := s.orders.CreateOrder(t.Context(), o3, e3, rec3); !errors.Is(err, orders.ErrIdempotencyKeyExists) {
		t.Errorf("CreateOrder over the live replacement: %v, want ErrIdempotencyKeyExists", err)
	}

	for _, o := range []orders.Order{o1, o2} {
		if _, err := s.orders.Order(t.Context(), o.ID); err != nil {
			t.Errorf("Order %s: %v", o.ID, err)
		}
	}
	checkPending(t, s, e1, e2)
}

// testIdempotencyRecordExpiry: IdempotencyRecord returns a record until its
// ExpiresAt, and nil from then on, and for an unknown key.
func testIdempotencyRecordExpiry(t *testing.T, s stores) {
	now := testTime()
	o, e := NewOrder("alice")
	rec := idempotencyRecord("key", "hash", o, now, time.Hour)
	mustCreate(t, s, o, e, rec)
	expiry := stored(rec.ExpiresAt)

	for _, c := range []struct {
		key  string
		at   time.Time
		live bool
	}{
		{"key", now, true},
		{"key", expiry.Add(-time.Microsecond), true},
		{"key", expiry, false},
		{"key", expiry.Add(time.Hour), false},
		{"other", now, false},
	} {
		got, err := s.orders.IdempotencyRecord(t.Context(), c.key, c.at)
		switch {
		case err != nil:
			t.Errorf("IdempotencyRecord(%q, %s): %v", c.key, c.at, err)
		case c.live:
			checkIdempotencyRecord(t, got, rec)
		case got != nil:
			t.Errorf("IdempotencyRecord(%q, %s) = %+v, want nil (expiry %s)", c.key, c.at, got, expiry)
		}
	}
}

// testDeleteExpiredIdempotencyRecords: the records expired at now go (a
// record is expired at its ExpiresAt: pinned), the live ones and every order
// stay.
func testDeleteExpiredIdempotencyRecords(t *testing.T, s stores) {
	base := testTime()
	for i := 1; i <= 3; i++ {
		o, e := NewOrder("alice")
		mustCreate(t, s, o, e, idempotencyRecord(fmt.Sprintf("key-%d", i), "hash", o, base, time.Duration(i)*time.Hour))
	}
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{base, 0},
		{base.Add(2 * time.Hour), 2},
		{base.Add(2 * time.Hour), 0},
	} {
		n, err := s.orders.DeleteExpiredIdempotencyRecords(t.Context(), c.at)
		if err != nil || n != c.want {
			t.Errorf("DeleteExpiredIdempotencyRecords(base+%s) = %d, %v; want %d", c.at.Sub(base), n, err, c.want)
		}
	}
	for key, live := range map[string]bool{"key-1": false, "key-2": false, "key-3": true} {
		got, err := s.orders.IdempotencyRecord(t.Context(), key, base)
		if err != nil || (got != nil) != live {
			t.Errorf("IdempotencyRecord(%q) after the deletion = %v, %v; want a record: %v", key, got, err, live)
		}
	}
	list, err := s.orders.Orders(t.Context(), orders.Filter{})
	if err != nil || len(list) != 3 {
		t.Errorf("Orders after the deletion: %d orders, %v; want 3", len(list), err)
	}
}
