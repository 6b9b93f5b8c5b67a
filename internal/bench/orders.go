package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
)

// users is how many customers the load spreads its orders over.
const users = 100

// orderBody is the JSON of the n-th order the load generator creates: two
// items, about the size of the README's example order.
func orderBody(n int) []byte {
	return fmt.Appendf(nil, `{"user_id":"bench-user-%d","currency":"EUR","items":[`+
		`{"sku":"TEA-%d","name":"Green tea","quantity":2,"unit_price":450},`+
		`{"sku":"CUP-1","name":"Tea cup","quantity":1,"unit_price":1299}],"comment":"benchmark order %d"}`,
		n%users, n%50, n)
}

// maker makes orders and their "created" events exactly as eventflow's
// orders service does, without storing them, for the baselines and for
// filling the outbox and the topic.
type maker struct {
	svc   *orders.Service
	store *capture
}

func newMaker(schemaBaseURL string) *maker {
	c := &capture{}
	return &maker{svc: orders.NewService(c, orders.ServiceConfig{SchemaBaseURL: schemaBaseURL}), store: c}
}

// make returns the n-th order and its event.
func (m *maker) make(ctx context.Context, n int) (orders.Order, event.Event, error) {
	var req orders.CreateRequest
	if err := json.Unmarshal(orderBody(n), &req); err != nil {
		return orders.Order{}, event.Event{}, err
	}
	res, err := m.svc.Create(ctx, eventflow.Caller{UserID: req.UserID}, req, "", "")
	if err != nil {
		return orders.Order{}, event.Event{}, err
	}
	return res.Order, m.store.take(res.Order.ID), nil
}

// events returns the events of n orders.
func (m *maker) events(ctx context.Context, n int) ([]event.Event, error) {
	out := make([]event.Event, n)
	for i := range out {
		_, e, err := m.make(ctx, i)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// capture is an orders.Store that keeps the event of each order created
// until it is taken. Only CreateOrder is used.
type capture struct {
	orders.Store
	mu     sync.Mutex
	events map[string]event.Event
}

func (c *capture) CreateOrder(_ context.Context, o orders.Order, e event.Event, _ *orders.IdempotencyRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.events == nil {
		c.events = map[string]event.Event{}
	}
	c.events[o.ID] = e
	return nil
}

func (c *capture) take(id string) event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.events[id]
	delete(c.events, id)
	return e
}

func itemsJSON(o orders.Order) (string, error) {
	b, err := json.Marshal(o.Items)
	return string(b), err
}
