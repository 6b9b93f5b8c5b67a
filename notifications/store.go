package notifications

import (
	"context"
	"errors"
	"time"

	"github.com/eventflow/eventflow/event"
)

// Store keeps subscriptions, the inbox of handled events and deliveries.
// The sqlite and postgres packages implement it; storetest holds the
// contract both must meet.
type Store interface {
	// CreateSubscription stores s. Another subscription of the same user,
	// channel, address and patterns is ErrDuplicateSubscription.
	CreateSubscription(ctx context.Context, s Subscription) error
	// Subscription returns the subscription with the id, or an ENOTFOUND error.
	Subscription(ctx context.Context, id string) (Subscription, error)
	// Subscriptions lists subscriptions newest first.
	Subscriptions(ctx context.Context, f SubscriptionFilter) ([]Subscription, error)
	// UpdateSubscription stores s if the stored version is s.Version-1, and
	// returns ErrVersionConflict otherwise; ErrDuplicateSubscription as
	// CreateSubscription; an ENOTFOUND error if there is no such subscription.
	UpdateSubscription(ctx context.Context, s Subscription) error
	// DeleteSubscription deletes the subscription (its deliveries stay in
	// the activity log), or returns an ENOTFOUND error.
	DeleteSubscription(ctx context.Context, id string) error
	// ActiveSubscriptions returns every active subscription, for matching.
	ActiveSubscriptions(ctx context.Context) ([]Subscription, error)
	// SubscriptionsVersion grows with every change to any subscription, so
	// a matcher in another process knows when to reload.
	SubscriptionsVersion(ctx context.Context) (int64, error)

	// RecordEvent marks e handled in the inbox with status and creates the
	// deliveries, all in one transaction. If the inbox holds e.ID already,
	// it changes nothing and reports false: a redelivered event creates no
	// new delivery.
	RecordEvent(ctx context.Context, e event.Event, status InboxStatus, deliveries []Delivery) (bool, error)
	// RecordEvents is RecordEvent for many events in ONE transaction: all
	// are recorded or none is. created[i] says whether records[i] was new;
	// an event already in the inbox, or an earlier record of the same
	// event in records, creates nothing.
	RecordEvents(ctx context.Context, records []EventRecord) (created []bool, err error)

	// PendingSubjects returns those of keys that have a pending delivery
	// (due or not, claimed or not): a new delivery of such a subscription
	// and subject must wait its turn behind it.
	PendingSubjects(ctx context.Context, keys []SubjectKey) ([]SubjectKey, error)
	// ClaimDeliveries claims up to limit pending deliveries due at now for
	// sending, counting an attempt for each and hiding it from other claims
	// until now+lease (so a worker that dies mid-send leaves it to be
	// retried after the lease). A delivery is not claimed while an earlier
	// delivery of the same subscription and subject is still pending, so a
	// subscriber hears about one order's changes in order.
	ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Job, error)
	// MarkSent records that a delivery was accepted.
	MarkSent(ctx context.Context, id string, at time.Time) error
	// MarkSentBatch is MarkSent for many deliveries in one statement, each
	// with its own time. Ids of no delivery are skipped, not an error.
	MarkSentBatch(ctx context.Context, sent []SentMark) error
	// MarkFailed records a failed attempt: the delivery is retried at next,
	// or, when dead, stays dead with the error.
	MarkFailed(ctx context.Context, id string, errText string, next time.Time, dead bool) error
	// Delivery returns the delivery with the id, or an ENOTFOUND error.
	Delivery(ctx context.Context, id string) (Delivery, error)
	// Deliveries lists deliveries newest first.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// RetryDelivery makes a dead delivery pending again, due at now, with
	// its attempts reset. Any other status is ErrNotDead.
	RetryDelivery(ctx context.Context, id string, now time.Time) (Delivery, error)
	// DeliveryCounts counts the pending and the dead deliveries, for
	// metrics; the map holds both, zero included. Sent deliveries are not
	// counted: they are the activity log, which only grows, so counting
	// them would cost each scrape more than the last (the workers count
	// what they send in eventflow_deliveries_total).
	DeliveryCounts(ctx context.Context) (map[DeliveryStatus]int64, error)

	// Secret returns the named secret, creating it from newValue on first
	// use, so every node sharing the database signs alike.
	Secret(ctx context.Context, name string, newValue []byte) ([]byte, error)
}

// EventRecord is one event for RecordEvents: what RecordEvent takes.
type EventRecord struct {
	Event      event.Event
	Status     InboxStatus
	Deliveries []Delivery
}

// SubjectKey names the deliveries that are sent one at a time, in the
// order they were created: those of one subscription about one subject
// (one order).
type SubjectKey struct {
	SubscriptionID string
	Subject        string
}

// SentMark is one delivery for MarkSentBatch: accepted by the server at At.
type SentMark struct {
	ID string
	At time.Time
}

var (
	// ErrDuplicateSubscription means an equal subscription exists.
	ErrDuplicateSubscription = errors.New("duplicate subscription")
	// ErrVersionConflict means a subscription changed between reading and updating it.
	ErrVersionConflict = errors.New("subscription version conflict")
	// ErrNotDead means a retry was asked for a delivery that is not dead.
	ErrNotDead = errors.New("delivery is not dead")
)
