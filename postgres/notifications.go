package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
)

// Notifications keeps subscriptions, the inbox of handled events,
// deliveries and shared secrets.
//
// Ids are found in canonical form only (eventflow.ValidUUID), as orders
// are: any other spelling is not found, as it would not be in a store that
// keeps ids as text.
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
	return s.changeSubscriptions(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO subscriptions (id, user_id, channel, address, patterns, patterns_key, scope, filter,
			                           status, webhook_secret, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			sub.ID, sub.UserID, sub.Chan, sub.Address, patterns, key, sub.Scope, sub.Filter,
			sub.Status, sub.WebhookSecret, sub.Version, dbTime(sub.CreatedAt), dbTime(sub.UpdatedAt))
		if err != nil {
			return fmt.Errorf("insert subscription %s: %w", sub.ID, err)
		}
		return nil
	})
}

// UpdateSubscription implements notifications.Store. It changes every column
// but id and created_at.
func (s *Notifications) UpdateSubscription(ctx context.Context, sub notifications.Subscription) error {
	if !eventflow.ValidUUID(sub.ID) {
		return subscriptionNotFound(sub.ID)
	}
	patterns, key, err := encodePatterns(sub.Patterns)
	if err != nil {
		return err
	}
	return s.changeSubscriptions(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE subscriptions
			   SET user_id = $3, channel = $4, address = $5, patterns = $6, patterns_key = $7, scope = $8,
			       filter = $9, status = $10, webhook_secret = $11, version = $12, updated_at = $13
			 WHERE id = $1 AND version = $2`,
			sub.ID, sub.Version-1, sub.UserID, sub.Chan, sub.Address, patterns, key, sub.Scope,
			sub.Filter, sub.Status, sub.WebhookSecret, sub.Version, dbTime(sub.UpdatedAt))
		if err != nil {
			return fmt.Errorf("update subscription %s: %w", sub.ID, err)
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = $1)`, sub.ID).Scan(&exists); err != nil {
			return fmt.Errorf("look up subscription %s: %w", sub.ID, err)
		}
		if !exists {
			return subscriptionNotFound(sub.ID)
		}
		return notifications.ErrVersionConflict
	})
}

// DeleteSubscription implements notifications.Store.
func (s *Notifications) DeleteSubscription(ctx context.Context, id string) error {
	if !eventflow.ValidUUID(id) {
		return subscriptionNotFound(id)
	}
	return s.changeSubscriptions(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM subscriptions WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete subscription %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return subscriptionNotFound(id)
		}
		return nil
	})
}

// changeSubscriptions runs change in a transaction that also bumps the
// subscriptions version, and turns a violation of subscriptions_unique into
// ErrDuplicateSubscription.
func (s *Notifications) changeSubscriptions(ctx context.Context, change func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		if err := change(tx); err != nil {
			return err
		}
		// The version row is locked until commit, so changes to
		// subscriptions commit one at a time, each with a greater version.
		if _, err := tx.Exec(ctx, `UPDATE subscriptions_version SET version = version + 1 WHERE id = 1`); err != nil {
			return fmt.Errorf("bump subscriptions version: %w", err)
		}
		return nil
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "subscriptions_unique" { // unique_violation
		return notifications.ErrDuplicateSubscription
	}
	return err
}

// Subscription implements notifications.Store.
func (s *Notifications) Subscription(ctx context.Context, id string) (notifications.Subscription, error) {
	if !eventflow.ValidUUID(id) {
		return notifications.Subscription{}, subscriptionNotFound(id)
	}
	list, err := s.subscriptions(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE id = $1`, id)
	if err != nil {
		return notifications.Subscription{}, err
	}
	if len(list) == 0 {
		return notifications.Subscription{}, subscriptionNotFound(id)
	}
	return list[0], nil
}

// Subscriptions implements notifications.Store. A Limit of zero or less
// means no limit; a Before that is not a UUID is an EINVALID error.
func (s *Notifications) Subscriptions(ctx context.Context, f notifications.SubscriptionFilter) ([]notifications.Subscription, error) {
	if f.Before != "" && !eventflow.ValidUUID(f.Before) {
		return nil, eventflow.FieldError("cursor", "is not a cursor this API returned")
	}
	var q listQuery
	q.where("user_id", f.UserID)
	q.before(f.Before)
	query := q.sql(`SELECT `+subscriptionColumns+` FROM subscriptions`, f.Limit)
	return s.subscriptions(ctx, query, q.args...)
}

// ActiveSubscriptions implements notifications.Store.
func (s *Notifications) ActiveSubscriptions(ctx context.Context) ([]notifications.Subscription, error) {
	return s.subscriptions(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE status = 'active' ORDER BY id`)
}

