package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
)

// Orders is the orders.Store on SQLite.
type Orders struct {
	db *DB
}

var _ orders.Store = (*Orders)(nil)

// NewOrders returns the orders store of db.
func NewOrders(db *DB) *Orders { return &Orders{db: db} }

// CreateOrder implements orders.Store.
func (s *Orders) CreateOrder(ctx context.Context, o orders.Order, e event.Event, idem *orders.IdempotencyRecord) error {
	items, err := json.Marshal(o.Items)
	if err != nil {
		return fmt.Errorf("encode items: %w", err)
	}
	err = s.db.inTx(ctx, func(tx *sql.Tx) error {
		if idem != nil {
			if err := insertIdempotencyRecord(ctx, tx, idem); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO orders (id, user_id, status, currency, items, total, comment, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.UserID, o.Status, o.Currency, string(items), o.Total, o.Comment, o.Version,
			formatTime(o.CreatedAt), formatTime(o.UpdatedAt))
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		return insertOutboxRecord(ctx, tx, e)
	})
	if err != nil {
		return err
	}
	s.db.notifyCommitted()
	return nil
}

func insertIdempotencyRecord(ctx context.Context, tx *sql.Tx, idem *orders.IdempotencyRecord) error {
	response, err := json.Marshal(normalized(idem.Order))
	if err != nil {
		return fmt.Errorf("encode idempotent response: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE key = ? AND expires_at <= ?`,
		idem.Key, formatTime(idem.CreatedAt)); err != nil {
		return fmt.Errorf("delete expired idempotency key: %w", err)
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO idempotency_keys (key, request_hash, response, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		idem.Key, idem.RequestHash, string(response), formatTime(idem.CreatedAt), formatTime(idem.ExpiresAt))
	if err != nil {
		return fmt.Errorf("insert idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return orders.ErrIdempotencyKeyExists
	}
	return nil
}

// UpdateOrder implements orders.Store. SQLite runs one write transaction at
// a time, so the version check and the outbox insert cannot interleave with
// another change of the same order.
func (s *Orders) UpdateOrder(ctx context.Context, o orders.Order, e event.Event) error {
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		items, err := json.Marshal(o.Items)
		if err != nil {
			return fmt.Errorf("encode items: %w", err)
		}
		res, err := tx.ExecContext(ctx, `
			UPDATE orders SET user_id = ?, status = ?, currency = ?, items = ?, total = ?, comment = ?,
			                  version = ?, updated_at = ?
			WHERE id = ? AND version = ?`,
			o.UserID, o.Status, o.Currency, string(items), o.Total, o.Comment,
			o.Version, formatTime(o.UpdatedAt), o.ID, o.Version-1)
		if err != nil {
			return fmt.Errorf("update order: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?)`, o.ID).Scan(&exists); err != nil {
				return fmt.Errorf("find order: %w", err)
			}
			if !exists {
				return eventflow.Errorf(eventflow.ENOTFOUND, "order %s not found", o.ID)
			}
			return orders.ErrVersionConflict
		}
		return insertOutboxRecord(ctx, tx, e)
	})
	if err != nil {
		return err
	}
	s.db.notifyCommitted()
	return nil
}

const orderColumns = `id, user_id, status, currency, items, total, comment, version, created_at, updated_at`

// Order implements orders.Store.
func (s *Orders) Order(ctx context.Context, id string) (orders.Order, error) {
	row := s.db.read.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id)
	o, err := scanOrder(row)
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Order{}, eventflow.Errorf(eventflow.ENOTFOUND, "order %s not found", id)
	}
	return o, err
}

// Orders implements orders.Store.
func (s *Orders) Orders(ctx context.Context, f orders.Filter) ([]orders.Order, error) {
	query := `SELECT ` + orderColumns + ` FROM orders WHERE 1 = 1`
	var args []any
	if f.UserID != "" {
		query += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	if f.Before != "" {
		if !eventflow.ValidUUID(f.Before) {
			return nil, eventflow.FieldError("cursor", "is not a cursor this API returned")
		}
		query += ` AND id < ?`
		args = append(args, f.Before)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, noLimitIfZero(f.Limit))
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	defer rows.Close()
	list := []orders.Order{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, o)
	}
	return list, rows.Err()
}

func scanOrder(row interface{ Scan(...any) error }) (orders.Order, error) {
	var (
		o                    orders.Order
		items                string
		createdAt, updatedAt string
	)
	err := row.Scan(&o.ID, &o.UserID, &o.Status, &o.Currency, &items, &o.Total, &o.Comment, &o.Version, &createdAt, &updatedAt)
	if err != nil {
		return orders.Order{}, err
	}
	if err := json.Unmarshal([]byte(items), &o.Items); err != nil {
		return orders.Order{}, fmt.Errorf("decode items of order %s: %w", o.ID, err)
	}
	if o.Items == nil {
		o.Items = []orders.Item{}
	}
	if o.CreatedAt, err = parseTime(createdAt); err != nil {
		return orders.Order{}, err
	}
	if o.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return orders.Order{}, err
	}
	return o, nil
}

// IdempotencyRecord implements orders.Store.
func (s *Orders) IdempotencyRecord(ctx context.Context, key string, now time.Time) (*orders.IdempotencyRecord, error) {
	var (
		rec                  = orders.IdempotencyRecord{Key: key}
		response             string
		createdAt, expiresAt string
	)
	err := s.db.read.QueryRowContext(ctx, `
		SELECT request_hash, response, created_at, expires_at FROM idempotency_keys
		WHERE key = ? AND expires_at > ?`, key, formatTime(now)).
		Scan(&rec.RequestHash, &response, &createdAt, &expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	if err := json.Unmarshal([]byte(response), &rec.Order); err != nil {
		return nil, fmt.Errorf("decode idempotent response: %w", err)
	}
	rec.Order = normalized(rec.Order)
	if rec.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	if rec.ExpiresAt, err = parseTime(expiresAt); err != nil {
		return nil, err
	}
	return &rec, nil
}

// DeleteExpiredIdempotencyRecords implements orders.Store.
func (s *Orders) DeleteExpiredIdempotencyRecords(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= ?`, formatTime(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return res.RowsAffected()
}

// normalized returns o as the store returns orders: times in UTC to the
// microsecond, and items an empty list rather than none.
func normalized(o orders.Order) orders.Order {
	o.CreatedAt = o.CreatedAt.UTC().Truncate(time.Microsecond)
	o.UpdatedAt = o.UpdatedAt.UTC().Truncate(time.Microsecond)
	if o.Items == nil {
		o.Items = []orders.Item{}
	}
	return o
}

// noLimitIfZero turns a zero or negative limit into SQLite's "no limit".
func noLimitIfZero(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
