// Package orders is the whole order lifecycle: what an order is, how it is
// created and validated, which status changes are allowed, and which event
// each change publishes. Storage is behind Store; events leave through the
// outbox that Store writes in the same transaction as the change.
package orders

import (
	"time"
)

// Status is where an order is in its lifecycle.
type Status string

const (
	StatusCreated   Status = "created"
	StatusPaid      Status = "paid"
	StatusShipped   Status = "shipped"
	StatusDelivered Status = "delivered"
	StatusCancelled Status = "cancelled"
)

// transitions lists, for each status, the statuses it may change to:
// created → paid → shipped → delivered, and cancelled from created or paid.
var transitions = map[Status][]Status{
	StatusCreated: {StatusPaid, StatusCancelled},
	StatusPaid:    {StatusShipped, StatusCancelled},
	StatusShipped: {StatusDelivered},
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusCreated, StatusPaid, StatusShipped, StatusDelivered, StatusCancelled:
		return true
	}
	return false
}

// CanChangeTo reports whether an order in status s may move to next.
func (s Status) CanChangeTo(next Status) bool {
	for _, allowed := range transitions[s] {
		if allowed == next {
			return true
		}
	}
	return false
}

// Order is a customer's order. Amounts are integers in the currency's minor
// unit (cents for EUR, yen for JPY), never floats.
type Order struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	Status   Status `json:"status"`
	Currency string `json:"currency"`
	// Items is empty for an order created with a total only.
	Items   []Item `json:"items"`
	Total   int64  `json:"total"`
	Comment string `json:"comment,omitempty"`
	// Version starts at 1 and grows by one with every change; updates check it
	// so that concurrent changes cannot overwrite one another.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Item is one line of an order.
type Item struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}
