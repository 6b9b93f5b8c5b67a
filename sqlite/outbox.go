package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/outbox"
)

// Outbox is the outbox.Store on SQLite.
type Outbox struct {
	db *DB
}

var _ outbox.Store = (*Outbox)(nil)

// NewOutbox returns the outbox store of db.
func NewOutbox(db *DB) *Outbox { return &Outbox{db: db} }

// insertOutboxRecord writes e to the outbox inside the caller's transaction.
func insertOutboxRecord(ctx context.Context, tx *sql.Tx, e event.Event) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO outbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Type, e.Source, e.Subject, formatTime(e.Time), e.DataSchema, e.Sequence, e.TraceParent,
		string(e.Data), formatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("insert outbox record: %w", err)
	}
	return nil
}

// recordColumns are the columns Pending and PendingAfter read, in scan order.
const recordColumns = `seq, event_id, type, source, subject, time, dataschema, sequence, traceparent, data, created_at`

// Pending implements outbox.Store.
func (s *Outbox) Pending(ctx context.Context, limit int) ([]outbox.Record, error) {
	return s.read(ctx, `SELECT `+recordColumns+` FROM outbox ORDER BY seq LIMIT ?`, limit)
}

// PendingAfter implements outbox.Store. SQLite runs one writer at a time,
// so no record commits below another already visible; the count is checked
// all the same, because the contract promises it.
func (s *Outbox) PendingAfter(ctx context.Context, after int64, held, limit int) ([]outbox.Record, error) {
	return s.read(ctx, `
		SELECT `+recordColumns+` FROM outbox
		WHERE seq > ? AND (SELECT count(*) FROM outbox WHERE seq <= ?) = ?
		ORDER BY seq LIMIT ?`, after, after, held, limit)
}

// read runs a query of records.
func (s *Outbox) read(ctx context.Context, query string, args ...any) ([]outbox.Record, error) {
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var records []outbox.Record
	for rows.Next() {
		var (
			r            outbox.Record
			e            = &r.Event
			t, createdAt string
			data         string
		)
		if err := rows.Scan(&r.Seq, &e.ID, &e.Type, &e.Source, &e.Subject, &t, &e.DataSchema, &e.Sequence,
			&e.TraceParent, &data, &createdAt); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		e.Data = []byte(data)
		if e.Time, err = parseTime(t); err != nil {
			return nil, err
		}
		if r.CreatedAt, err = parseTime(createdAt); err != nil {
			return nil, err
		}
		records = append(records, r)
	}
	return records, rows.Err()
}

// Delete implements outbox.Store.
func (s *Outbox) Delete(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, len(seqs))
	for i, seq := range seqs {
		args[i] = seq
	}
	query := `DELETE FROM outbox WHERE seq IN (?` + strings.Repeat(`, ?`, len(seqs)-1) + `)`
	if _, err := s.db.write.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("delete outbox records: %w", err)
	}
	return nil
}

// Backlog implements outbox.Store.
func (s *Outbox) Backlog(ctx context.Context) (outbox.Backlog, error) {
	var (
		b      outbox.Backlog
		oldest sql.NullString
	)
	err := s.db.read.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM outbox`).Scan(&b.Count, &oldest)
	if err != nil {
		return outbox.Backlog{}, fmt.Errorf("measure outbox backlog: %w", err)
	}
	if oldest.Valid {
		if b.Oldest, err = parseTime(oldest.String); err != nil {
			return outbox.Backlog{}, err
		}
	}
	return b, nil
}

// Committed implements outbox.Store.
func (s *Outbox) Committed(ctx context.Context) <-chan struct{} { return s.db.subscribe(ctx) }

// AcquireLease implements outbox.Store.
func (s *Outbox) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	var got string
	err := s.db.write.QueryRowContext(ctx, `
		INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= ?
		RETURNING holder`,
		name, holder, formatTime(now.Add(ttl)), formatTime(now)).Scan(&got)
	if err == sql.ErrNoRows {
		return false, nil // the conflict's WHERE kept another holder's lease
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLease implements outbox.Store.
func (s *Outbox) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.write.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
