// Package outbox moves committed events from the database to the broker.
//
// A change and its event are written in one database transaction (see
// orders.Store); the Relay then publishes the waiting events in commit order
// and deletes them only after the broker acknowledged them. A crash anywhere
// in between publishes an event again rather than losing it, and consumers
// deduplicate by event id.
package outbox

import (
	"context"
	"time"

	"github.com/eventflow/eventflow/event"
)

// Record is an event waiting in the outbox.
type Record struct {
	// Seq is the record's position in the outbox: records are read in Seq
	// order. Two changes to one order cannot commit out of Seq order, because
	// the second waits for the first's row lock before it writes its record.
	Seq       int64
	Event     event.Event
	CreatedAt time.Time
}

// Backlog describes what waits in the outbox.
type Backlog struct {
	Count int64
	// Oldest is when the oldest waiting record was written; zero when none waits.
	Oldest time.Time
}

// Store is the outbox's side of the database.
type Store interface {
	// Pending returns up to limit waiting records in Seq order.
	Pending(ctx context.Context, limit int) ([]Record, error)
	// PendingAfter returns up to limit waiting records with a Seq above
	// after, in Seq order, provided that exactly held records with a Seq up
	// to after wait: those the caller read already and has not deleted. If
	// more wait, a record with a lower Seq committed late (a transaction
	// that took its Seq earlier committed later); if fewer, another process
	// deleted some. Either way it returns nothing, and the caller reads with
	// Pending once it has deleted what it holds, so that no event overtakes
	// an earlier one of the same order. The check and the read see one
	// snapshot of the outbox.
	PendingAfter(ctx context.Context, after int64, held, limit int) ([]Record, error)
	// Delete removes published records; seqs that are gone already are ignored.
	Delete(ctx context.Context, seqs []int64) error
	// Backlog counts the waiting records.
	Backlog(ctx context.Context) (Backlog, error)
	// Committed returns a channel that receives a value soon after new
	// records commit. It is a hint, not a guarantee (the relay also polls),
	// and it is closed when ctx ends.
	Committed(ctx context.Context) <-chan struct{}
	// AcquireLease makes holder the holder of the named lease for ttl, as
	// measured by the store's clock, unless another holder's lease has not
	// expired; it reports whether holder holds the lease now. A holder that
	// holds it already renews it.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives up the named lease if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Publisher sends events to the broker.
type Publisher interface {
	// Publish sends events and returns once the broker acknowledged each one
	// as the delivery guarantee in force requires. Events with the same
	// subject reach the broker in slice order. On error, any subset of the
	// events may have been published.
	Publish(ctx context.Context, events []event.Event) error
}