// subscriptions runs a query of subscriptionColumns.
func (s *Notifications) subscriptions(ctx context.Context, query string, args ...any) ([]notifications.Subscription, error) {
	rows, err := s.db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notifications.Subscription, error) { return scanSubscription(r) })
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	return list, nil
}

// SubscriptionsVersion implements notifications.Store.
func (s *Notifications) SubscriptionsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.pool.QueryRow(ctx, `SELECT version FROM subscriptions_version WHERE id = 1`).Scan(&v); err != nil {
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

// scanSubscription reads the subscriptionColumns of one row.
func scanSubscription(row pgx.Row) (notifications.Subscription, error) {
	var (
		sub      notifications.Subscription
		patterns []byte
	)
	err := row.Scan(&sub.ID, &sub.UserID, &sub.Chan, &sub.Address, &patterns, &sub.Scope, &sub.Filter,
		&sub.Status, &sub.WebhookSecret, &sub.Version, &sub.CreatedAt, &sub.UpdatedAt)
	if err != nil {
		return notifications.Subscription{}, err
	}
	if err := json.Unmarshal(patterns, &sub.Patterns); err != nil {
		return notifications.Subscription{}, fmt.Errorf("decode patterns of subscription %s: %w", sub.ID, err)
	}
	if sub.Patterns == nil {
		sub.Patterns = []string{}
	}
	sub.CreatedAt, sub.UpdatedAt = sub.CreatedAt.UTC(), sub.UpdatedAt.UTC()
	return sub, nil
}

func subscriptionNotFound(id string) error {
	return eventflow.Errorf(eventflow.ENOTFOUND, "subscription %s not found", id)
}

// RecordEvent implements notifications.Store. Two notifiers recording the
// same event at once cannot both create deliveries: the second one's inbox
// INSERT waits for the first's row, then inserts nothing.
func (s *Notifications) RecordEvent(ctx context.Context, e event.Event, status notifications.InboxStatus, deliveries []notifications.Delivery) (bool, error) {
	created := false
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO inbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (event_id) DO NOTHING`,
			e.ID, e.Type, e.Source, e.Subject, dbTime(e.Time), e.DataSchema, e.Sequence, e.TraceParent,
			string(e.Data), status)
		if err != nil {
			return fmt.Errorf("insert inbox record: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // handled before: the deliveries exist already
		}
		created = true
		if len(deliveries) == 0 {
			return nil
		}
		// One round trip for all the deliveries, however many.
		var batch pgx.Batch
		for _, d := range deliveries {
			var sentAt *time.Time
			if d.SentAt != nil {
				t := dbTime(*d.SentAt)
				sentAt = &t
			}
			batch.Queue(`
				INSERT INTO deliveries (id, event_id, event_type, subject, subscription_id, user_id, channel, address,
				                        status, attempts, last_error, next_attempt_at, created_at, updated_at, sent_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
				d.ID, d.EventID, d.EventType, d.Subject, d.SubscriptionID, d.UserID, d.Channel, d.Address,
				d.Status, d.Attempts, d.LastError, dbTime(d.NextAttemptAt), dbTime(d.CreatedAt), dbTime(d.UpdatedAt), sentAt)
		}
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("record event %s: %w", e.ID, err)
		if refusedData(err) {
			// The same event would be refused again on every retry and hold
			// its partition forever: let the consumer set it aside.
			return false, event.Unprocessable(err)
		}
		return false, err
	}
	return created, nil
}

