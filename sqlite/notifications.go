package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	moderncsqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
)

// Notifications is the notifications.Store on SQLite: subscriptions, the
// inbox of handled events, deliveries and shared secrets.
type Notifications struct {
	db *DB
}

var _ notifications.Store = (*Notifications)(nil)

// NewNotifications returns the notifications store of db.
func NewNotifications(db *DB) *Notifications { return &Notifications{db: db} }

// subscriptionColumns are the columns scanSubscription reads, in its order.
const subscriptionColumns = `id, user_id, channel, address, patterns, scope, filter, status, webhook_secret, version, created_at, updated_at`

// CreateSubscription implements notifications.Store.
func (s *Notifications) CreateSubscription(ctx context.Context, sub notifications.Subscription) error {
	patterns, key, err := encodePatterns(sub.Patterns)
	if err != nil {
		return err
	}
	return s.db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO subscriptions (id, user_id, channel, address, patterns, patterns_key, scope, filter,
			                           status, webhook_secret, version, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.UserID, sub.Chan, sub.Address, patterns, key, sub.Scope, sub.Filter,
			sub.Status, sub.WebhookSecret, sub.Version, formatTime(sub.CreatedAt), formatTime(sub.UpdatedAt))
		if isDuplicateSubscription(err) {
			return notifications.ErrDuplicateSubscription
		}
		if err != nil {
			return fmt.Errorf("insert subscription: %w", err)
		}
		return bumpSubscriptionsVersion(ctx, tx)
	})
}

// UpdateSubscription implements notifications.Store. It changes every column
// but id and created_at.
func (s *Notifications) UpdateSubscription(ctx context.Context, sub notifications.Subscription) error {
	patterns, key, err := encodePatterns(sub.Patterns)
	if err != nil {
		return err
	}
	return s.db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE subscriptions
			   SET user_id = ?, channel = ?, address = ?, patterns = ?, patterns_key = ?, scope = ?, filter = ?,
			       status = ?, webhook_secret = ?, version = ?, updated_at = ?
			 WHERE id = ? AND version = ?`,
			sub.UserID, sub.Chan, sub.Address, patterns, key, sub.Scope, sub.Filter,
			sub.Status, sub.WebhookSecret, sub.Version, formatTime(sub.UpdatedAt), sub.ID, sub.Version-1)
		if isDuplicateSubscription(err) {
			return notifications.ErrDuplicateSubscription
		}
		if err != nil {
			return fmt.Errorf("update subscription: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("update subscription: %w", err)
		}
		if n == 0 {
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = ?)`, sub.ID).Scan(&exists); err != nil {
				return fmt.Errorf("find subscription: %w", err)
			}
			if !exists {
				return subscriptionNotFound(sub.ID)
			}
			return notifications.ErrVersionConflict
		}
		return bumpSubscriptionsVersion(ctx, tx)
	})
}

// DeleteSubscription implements notifications.Store.
func (s *Notifications) DeleteSubscription(ctx context.Context, id string) error {
	return s.db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete subscription: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete subscription: %w", err)
		}
		if n == 0 {
			return subscriptionNotFound(id)
		}
		return bumpSubscriptionsVersion(ctx, tx)
	})
}

// bumpSubscriptionsVersion tells matchers, in tx, that subscriptions changed.
func bumpSubscriptionsVersion(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE subscriptions_version SET version = version + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("bump subscriptions version: %w", err)
	}
	return nil
}

// isDuplicateSubscription reports whether err is a violation of the unique
// index on (user_id, channel, address, patterns_key), and not of another
// constraint (a repeated id is SQLITE_CONSTRAINT_PRIMARYKEY).
func isDuplicateSubscription(err error) bool {
	var e *moderncsqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE &&
		strings.Contains(e.Error(), "subscriptions.patterns_key")
}

