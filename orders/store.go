package orders

import (
	"context"
	"errors"
	"time"

	"github.com/eventflow/eventflow/event"
)

// Store keeps orders. Every method that changes an order writes the change's
// event to the outbox in the same transaction, so an event exists if and only
// if its change committed. The sqlite and postgres packages implement it, and
// storetest holds the contract both must meet.
type Store interface {
	// CreateOrder stores a new order and its event. When idem is not nil, the
	// idempotency record is stored in the same transaction, replacing an
	// expired record of the same key; if a live record of that key exists,
	// nothing is stored and the error is ErrIdempotencyKeyExists.
	CreateOrder(ctx context.Context, o Order, e event.Event, idem *IdempotencyRecord) error
	// UpdateOrder stores o and its event if the stored order's version is
	// o.Version-1, and returns ErrVersionConflict otherwise (another change
	// won the race). It returns an ENOTFOUND error if there is no such order.
	UpdateOrder(ctx context.Context, o Order, e event.Event) error
	// Order returns the order with the id, or an ENOTFOUND error.
	Order(ctx context.Context, id string) (Order, error)
	// Orders lists orders newest first.
	Orders(ctx context.Context, f Filter) ([]Order, error)
	// IdempotencyRecord returns the record of key if it has not expired at
	// now, or nil.
	IdempotencyRecord(ctx context.Context, key string, now time.Time) (*IdempotencyRecord, error)
	// DeleteExpiredIdempotencyRecords deletes the records expired at now and
	// says how many there were.
	DeleteExpiredIdempotencyRecords(ctx context.Context, now time.Time) (int64, error)
}

// Filter selects orders to list.
type Filter struct {
	// UserID, when set, keeps only that user's orders.
	UserID string
	// Before, when set, keeps only orders with a smaller id: ids are UUIDv7,
	// so these are the orders created earlier. It is the pagination cursor.
	Before string
	// Limit bounds the number of orders returned.
	Limit int
}

// IdempotencyRecord remembers the first response to a request that carried
// an Idempotency-Key, so that a retry gets the same response.
type IdempotencyRecord struct {
	Key string
	// RequestHash is a digest of the request's meaning (its decoded fields),
	// so a retry with the same key but another request is told apart.
	RequestHash string
	// Order is the order as the first response showed it.
	Order     Order
	CreatedAt time.Time
	ExpiresAt time.Time
}

var (
	// ErrVersionConflict means an order changed between reading and updating it.
	ErrVersionConflict = errors.New("order version conflict")
	// ErrIdempotencyKeyExists means a live record of the idempotency key exists.
	ErrIdempotencyKeyExists = errors.New("idempotency key exists")
)
