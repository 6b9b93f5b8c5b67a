package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
)

// Orders keeps orders, their idempotency records and, in the same
// transactions, their events in the outbox.
type Orders struct {
	db *DB
}

var _ orders.Store = (*Orders)(nil)

// NewOrders returns the order store of db.
func NewOrders(db *DB) *Orders { return &Orders{db: db} }

// CreateOrder implements orders.Store. A record of idem's key is expired when
// its ExpiresAt is not after idem.CreatedAt.
func (s *Orders) CreateOrder(ctx context.Context, o orders.Order, e event.Event, idem *orders.IdempotencyRecord) error {
	items, err := itemsJSON(o.Items)
	if err != nil {
		return err
	}
	orderArgs := []any{o.ID, o.UserID, o.Status, o.Currency, items, o.Total, o.Comment, o.Version,
		dbTime(o.CreatedAt), dbTime(o.UpdatedAt)}
	if idem == nil {
		// Without a key there is nothing to decide between the two inserts,
		// so they go in one round trip: a batch, which PostgreSQL runs as
		// one implicit transaction (both rows or neither), instead of four
		// (BEGIN, INSERT, INSERT, COMMIT). Intake is mostly waiting for
		// round trips and the system calls they cost.
		var batch pgx.Batch
		batch.Queue(insertOrderSQL, orderArgs...)
		batch.Queue(insertOutboxSQL, outboxArgs(e)...)
		if err := s.db.pool.SendBatch(ctx, &batch).Close(); err != nil {
			return fmt.Errorf("create order %s: insert order and outbox record: %w", o.ID, err)
		}
		s.db.committed()
		return nil
	}
	response, err := json.Marshal(normalizeOrder(idem.Order))
	if err != nil {
		return fmt.Errorf("encode idempotent response: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			DELETE FROM idempotency_keys WHERE key = $1 AND expires_at <= $2`,
			idem.Key, dbTime(idem.CreatedAt))
		if err != nil {
			return fmt.Errorf("delete expired idempotency record: %w", err)
		}
		// A concurrent request with the same key waits here on the key's
		// index entry until the first commits, then inserts nothing.
		tag, err := tx.Exec(ctx, `
			INSERT INTO idempotency_keys (key, request_hash, response, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (key) DO NOTHING`,
			idem.Key, idem.RequestHash, string(response), dbTime(idem.CreatedAt), dbTime(idem.ExpiresAt))
		if err != nil {
			return fmt.Errorf("insert idempotency record: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return orders.ErrIdempotencyKeyExists
		}
		if _, err := tx.Exec(ctx, insertOrderSQL, orderArgs...); err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		return insertOutbox(ctx, tx, e)
	})
	if err == nil {
		s.db.committed()
	}
	if err != nil && !errors.Is(err, orders.ErrIdempotencyKeyExists) {
		return fmt.Errorf("create order %s: %w", o.ID, err)
	}
	return err
}

const insertOrderSQL = `
	INSERT INTO orders (id, user_id, status, currency, items, total, comment, version, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

// UpdateOrder implements orders.Store. It changes every column but id and
// created_at: an order's creation time never changes.
func (s *Orders) UpdateOrder(ctx context.Context, o orders.Order, e event.Event) error {
	if !eventflow.ValidUUID(o.ID) {
		return notFound(o.ID)
	}
	items, err := itemsJSON(o.Items)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		// The UPDATE locks the order's row until commit. A concurrent change
		// of the same order from the same version waits for that lock, then
		// finds the version changed and fails; a change from the next version
		// can only match once this one committed. So the changes of one order
		// form a chain, and as the outbox row is written after the UPDATE,
		// each change takes its seq after every earlier change of the order
		// committed: the events of one order commit in seq order, which lets
		// the relay publish them in order.
		tag, err := tx.Exec(ctx, `
			UPDATE orders
			   SET user_id = $3, status = $4, currency = $5, items = $6, total = $7,
			       comment = $8, version = $9, updated_at = $10
			 WHERE id = $1 AND version = $2`,
			o.ID, o.Version-1, o.UserID, o.Status, o.Currency, items, o.Total,
			o.Comment, o.Version, dbTime(o.UpdatedAt))
		if err != nil {
			return fmt.Errorf("update order: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)`, o.ID).Scan(&exists)
			switch {
			case err != nil:
				return fmt.Errorf("look up order: %w", err)
			case !exists:
				return notFound(o.ID)
			}
			return orders.ErrVersionConflict
		}
		return insertOutbox(ctx, tx, e)
	})
	if err == nil {
		s.db.committed()
	}
	switch {
	case err == nil, errors.Is(err, orders.ErrVersionConflict), eventflow.ErrorCode(err) == eventflow.ENOTFOUND:
		return err
	}
	return fmt.Errorf("update order %s: %w", o.ID, err)
}