// Subscription implements notifications.Store.
func (s *Notifications) Subscription(ctx context.Context, id string) (notifications.Subscription, error) {
	row := s.db.read.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE id = ?`, id)
	sub, err := scanSubscription(row)
	if errors.Is(err, sql.ErrNoRows) {
		return notifications.Subscription{}, subscriptionNotFound(id)
	}
	if err != nil {
		return notifications.Subscription{}, fmt.Errorf("get subscription %s: %w", id, err)
	}
	return sub, nil
}

// Subscriptions implements notifications.Store. A Limit of zero or less
// means no limit; a Before that is not a UUID is an EINVALID error.
func (s *Notifications) Subscriptions(ctx context.Context, f notifications.SubscriptionFilter) ([]notifications.Subscription, error) {
	query := `SELECT ` + subscriptionColumns + ` FROM subscriptions WHERE 1 = 1`
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
	return s.subscriptions(ctx, s.db.read, query, args...)
}

// ActiveSubscriptions implements notifications.Store.
func (s *Notifications) ActiveSubscriptions(ctx context.Context) ([]notifications.Subscription, error) {
	return s.subscriptions(ctx, s.db.read,
		`SELECT `+subscriptionColumns+` FROM subscriptions WHERE status = 'active' ORDER BY id`)
}

// subscriptions runs a query of subscriptionColumns.
func (s *Notifications) subscriptions(ctx context.Context, q queryer, query string, args ...any) ([]notifications.Subscription, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	defer rows.Close()
	list := []notifications.Subscription{}
	for rows.Next() {
		sub, err := scanSubscription(rows)
		if err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		list = append(list, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return list, nil
}

// SubscriptionsVersion implements notifications.Store.
func (s *Notifications) SubscriptionsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.read.QueryRowContext(ctx, `SELECT version FROM subscriptions_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("get subscriptions version: %w", err)
	}
	return v, nil
}

// encodePatterns returns the patterns column (a JSON array, [] for none)
// and the uniqueness key: the distinct patterns, sorted, joined by commas
// (a pattern never holds a comma).
func encodePatterns(patterns []string) (string, string, error) {
	if patterns == nil {
		patterns = []string{}
	}
	b, err := json.Marshal(patterns)
	if err != nil {
		return "", "", fmt.Errorf("encode patterns: %w", err)
	}
	return string(b), strings.Join(slices.Compact(slices.Sorted(slices.Values(patterns))), ","), nil
}

func scanSubscription(row interface{ Scan(...any) error }) (notifications.Subscription, error) {
	var (
		sub                  notifications.Subscription
		patterns             string
		createdAt, updatedAt string
	)
	err := row.Scan(&sub.ID, &sub.UserID, &sub.Chan, &sub.Address, &patterns, &sub.Scope, &sub.Filter,
		&sub.Status, &sub.WebhookSecret, &sub.Version, &createdAt, &updatedAt)
	if err != nil {
		return notifications.Subscription{}, err
	}
	if err := json.Unmarshal([]byte(patterns), &sub.Patterns); err != nil {
		return notifications.Subscription{}, fmt.Errorf("decode patterns of subscription %s: %w", sub.ID, err)
	}
	if sub.Patterns == nil {
		sub.Patterns = []string{}
	}
	if sub.CreatedAt, err = parseTime(createdAt); err != nil {
		return notifications.Subscription{}, err
	}
	if sub.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return notifications.Subscription{}, err
	}
	return sub, nil
}

func subscriptionNotFound(id string) error {
	return eventflow.Errorf(eventflow.ENOTFOUND, "subscription %s not found", id)
}

// RecordEvent implements notifications.Store.
func (s *Notifications) RecordEvent(ctx context.Context, e event.Event, status notifications.InboxStatus, deliveries []notifications.Delivery) (bool, error) {
	var created bool
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		created, err = recordEvent(ctx, tx, e, status, deliveries)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", e.ID, err)
	}
	return created, nil
}

