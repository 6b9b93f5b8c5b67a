package orders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/eventflow/eventflow"
)

// Service runs the order lifecycle: it validates requests, applies the
// allowed status changes and hands each change with its event to the Store.
type Service struct {
	store Store
	cfg   ServiceConfig
}

// ServiceConfig tunes a Service.
type ServiceConfig struct {
	// SchemaBaseURL prefixes the schema path in each event's dataschema,
	// e.g. "http://127.0.0.1:8080".
	SchemaBaseURL string
	// IdempotencyTTL is how long an Idempotency-Key is remembered.
	IdempotencyTTL time.Duration
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// NewService returns a Service over store.
func NewService(store Store, cfg ServiceConfig) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	return &Service{store: store, cfg: cfg}
}

// now is the service's clock, in UTC and truncated to the microsecond, the
// precision both databases keep, so a stored order reads back equal.
func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// CreateRequest is what a caller gives to create an order: either items, whose
// total the service computes, or a total alone. When both are given the total
// must equal the items' sum.
type CreateRequest struct {
	UserID   string `json:"user_id"`
	Items    []Item `json:"items"`
	Total    *int64 `json:"total"`
	Currency string `json:"currency"`
	Comment  string `json:"comment"`
}

// CreateResult is the outcome of Create.
type CreateResult struct {
	Order Order
	// Replayed is true when the order was created by an earlier request with
	// the same idempotency key, and Order is that request's response.
	Replayed bool
}

// maxIdempotencyRetries bounds how often Create re-reads a key that a
// concurrent request stored first.
const maxIdempotencyRetries = 3

// Create validates req and creates the order with its orders.order.created
// event. The order is the caller's (req.UserID defaults to the caller's
// user); only an admin may create one for another user, which is an
// EFORBIDDEN error. A non-empty idempotencyKey makes retries safe: the same
// key with the same request returns the first result; with another request
// it is an ECONFLICT error.
func (s *Service) Create(ctx context.Context, caller eventflow.Caller, req CreateRequest, idempotencyKey, traceParent string) (CreateResult, error) {
	req.UserID = caller.UserFor(req.UserID)
	o, err := s.newOrder(req)
	if err != nil {
		return CreateResult{}, err
	}
	if !caller.Owns(o.UserID) {
		return CreateResult{}, &eventflow.Error{Code: eventflow.EFORBIDDEN, Field: "/user_id",
			Message: "this API key may create orders only for its own user"}
	}
	var idem *IdempotencyRecord
	if idempotencyKey != "" {
		if err := validateIdempotencyKey(idempotencyKey); err != nil {
			return CreateResult{}, err
		}
		idem = &IdempotencyRecord{
			// A key is its user's own: one user's key neither replays nor
			// blocks another user's order. Neither part holds a space.
			Key:         o.UserID + " " + idempotencyKey,
			RequestHash: requestHash(req),
			Order:       o,
			CreatedAt:   o.CreatedAt,
			ExpiresAt:   o.CreatedAt.Add(s.cfg.IdempotencyTTL),
		}
	}
	for attempt := 0; ; attempt++ {
		if idem != nil {
			if res, found, err := s.replay(ctx, idem); found || err != nil {
				return res, err
			}
		}
		e, err := newEvent(o, "", EventCreated, s.cfg.SchemaBaseURL, traceParent)
		if err != nil {
			return CreateResult{}, err
		}
		err = s.store.CreateOrder(ctx, o, e, idem)
		if errors.Is(err, ErrIdempotencyKeyExists) && attempt < maxIdempotencyRetries {
			continue // a concurrent request with the key won; replay its result
		}
		if err != nil {
			return CreateResult{}, fmt.Errorf("create order: %w", err)
		}
		return CreateResult{Order: o}, nil
	}
}

// replay returns the stored result of an earlier request with idem's key.
func (s *Service) replay(ctx context.Context, idem *IdempotencyRecord) (CreateResult, bool, error) {
	prev, err := s.store.IdempotencyRecord(ctx, idem.Key, s.now())
	if err != nil || prev == nil {
		return CreateResult{}, false, err
	}
	if prev.RequestHash != idem.RequestHash {
		return CreateResult{}, true, &eventflow.Error{
			Code:    eventflow.ECONFLICT,
			Field:   "Idempotency-Key",
			Message: "this Idempotency-Key was used with a different request",
		}
	}
	return CreateResult{Order: prev.Order, Replayed: true}, true, nil
}