// RecordEvents implements notifications.Store with a constant number of
// round trips whatever the batch size: one multi-row inbox INSERT that
// returns the events it inserted, and one COPY of the deliveries of those.
// Rows go in sorted by event id, so two notifiers recording overlapping
// batches (during a rebalance) lock inbox rows in the same order and wait
// for each other instead of deadlocking.
func (s *Notifications) RecordEvents(ctx context.Context, records []notifications.EventRecord) ([]bool, error) {
	created := make([]bool, len(records))
	if len(records) == 0 {
		return created, nil
	}
	order := make([]int, len(records))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(records[a].Event.ID, records[b].Event.ID) })
	var (
		ids, types, sources, subjects, schemas, traces, data, statuses []string
		times                                                          []time.Time
		seqs                                                           []int64
	)
	for _, i := range order {
		e := records[i].Event
		ids, types, sources, subjects = append(ids, e.ID), append(types, e.Type), append(sources, e.Source), append(subjects, e.Subject)
		times, schemas, seqs = append(times, dbTime(e.Time)), append(schemas, e.DataSchema), append(seqs, e.Sequence)
		traces, data, statuses = append(traces, e.TraceParent), append(data, string(e.Data)), append(statuses, string(records[i].Status))
	}
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		// The data goes as text and is cast row by row, as the single-row
		// INSERT does, so that json refuses exactly what it refuses there.
		rows, err := tx.Query(ctx, `
			INSERT INTO inbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data, status)
			SELECT u.event_id, u.type, u.source, u.subject, u.time, u.dataschema, u.sequence, u.traceparent, u.data::json, u.status
			  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::bigint[],
			              $8::text[], $9::text[], $10::text[])
			       WITH ORDINALITY AS u(event_id, type, source, subject, time, dataschema, sequence, traceparent, data, status, n)
			 ORDER BY u.n
			ON CONFLICT (event_id) DO NOTHING
			RETURNING event_id`,
			ids, types, sources, subjects, times, schemas, seqs, traces, data, statuses)
		if err != nil {
			return fmt.Errorf("insert inbox records: %w", err)
		}
		inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("insert inbox records: %w", err)
		}
		fresh := make(map[string]bool, len(inserted))
		for _, id := range inserted {
			fresh[id] = true
		}
		var copyRows [][]any
		for i, r := range records {
			// Only the first record of an event inserted now is new: a
			// second one in the same batch is a redelivery.
			if !fresh[r.Event.ID] {
				continue
			}
			delete(fresh, r.Event.ID)
			created[i] = true
			for _, d := range r.Deliveries {
				var sentAt *time.Time
				if d.SentAt != nil {
					t := dbTime(*d.SentAt)
					sentAt = &t
				}
				copyRows = append(copyRows, []any{d.ID, d.EventID, d.EventType, d.Subject, d.SubscriptionID, d.UserID,
					string(d.Channel), d.Address, string(d.Status), int32(d.Attempts), d.LastError, dbTime(d.NextAttemptAt),
					dbTime(d.CreatedAt), dbTime(d.UpdatedAt), sentAt})
			}
		}
		if len(copyRows) == 0 {
			return nil
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"deliveries"}, []string{"id", "event_id", "event_type", "subject",
			"subscription_id", "user_id", "channel", "address", "status", "attempts", "last_error", "next_attempt_at",
			"created_at", "updated_at", "sent_at"}, pgx.CopyFromRows(copyRows))
		if err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("record %d events: %w", len(records), err)
		if refusedData(err) {
			// Some event in the batch would be refused on every retry: the
			// caller records them one by one to find it.
			return nil, event.Unprocessable(err)
		}
		return nil, err
	}
	return created, nil
}

// refusedData reports whether PostgreSQL refused err's statement for the
// values in it, not for its own state: a data exception (SQLSTATE class 22:
// a NUL byte or invalid UTF-8 in text, a value out of range) or a program
// limit (class 54: an index entry over its size). event.Event.Validate
// keeps out the ones known; this catches any that slip past it.
func refusedData(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "54"))
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
	subs := make([]string, len(keys))
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subs[i], subjects[i] = k.SubscriptionID, k.Subject
	}
	rows, err := s.db.pool.Query(ctx, `
		SELECT k.sub, k.subject FROM unnest($1::text[], $2::text[]) AS k(sub, subject)
		 WHERE EXISTS (
		       SELECT 1 FROM deliveries d
		        WHERE d.subscription_id = k.sub::uuid AND d.subject = k.subject
		          AND d.status = 'pending')`, subs, subjects)
	if err != nil {
		return nil, fmt.Errorf("pending subjects: %w", err)
	}
	pending, err := pgx.CollectRows(rows, pgx.RowToStructByPos[notifications.SubjectKey])
	if err != nil {
		return nil, fmt.Errorf("pending subjects: %w", err)
	}
	return pending, nil
}