// RecordEvents implements notifications.Store: the records one after
// another, in one transaction.
func (s *Notifications) RecordEvents(ctx context.Context, records []notifications.EventRecord) ([]bool, error) {
	created := make([]bool, len(records))
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		for i, r := range records {
			var err error
			if created[i], err = recordEvent(ctx, tx, r.Event, r.Status, r.Deliveries); err != nil {
				return fmt.Errorf("record event %s: %w", r.Event.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d events: %w", len(records), err)
	}
	return created, nil
}

// recordEvent inserts e into the inbox and, if it was not there yet, its
// deliveries, in tx. It reports whether e was new.
func recordEvent(ctx context.Context, tx *sql.Tx, e event.Event, status notifications.InboxStatus, deliveries []notifications.Delivery) (bool, error) {
	res, err := tx.ExecContext(ctx, `
		INSERT INTO inbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data, status, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (event_id) DO NOTHING`,
		e.ID, e.Type, e.Source, e.Subject, formatTime(e.Time), e.DataSchema, e.Sequence, e.TraceParent,
		string(e.Data), status, formatTime(time.Now()))
	if err != nil {
		return false, fmt.Errorf("insert inbox record: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert inbox record: %w", err)
	}
	if n == 0 {
		return false, nil // handled before: the deliveries exist already
	}
	if len(deliveries) == 0 {
		return true, nil
	}
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO deliveries (id, event_id, event_type, subject, subscription_id, user_id, channel, address,
		                        status, attempts, last_error, next_attempt_at, created_at, updated_at, sent_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return false, fmt.Errorf("insert deliveries: %w", err)
	}
	defer stmt.Close()
	for _, d := range deliveries {
		var sentAt *string
		if d.SentAt != nil {
			t := formatTime(*d.SentAt)
			sentAt = &t
		}
		_, err := stmt.ExecContext(ctx, d.ID, d.EventID, d.EventType, d.Subject, d.SubscriptionID, d.UserID,
			d.Channel, d.Address, d.Status, d.Attempts, d.LastError, formatTime(d.NextAttemptAt),
			formatTime(d.CreatedAt), formatTime(d.UpdatedAt), sentAt)
		if err != nil {
			return false, fmt.Errorf("insert delivery %s: %w", d.ID, err)
		}
	}
	return true, nil
}

// deliveryColumns are the columns scanDelivery reads, in its order.
const deliveryColumns = `id, event_id, event_type, subject, subscription_id, user_id, channel, address,
	status, attempts, last_error, next_attempt_at, created_at, updated_at, sent_at`

// PendingSubjects implements notifications.Store: one statement, each key
// looked up in the pending-only deliveries_order index.
func (s *Notifications) PendingSubjects(ctx context.Context, keys []notifications.SubjectKey) ([]notifications.SubjectKey, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.SubscriptionID, k.Subject}
	}
	list, err := json.Marshal(pairs)
	if err != nil {
		return nil, fmt.Errorf("pending subjects: %w", err)
	}
	rows, err := s.db.read.QueryContext(ctx, pendingSubjectsQuery, string(list))
	if err != nil {
		return nil, fmt.Errorf("pending subjects: %w", err)
	}
	defer rows.Close()
	var pending []notifications.SubjectKey
	for rows.Next() {
		var k notifications.SubjectKey
		if err := rows.Scan(&k.SubscriptionID, &k.Subject); err != nil {
			return nil, fmt.Errorf("pending subjects: %w", err)
		}
		pending = append(pending, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending subjects: %w", err)
	}
	return pending, nil
}

// pendingSubjectsQuery takes the keys as one JSON array of
// [subscription id, subject] pairs.
const pendingSubjectsQuery = `
	SELECT k.value ->> 0, k.value ->> 1 FROM json_each(?) k
	 WHERE EXISTS (
	       SELECT 1 FROM deliveries d INDEXED BY deliveries_order
	        WHERE d.subscription_id = k.value ->> 0 AND d.subject = k.value ->> 1
	          AND d.status = 'pending')`

// claimQuery picks up to limit due deliveries, longest due first, and pushes
// their next attempt to the end of the lease. It reads the pending-only
// deliveries_due index, so a claim costs the rows it claims however many
// sent deliveries the table keeps: ordered by seq, SQLite chose to walk the
// whole table in seq order instead, and claims slowed with every delivery
// ever made (86 ms each at 330,000 deliveries). INDEXED BY keeps it that
// way whatever the planner's statistics say.
const claimQuery = `
	UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ?
	 WHERE seq IN (
	       SELECT d.seq FROM deliveries d INDEXED BY deliveries_due
	        WHERE d.status = 'pending' AND d.next_attempt_at <= ?
	          AND NOT EXISTS (
	              SELECT 1 FROM deliveries e
	               WHERE e.subscription_id = d.subscription_id AND e.subject = d.subject
	                 AND e.status = 'pending' AND e.seq < d.seq)
	        ORDER BY d.next_attempt_at, d.seq
	        LIMIT ?)
	RETURNING seq`

// ClaimDeliveries implements notifications.Store. SQLite runs one write
// transaction at a time, so two claims never pick the same delivery. A
// claimed delivery stays pending, so it keeps blocking the later deliveries
// of its subscription and subject until it is sent or dead. A limit of zero
// or less claims nothing; a lease under a microsecond is an error.
func (s *Notifications) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]notifications.Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	if lease < time.Microsecond {
		return nil, fmt.Errorf("claim deliveries: lease %s is shorter than a microsecond", lease)
	}
	var claimed []notifications.Delivery
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, claimQuery,
			formatTime(now.Add(lease)), formatTime(now), formatTime(now), limit)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		var seqs []any
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return fmt.Errorf("claim deliveries: %w", err)
			}
			seqs = append(seqs, seq)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		if len(seqs) == 0 {
			return nil
		}
		// RETURNING gives the rows in no particular order; read them again
		// in the order they were created.
		claimed, err = s.deliveries(ctx, tx,
			`SELECT `+deliveryColumns+` FROM deliveries WHERE seq IN (`+placeholders(len(seqs))+`) ORDER BY seq`, seqs...)
		return err
	})
	if err != nil || len(claimed) == 0 {
		return nil, err
	}
	return s.jobs(ctx, claimed)
}