// requestHash digests the decoded request, so that a retry that differs only
// in JSON spacing or field order counts as the same request.
func requestHash(req CreateRequest) string {
	b, _ := json.Marshal(req) // a struct of plain fields always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// newOrder validates req and builds the order it asks for.
func (s *Service) newOrder(req CreateRequest) (Order, error) {
	if err := validateCreate(req); err != nil {
		return Order{}, err
	}
	total, err := orderTotal(req)
	if err != nil {
		return Order{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Order{}, fmt.Errorf("new order id: %w", err)
	}
	now := s.now()
	items := req.Items
	if items == nil {
		items = []Item{}
	}
	return Order{
		ID:        id.String(),
		UserID:    req.UserID,
		Status:    StatusCreated,
		Currency:  req.Currency,
		Items:     items,
		Total:     total,
		Comment:   req.Comment,
		Version:   1,
		CreatedAt: now,
		UpdatedAt: now,
	}, nil
}

// Order returns the order with the id. Another user's order is not found,
// just like one that does not exist, unless the caller is an admin.
func (s *Service) Order(ctx context.Context, caller eventflow.Caller, id string) (Order, error) {
	notFound := eventflow.Errorf(eventflow.ENOTFOUND, "order %q not found", id)
	if !eventflow.ValidUUID(id) {
		return Order{}, notFound
	}
	o, err := s.store.Order(ctx, id)
	if eventflow.ErrorCode(err) == eventflow.ENOTFOUND || (err == nil && !caller.Owns(o.UserID)) {
		return Order{}, notFound
	}
	return o, err
}

// Page is one page of a listing; NextCursor is empty on the last page.
type Page struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// List returns a page of orders, newest first: of userID, or of every user
// when it is empty; a caller who is not an admin sees only their own. cursor
// is a previous page's NextCursor, or empty for the first page.
func (s *Service) List(ctx context.Context, caller eventflow.Caller, userID, cursor string, limit int) (Page, error) {
	limit, err := eventflow.PageParams(userID, cursor, limit)
	if err != nil {
		return Page{}, err
	}
	userID, ok := caller.ListUser(userID)
	if !ok {
		return Page{Orders: []Order{}}, nil
	}
	// Ask for one more than the page holds, to know whether another follows.
	list, err := s.store.Orders(ctx, Filter{UserID: userID, Before: cursor, Limit: limit + 1})
	if err != nil {
		return Page{}, fmt.Errorf("list orders: %w", err)
	}
	page := Page{Orders: list}
	if len(list) > limit {
		page.Orders = list[:limit]
		page.NextCursor = list[limit-1].ID
	}
	return page, nil
}

// maxVersionRetries bounds how often ChangeStatus re-reads an order that a
// concurrent change updated first.
const maxVersionRetries = 5

// ChangeStatus moves an order to status and publishes the status's event. A
// change the lifecycle does not allow is an ECONFLICT error. Concurrent
// changes are serialised: each is re-checked against the order as the
// previous one left it, so none is lost and none skips the rules. Another
// user's order is not found, unless the caller is an admin.
func (s *Service) ChangeStatus(ctx context.Context, caller eventflow.Caller, id string, status Status, traceParent string) (Order, error) {
	if !status.Valid() || status == StatusCreated {
		return Order{}, eventflow.FieldError("/status", "must be one of paid, shipped, delivered, cancelled")
	}
	for attempt := 0; ; attempt++ {
		o, err := s.Order(ctx, caller, id)
		if err != nil {
			return Order{}, err
		}
		if !o.Status.CanChangeTo(status) {
			return Order{}, eventflow.Errorf(eventflow.ECONFLICT, "an order that is %s cannot become %s", o.Status, status)
		}
		previous := o.Status
		o.Status = status
		o.Version++
		o.UpdatedAt = s.now()
		e, err := newEvent(o, previous, statusEventType(status), s.cfg.SchemaBaseURL, traceParent)
		if err != nil {
			return Order{}, err
		}
		err = s.store.UpdateOrder(ctx, o, e)
		if errors.Is(err, ErrVersionConflict) && attempt < maxVersionRetries {
			continue
		}
		if errors.Is(err, ErrVersionConflict) {
			return Order{}, eventflow.Errorf(eventflow.ECONFLICT, "order %s is changing too often; retry", id)
		}
		if err != nil {
			return Order{}, fmt.Errorf("change order status: %w", err)
		}
		return o, nil
	}
}

// PurgeIdempotencyKeys deletes expired idempotency records.
func (s *Service) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	return s.store.DeleteExpiredIdempotencyRecords(ctx, s.now())
}