// ClaimDeliveries implements notifications.Store, in one statement that
// several notifiers may run at once. Each locks the rows it picks and skips
// the rows others have locked; a row another claim updated since this one's
// snapshot is checked again as it is now, and, its next attempt being in the
// future, left out. A claimed delivery stays pending, so it keeps blocking
// the later deliveries of its subscription and subject until it is sent or
// dead: two of them are never out at once. A limit of zero or less claims
// nothing; a lease under a microsecond is an error.
//
// The cost of a claim is kept to the rows it claims, however long the
// activity log: the due deliveries are read in the order of the pending-only
// deliveries_due index (longest due first), so the scan stops after limit
// rows and never passes over sent ones or ones claimed and in flight (due
// in the future); and the UPDATE finds the picked rows by primary key
// rather than joining, which the planner would do by reading the table.
func (s *Notifications) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]notifications.Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	if lease < time.Microsecond {
		return nil, fmt.Errorf("claim deliveries: lease %s is shorter than a microsecond", lease)
	}
	now = dbTime(now)
	claimed, err := s.deliveries(ctx, `
		WITH due AS MATERIALIZED (
		    SELECT d.seq FROM deliveries d
		     WHERE d.status = 'pending' AND d.next_attempt_at <= $1
		       AND NOT EXISTS (
		           SELECT 1 FROM deliveries e
		            WHERE e.subscription_id = d.subscription_id AND e.subject = d.subject
		              AND e.status = 'pending' AND e.seq < d.seq)
		     ORDER BY d.next_attempt_at
		     LIMIT $3
		       FOR UPDATE SKIP LOCKED
		), claimed AS (
		    UPDATE deliveries d SET attempts = d.attempts + 1, next_attempt_at = $2, updated_at = $1
		     WHERE d.seq = ANY (ARRAY(SELECT seq FROM due))
		    RETURNING d.*
		)
		SELECT `+deliveryColumns+` FROM claimed ORDER BY seq`,
		now, now.Add(lease), limit)
	if err != nil || len(claimed) == 0 {
		return nil, err
	}
	return s.jobs(ctx, claimed)
}

// jobs adds to claimed deliveries their events and subscriptions, in one
// round trip. Events never change; a subscription deleted meanwhile leaves
// the zero value.
func (s *Notifications) jobs(ctx context.Context, claimed []notifications.Delivery) ([]notifications.Job, error) {
	var eventIDs, subIDs []string
	for _, d := range claimed {
		eventIDs = append(eventIDs, d.EventID)
		subIDs = append(subIDs, d.SubscriptionID)
	}
	events := map[string]event.Event{}
	subs := map[string]notifications.Subscription{}
	var batch pgx.Batch
	batch.Queue(`
		SELECT event_id, type, source, subject, time, dataschema, sequence, traceparent, data
		  FROM inbox WHERE event_id = ANY($1)`, eventIDs).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				e, err := scanEvent(rows)
				if err != nil {
					return fmt.Errorf("read claimed events: %w", err)
				}
				events[e.ID] = e
			}
			return rows.Err()
		})
	batch.Queue(`SELECT `+subscriptionColumns+` FROM subscriptions WHERE id = ANY($1::uuid[])`, subIDs).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				sub, err := scanSubscription(rows)
				if err != nil {
					return fmt.Errorf("read subscriptions of claimed deliveries: %w", err)
				}
				subs[sub.ID] = sub
			}
			return rows.Err()
		})
	if err := s.db.pool.SendBatch(ctx, &batch).Close(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	jobs := make([]notifications.Job, len(claimed))
	for i, d := range claimed {
		jobs[i] = notifications.Job{Delivery: d, Event: events[d.EventID], Subscription: subs[d.SubscriptionID]}
	}
	return jobs, nil
}