// jobs adds to claimed deliveries their events and subscriptions. Events
// never change; a subscription deleted meanwhile leaves the zero value.
func (s *Notifications) jobs(ctx context.Context, claimed []notifications.Delivery) ([]notifications.Job, error) {
	var eventIDs, subIDs []any
	for _, d := range claimed {
		eventIDs = append(eventIDs, d.EventID)
		subIDs = append(subIDs, d.SubscriptionID)
	}
	rows, err := s.db.read.QueryContext(ctx, `
		SELECT event_id, type, source, subject, time, dataschema, sequence, traceparent, data
		  FROM inbox WHERE event_id IN (`+placeholders(len(eventIDs))+`)`, eventIDs...)
	if err != nil {
		return nil, fmt.Errorf("read claimed events: %w", err)
	}
	defer rows.Close()
	events := map[string]event.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read claimed events: %w", err)
		}
		events[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read claimed events: %w", err)
	}
	list, err := s.subscriptions(ctx, s.db.read,
		`SELECT `+subscriptionColumns+` FROM subscriptions WHERE id IN (`+placeholders(len(subIDs))+`)`, subIDs...)
	if err != nil {
		return nil, err
	}
	subs := map[string]notifications.Subscription{}
	for _, sub := range list {
		subs[sub.ID] = sub
	}
	jobs := make([]notifications.Job, len(claimed))
	for i, d := range claimed {
		jobs[i] = notifications.Job{Delivery: d, Event: events[d.EventID], Subscription: subs[d.SubscriptionID]}
	}
	return jobs, nil
}

