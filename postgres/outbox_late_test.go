package postgres_test

import (
	"testing"

	"github.com/eventflow/eventflow/postgres"
	"github.com/eventflow/eventflow/storetest"
)

// A record whose transaction took its seq first but commits last: once it
// is visible, PendingAfter past it refuses to read ahead, and Pending from
// the start returns it first.
func TestPendingAfterSeesLateCommit(t *testing.T) {
	db := openDB(t)
	ctx := t.Context()
	ob, ords := postgres.NewOutbox(db), postgres.NewOrders(db)

	late, err := db.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback(ctx)
	_, lateEvent := storetest.NewOrder("carol")
	if _, err := late.Exec(ctx, `
		INSERT INTO outbox (event_id, type, source, subject, time, dataschema, sequence, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		lateEvent.ID, lateEvent.Type, lateEvent.Source, lateEvent.Subject, lateEvent.Time,
		lateEvent.DataSchema, lateEvent.Sequence, string(lateEvent.Data)); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"alice", "bob"} {
		o, e := storetest.NewOrder(user)
		if err := ords.CreateOrder(ctx, o, e, nil); err != nil {
			t.Fatal(err)
		}
	}

	first, err := ob.Pending(ctx, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("Pending(1) = %d records, %v; want 1", len(first), err)
	}
	ahead, err := ob.PendingAfter(ctx, first[0].Seq, 1, 10)
	if err != nil || len(ahead) != 1 {
		t.Fatalf("PendingAfter before the late commit = %d records, %v; want 1", len(ahead), err)
	}

	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ahead, err = ob.PendingAfter(ctx, first[0].Seq, 1, 10)
	if err != nil || len(ahead) != 0 {
		t.Fatalf("PendingAfter after the late commit = %d records, %v; want none", len(ahead), err)
	}
	all, err := ob.Pending(ctx, 10)
	if err != nil || len(all) != 3 || all[0].Event.ID != lateEvent.ID {
		t.Fatalf("Pending after the late commit = %d records, %v; want 3, the late one first", len(all), err)
	}
}
