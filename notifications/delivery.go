package notifications

import (
	"time"

	"github.com/eventflow/eventflow/event"
)

// DeliveryStatus is where a delivery is.
type DeliveryStatus string

const (
	// DeliveryPending waits to be sent, or to be retried at NextAttemptAt.
	DeliveryPending DeliveryStatus = "pending"
	// DeliverySent was accepted by the mail server or the webhook.
	DeliverySent DeliveryStatus = "sent"
	// DeliveryDead failed for good (a permanent error, or retries ran out).
	// It is kept, and POST /v1/deliveries/{id}/retry sends it again.
	DeliveryDead DeliveryStatus = "dead"
)

// Known reports whether s is one of the statuses above.
func (s DeliveryStatus) Known() bool {
	return s == DeliveryPending || s == DeliverySent || s == DeliveryDead
}

// Delivery is one notification of one event to one subscription. There is
// at most one per (event, subscription): that uniqueness is what makes a
// redelivered event notify nobody twice.
type Delivery struct {
	ID             string         `json:"id"`
	EventID        string         `json:"event_id"`
	EventType      string         `json:"event_type"`
	Subject        string         `json:"subject"`
	SubscriptionID string         `json:"subscription_id"`
	UserID         string         `json:"user_id"`
	Channel        Channel        `json:"channel"`
	Address        string         `json:"address"`
	Status         DeliveryStatus `json:"status"`
	Attempts       int            `json:"attempts"`
	LastError      string         `json:"last_error,omitempty"`
	NextAttemptAt  time.Time      `json:"next_attempt_at"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	SentAt         *time.Time     `json:"sent_at,omitempty"`
}

// DeliveryFilter selects deliveries to list.
type DeliveryFilter struct {
	EventID        string
	SubscriptionID string
	UserID         string
	Status         DeliveryStatus
	Before         string
	Limit          int
}

// Job is a delivery claimed for sending, with what sending needs.
type Job struct {
	Delivery     Delivery
	Event        event.Event
	Subscription Subscription
}

// InboxStatus says what the notifier did with an event.
type InboxStatus string

const (
	// InboxHandled: the event was matched and its deliveries recorded.
	InboxHandled InboxStatus = "handled"
	// InboxExpired: the event arrived past its time to live and was skipped.
	InboxExpired InboxStatus = "expired"
)