// orderColumns are the columns scanOrder reads, in its order.
const orderColumns = `id, user_id, status, currency, items, total, comment, version, created_at, updated_at`

// Order implements orders.Store. It finds an order by its id in canonical
// form only (eventflow.ValidUUID), as UpdateOrder does: PostgreSQL would
// accept other spellings of the same UUID, a store that keeps ids as text
// would not, and the contract is the same for both.
func (s *Orders) Order(ctx context.Context, id string) (orders.Order, error) {
	if !eventflow.ValidUUID(id) {
		return orders.Order{}, notFound(id)
	}
	o, err := scanOrder(s.db.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return orders.Order{}, notFound(id)
	case err != nil:
		return orders.Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	return o, nil
}

// Orders implements orders.Store. A Limit of zero or less means no limit; a
// Before that is not a UUID is an EINVALID error.
func (s *Orders) Orders(ctx context.Context, f orders.Filter) ([]orders.Order, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.UserID != "" {
		where = append(where, "user_id = "+arg(f.UserID))
	}
	if f.Before != "" {
		if !eventflow.ValidUUID(f.Before) {
			return nil, eventflow.Errorf(eventflow.EINVALID, "invalid cursor %q", f.Before)
		}
		where = append(where, "id < "+arg(f.Before))
	}
	query := `SELECT ` + orderColumns + ` FROM orders`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY id DESC` // UUIDv7 ids sort by creation time
	if f.Limit > 0 {
		query += ` LIMIT ` + arg(f.Limit)
	}
	rows, err := s.db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orders.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return list, nil
}

// IdempotencyRecord implements orders.Store. A record is live while its
// ExpiresAt is after now.
func (s *Orders) IdempotencyRecord(ctx context.Context, key string, now time.Time) (*orders.IdempotencyRecord, error) {
	var (
		r        orders.IdempotencyRecord
		response []byte
	)
	err := s.db.pool.QueryRow(ctx, `
		SELECT key, request_hash, response, created_at, expires_at
		  FROM idempotency_keys
		 WHERE key = $1 AND expires_at > $2`,
		key, dbTime(now)).Scan(&r.Key, &r.RequestHash, &response, &r.CreatedAt, &r.ExpiresAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get idempotency record: %w", err)
	}
	if err := json.Unmarshal(response, &r.Order); err != nil {
		return nil, fmt.Errorf("decode idempotency record %q: %w", key, err)
	}
	r.Order = normalizeOrder(r.Order)
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return &r, nil
}

// DeleteExpiredIdempotencyRecords implements orders.Store: it deletes the
// records whose ExpiresAt is not after now.
func (s *Orders) DeleteExpiredIdempotencyRecords(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= $1`, dbTime(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency records: %w", err)
	}
	return tag.RowsAffected(), nil
}

// scanOrder reads the orderColumns of one row.
func scanOrder(row pgx.Row) (orders.Order, error) {
	var (
		o     orders.Order
		items []byte
	)
	err := row.Scan(&o.ID, &o.UserID, &o.Status, &o.Currency, &items, &o.Total,
		&o.Comment, &o.Version, &o.CreatedAt, &o.UpdatedAt)
	if err != nil {
		return orders.Order{}, err
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return orders.Order{}, fmt.Errorf("decode items of order %s: %w", o.ID, err)
	}
	return normalizeOrder(o), nil
}

// normalizeOrder returns o as the store returns it: times in UTC to the
// microsecond, and Items never nil, so that an order without items shows
// "items": [] rather than null.
func normalizeOrder(o orders.Order) orders.Order {
	o.CreatedAt, o.UpdatedAt = dbTime(o.CreatedAt), dbTime(o.UpdatedAt)
	if o.Items == nil {
		o.Items = []orders.Item{}
	}
	return o
}

// itemsJSON encodes items for the items column; no items is [], not null.
func itemsJSON(items []orders.Item) (string, error) {
	if items == nil {
		items = []orders.Item{}
	}
	b, err := json.Marshal(items)
	if err != nil {
		return "", fmt.Errorf("encode items: %w", err)
	}
	return string(b), nil
}

func notFound(id string) error {
	return eventflow.Errorf(eventflow.ENOTFOUND, "order %s not found", id)
}