func scanEvent(row interface{ Scan(...any) error }) (event.Event, error) {
	var (
		e       event.Event
		t, data string
	)
	err := row.Scan(&e.ID, &e.Type, &e.Source, &e.Subject, &t, &e.DataSchema, &e.Sequence, &e.TraceParent, &data)
	if err != nil {
		return event.Event{}, err
	}
	e.Data = []byte(data)
	if e.Time, err = parseTime(t); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// MarkSent implements notifications.Store. It records the send whatever the
// delivery's status: a message that went out went out.
func (s *Notifications) MarkSent(ctx context.Context, id string, at time.Time) error {
	return s.changeDelivery(ctx, id, `
		UPDATE deliveries SET status = 'sent', sent_at = ?, updated_at = ?, last_error = ''
		 WHERE id = ?`, formatTime(at), formatTime(at), id)
}

// MarkSentBatch implements notifications.Store in one transaction.
func (s *Notifications) MarkSentBatch(ctx context.Context, sent []notifications.SentMark) error {
	if len(sent) == 0 {
		return nil
	}
	return s.db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
			UPDATE deliveries SET status = 'sent', sent_at = ?, updated_at = ?, last_error = ''
			 WHERE id = ?`)
		if err != nil {
			return fmt.Errorf("mark deliveries sent: %w", err)
		}
		defer stmt.Close()
		for _, m := range sent {
			at := formatTime(m.At)
			if _, err := stmt.ExecContext(ctx, at, at, m.ID); err != nil {
				return fmt.Errorf("mark delivery %s sent: %w", m.ID, err)
			}
		}
		return nil
	})
}

// MarkFailed implements notifications.Store. Only a pending delivery
// changes: a worker whose lease ran out, and whose delivery another worker
// has sent meanwhile, does not undo that.
func (s *Notifications) MarkFailed(ctx context.Context, id string, errText string, next time.Time, dead bool) error {
	status := notifications.DeliveryPending
	if dead {
		status = notifications.DeliveryDead
	}
	return s.changeDelivery(ctx, id, `
		UPDATE deliveries SET status = ?, last_error = ?, next_attempt_at = ?, updated_at = ?
		 WHERE id = ? AND status = 'pending'`,
		status, errText, formatTime(next), formatTime(time.Now()), id)
}

// changeDelivery runs an UPDATE of the delivery id, and returns an
// ENOTFOUND error if there is no such delivery.
func (s *Notifications) changeDelivery(ctx context.Context, id, query string, args ...any) error {
	return s.db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("update delivery %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("update delivery %s: %w", id, err)
		}
		if n > 0 {
			return nil
		}
		return deliveryExists(ctx, tx, id) // or the update's condition left it as it was
	})
}

// deliveryExists returns an ENOTFOUND error if there is no delivery id.
func deliveryExists(ctx context.Context, tx *sql.Tx, id string) error {
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = ?)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("find delivery %s: %w", id, err)
	}
	if !exists {
		return deliveryNotFound(id)
	}
	return nil
}

// Delivery implements notifications.Store.
func (s *Notifications) Delivery(ctx context.Context, id string) (notifications.Delivery, error) {
	list, err := s.deliveries(ctx, s.db.read, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = ?`, id)
	if err != nil {
		return notifications.Delivery{}, err
	}
	if len(list) == 0 {
		return notifications.Delivery{}, deliveryNotFound(id)
	}
	return list[0], nil
}

// Deliveries implements notifications.Store. A Limit of zero or less means
// no limit; a Before or a SubscriptionID that is not a UUID, or a Status
// that is none of pending, sent and dead, is an EINVALID error.
func (s *Notifications) Deliveries(ctx context.Context, f notifications.DeliveryFilter) ([]notifications.Delivery, error) {
	query, args, err := deliveriesQuery(f)
	if err != nil {
		return nil, err
	}
	return s.deliveries(ctx, s.db.read, query, args...)
}