// scanEvent reads an inbox row, in the column order of jobs.
func scanEvent(row pgx.Row) (event.Event, error) {
	var (
		e    event.Event
		data []byte
	)
	err := row.Scan(&e.ID, &e.Type, &e.Source, &e.Subject, &e.Time, &e.DataSchema, &e.Sequence, &e.TraceParent, &data)
	if err != nil {
		return event.Event{}, err
	}
	e.Time, e.Data = e.Time.UTC(), data
	return e, nil
}

// MarkSent implements notifications.Store. It records the send whatever the
// delivery's status: a message that went out went out.
func (s *Notifications) MarkSent(ctx context.Context, id string, at time.Time) error {
	at = dbTime(at)
	return s.changeDelivery(ctx, id, `
		UPDATE deliveries SET status = 'sent', sent_at = $2, updated_at = $2, last_error = ''
		 WHERE id = $1`, at)
}

// MarkSentBatch implements notifications.Store in one UPDATE joined to the
// ids and times, so each delivery keeps the time its own message was
// accepted. Ids that are not UUIDs cannot name a delivery and are skipped.
func (s *Notifications) MarkSentBatch(ctx context.Context, sent []notifications.SentMark) error {
	ids := make([]string, 0, len(sent))
	times := make([]time.Time, 0, len(sent))
	for _, m := range sent {
		if eventflow.ValidUUID(m.ID) {
			ids, times = append(ids, m.ID), append(times, dbTime(m.At))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.db.pool.Exec(ctx, `
		UPDATE deliveries d SET status = 'sent', sent_at = m.at, updated_at = m.at, last_error = ''
		  FROM unnest($1::uuid[], $2::timestamptz[]) AS m(id, at)
		 WHERE d.id = m.id`, ids, times)
	if err != nil {
		return fmt.Errorf("mark %d deliveries sent: %w", len(ids), err)
	}
	return nil
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
		UPDATE deliveries SET status = $2, last_error = $3, next_attempt_at = $4, updated_at = $5
		 WHERE id = $1 AND status = 'pending'`,
		status, errText, dbTime(next), dbTime(time.Now()))
}

// changeDelivery runs an UPDATE of the delivery $1, with args from $2 on,
// and returns an ENOTFOUND error if there is no such delivery.
func (s *Notifications) changeDelivery(ctx context.Context, id, query string, args ...any) error {
	if !eventflow.ValidUUID(id) {
		return deliveryNotFound(id)
	}
	tag, err := s.db.pool.Exec(ctx, query, append([]any{id}, args...)...)
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", id, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if _, err := s.Delivery(ctx, id); err != nil {
		return err
	}
	return nil // the update's condition left the delivery as it was
}

// Delivery implements notifications.Store.
func (s *Notifications) Delivery(ctx context.Context, id string) (notifications.Delivery, error) {
	if !eventflow.ValidUUID(id) {
		return notifications.Delivery{}, deliveryNotFound(id)
	}
	list, err := s.deliveries(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = $1`, id)
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
	switch {
	case f.SubscriptionID != "" && !eventflow.ValidUUID(f.SubscriptionID):
		return nil, eventflow.FieldError("subscription_id", "must be a subscription id (a UUID)")
	case f.Before != "" && !eventflow.ValidUUID(f.Before):
		return nil, eventflow.FieldError("cursor", "is not a cursor this API returned")
	case f.Status != "" && !f.Status.Known():
		return nil, eventflow.FieldError("status", "must be pending, sent or dead")
	}
	var q listQuery
	q.where("event_id", f.EventID)
	q.where("subscription_id", f.SubscriptionID)
	q.where("user_id", f.UserID)
	if f.Status != "" {
		// Written into the query rather than bound, so that every plan of
		// it, generic ones included, can use the partial index of that
		// status.
		q.conds = append(q.conds, "status = '"+string(f.Status)+"'")
	}
	q.before(f.Before)
	query := q.sql(`SELECT `+deliveryColumns+` FROM deliveries`, f.Limit)
	return s.deliveries(ctx, query, q.args...)
}

// RetryDelivery implements notifications.Store. The retried delivery starts
// afresh: no attempts and no last error.
func (s *Notifications) RetryDelivery(ctx context.Context, id string, now time.Time) (notifications.Delivery, error) {
	if !eventflow.ValidUUID(id) {
		return notifications.Delivery{}, deliveryNotFound(id)
	}
	list, err := s.deliveries(ctx, `
		UPDATE deliveries SET status = 'pending', attempts = 0, last_error = '', next_attempt_at = $2, updated_at = $2
		 WHERE id = $1 AND status = 'dead'
		RETURNING `+deliveryColumns, id, dbTime(now))
	if err != nil {
		return notifications.Delivery{}, err
	}
	if len(list) == 0 {
		if _, err := s.Delivery(ctx, id); err != nil {
			return notifications.Delivery{}, err
		}
		return notifications.Delivery{}, notifications.ErrNotDead
	}
	return list[0], nil
}

// DeliveryCounts implements notifications.Store. Each count reads the
// partial index of its status (deliveries_due, deliveries_dead), never the
// sent deliveries.
func (s *Notifications) DeliveryCounts(ctx context.Context) (map[notifications.DeliveryStatus]int64, error) {
	var pending, dead int64
	err := s.db.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM deliveries WHERE status = 'pending'),
		       (SELECT count(*) FROM deliveries WHERE status = 'dead')`).Scan(&pending, &dead)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	return map[notifications.DeliveryStatus]int64{
		notifications.DeliveryPending: pending,
		notifications.DeliveryDead:    dead,
	}, nil
}

// deliveries runs a query of deliveryColumns.
func (s *Notifications) deliveries(ctx context.Context, query string, args ...any) ([]notifications.Delivery, error) {
	rows, err := s.db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notifications.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return list, nil
}

// scanDelivery reads the deliveryColumns of one row.
func scanDelivery(row pgx.Row) (notifications.Delivery, error) {
	var d notifications.Delivery
	err := row.Scan(&d.ID, &d.EventID, &d.EventType, &d.Subject, &d.SubscriptionID, &d.UserID, &d.Channel,
		&d.Address, &d.Status, &d.Attempts, &d.LastError, &d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.SentAt)
	if err != nil {
		return notifications.Delivery{}, err
	}
	d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = d.NextAttemptAt.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	if d.SentAt != nil {
		t := d.SentAt.UTC()
		d.SentAt = &t
	}
	return d, nil
}

func deliveryNotFound(id string) error {
	return eventflow.Errorf(eventflow.ENOTFOUND, "delivery %s not found", id)
}

// Secret implements notifications.Store. The INSERT waits for a concurrent
// first writer to commit; the SELECT, a statement of its own and so with a
// snapshot taken after that, then sees the first writer's value.
func (s *Notifications) Secret(ctx context.Context, name string, newValue []byte) ([]byte, error) {
	if _, err := s.db.pool.Exec(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		name, newValue); err != nil {
		return nil, fmt.Errorf("store secret %q: %w", name, err)
	}
	var value []byte
	if err := s.db.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&value); err != nil {
		return nil, fmt.Errorf("read secret %q: %w", name, err)
	}
	return value, nil
}

// listQuery builds the WHERE clause and the arguments of a listing that is
// newest first by id.
type listQuery struct {
	conds []string
	args  []any
}

// where adds column = value, unless value is empty.
func (q *listQuery) where(column, value string) {
	if value != "" {
		q.args = append(q.args, value)
		q.conds = append(q.conds, column+" = $"+strconv.Itoa(len(q.args)))
	}
}

// before adds id < cursor, unless cursor is empty.
func (q *listQuery) before(cursor string) {
	if cursor != "" {
		q.args = append(q.args, cursor)
		q.conds = append(q.conds, "id < $"+strconv.Itoa(len(q.args)))
	}
}

// sql returns selectFrom with the conditions, newest first, and limit (none
// if zero or less). Call it before reading args: it adds the limit.
func (q *listQuery) sql(selectFrom string, limit int) string {
	query := selectFrom
	if len(q.conds) > 0 {
		query += ` WHERE ` + strings.Join(q.conds, ` AND `)
	}
	query += ` ORDER BY id DESC` // UUIDv7 ids sort by creation time
	if limit > 0 {
		q.args = append(q.args, limit)
		query += ` LIMIT $` + strconv.Itoa(len(q.args))
	}
	return query
}