// deliveriesQuery is the query of a page of deliveries that f asks for, or
// the EINVALID error of a filter it cannot take. It checks f itself, since
// it writes the status into the query.
func deliveriesQuery(f notifications.DeliveryFilter) (string, []any, error) {
	switch {
	case f.SubscriptionID != "" && !eventflow.ValidUUID(f.SubscriptionID):
		return "", nil, eventflow.FieldError("subscription_id", "must be a subscription id (a UUID)")
	case f.Status != "" && !f.Status.Known():
		return "", nil, eventflow.FieldError("status", "must be pending, sent or dead")
	case f.Before != "" && !eventflow.ValidUUID(f.Before):
		return "", nil, eventflow.FieldError("cursor", "is not a cursor this API returned")
	}
	query := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE 1 = 1`
	var args []any
	for _, c := range []struct{ column, value string }{
		{"event_id", f.EventID},
		{"subscription_id", f.SubscriptionID},
		{"user_id", f.UserID},
	} {
		if c.value != "" {
			query += ` AND ` + c.column + ` = ?`
			args = append(args, c.value)
		}
	}
	if f.Status != "" {
		// Written into the query rather than bound, so that SQLite can
		// plan it with the partial index of that status.
		query += ` AND status = '` + string(f.Status) + `'`
	}
	if f.Before != "" {
		query += ` AND id < ?`
		args = append(args, f.Before)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, noLimitIfZero(f.Limit))
	return query, args, nil
}

// RetryDelivery implements notifications.Store. The retried delivery starts
// afresh: no attempts and no last error.
func (s *Notifications) RetryDelivery(ctx context.Context, id string, now time.Time) (notifications.Delivery, error) {
	var d notifications.Delivery
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		list, err := s.deliveries(ctx, tx, `
			UPDATE deliveries SET status = 'pending', attempts = 0, last_error = '', next_attempt_at = ?, updated_at = ?
			 WHERE id = ? AND status = 'dead'
			RETURNING `+deliveryColumns, formatTime(now), formatTime(now), id)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			if err := deliveryExists(ctx, tx, id); err != nil {
				return err
			}
			return notifications.ErrNotDead
		}
		d = list[0]
		return nil
	})
	return d, err
}

// DeliveryCounts implements notifications.Store. Both counts read a
// partial index of their status, never the sent deliveries.
func (s *Notifications) DeliveryCounts(ctx context.Context) (map[notifications.DeliveryStatus]int64, error) {
	var pending, dead int64
	if err := s.db.read.QueryRowContext(ctx, deliveryCountsQuery).Scan(&pending, &dead); err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	return map[notifications.DeliveryStatus]int64{
		notifications.DeliveryPending: pending,
		notifications.DeliveryDead:    dead,
	}, nil
}

const deliveryCountsQuery = `
	SELECT (SELECT count(*) FROM deliveries INDEXED BY deliveries_due WHERE status = 'pending'),
	       (SELECT count(*) FROM deliveries INDEXED BY deliveries_dead WHERE status = 'dead')`

// deliveries runs a query of deliveryColumns.
func (s *Notifications) deliveries(ctx context.Context, q queryer, query string, args ...any) ([]notifications.Delivery, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	defer rows.Close()
	list := []notifications.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("read deliveries: %w", err)
		}
		list = append(list, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return list, nil
}

func scanDelivery(row interface{ Scan(...any) error }) (notifications.Delivery, error) {
	var (
		d                                   notifications.Delivery
		nextAttemptAt, createdAt, updatedAt string
		sentAt                              sql.NullString
	)
	err := row.Scan(&d.ID, &d.EventID, &d.EventType, &d.Subject, &d.SubscriptionID, &d.UserID, &d.Channel,
		&d.Address, &d.Status, &d.Attempts, &d.LastError, &nextAttemptAt, &createdAt, &updatedAt, &sentAt)
	if err != nil {
		return notifications.Delivery{}, err
	}
	if d.NextAttemptAt, err = parseTime(nextAttemptAt); err != nil {
		return notifications.Delivery{}, err
	}
	if d.CreatedAt, err = parseTime(createdAt); err != nil {
		return notifications.Delivery{}, err
	}
	if d.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return notifications.Delivery{}, err
	}
	if sentAt.Valid {
		t, err := parseTime(sentAt.String)
		if err != nil {
			return notifications.Delivery{}, err
		}
		d.SentAt = &t
	}
	return d, nil
}

func deliveryNotFound(id string) error {
	return eventflow.Errorf(eventflow.ENOTFOUND, "delivery %s not found", id)
}

// Secret implements notifications.Store.
func (s *Notifications) Secret(ctx context.Context, name string, newValue []byte) ([]byte, error) {
	var value []byte
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			name, newValue); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&value)
	})
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return value, nil
}

// queryer is a pool or a transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// placeholders returns n comma-separated "?".
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
