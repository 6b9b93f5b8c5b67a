package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // the "sqlite" driver, as eventflow uses it

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
)

// rawDB is the stage's database seen by the harness itself: the raw
// order-and-outbox transaction of the intake baseline, filling the outbox
// for the relay stage, and the counts a stage waits for. Its SQL is written
// here against eventflow's schema, not borrowed from eventflow's stores, so
// that the baseline measures the database and not our code.
type rawDB interface {
	// insertOrder writes an order and its event in one transaction, with
	// the durability eventflow asks of the database.
	insertOrder(ctx context.Context, o orders.Order, e event.Event) error
	// fillOutbox writes events to the outbox in one transaction, so that
	// the relay finds all of them at once.
	fillOutbox(ctx context.Context, events []event.Event) error
	count(ctx context.Context, query string) (int, error)
	// deliverySubjects maps delivery ids to their subjects (order ids).
	deliverySubjects(ctx context.Context) (map[string]string, error)
	close()
}

func openRawDB(ctx context.Context, w *world, conns int) (rawDB, error) {
	if w.cfg.Stack == Real {
		cfg, err := pgxpool.ParseConfig(w.dbURL)
		if err != nil {
			return nil, err
		}
		cfg.MaxConns = int32(max(conns, 2))
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", w.dbURL, err)
		}
		return pgRaw{pool}, nil
	}
	// The pragmas eventflow opens its database with: WAL, synchronous FULL,
	// one writer beginning IMMEDIATE transactions.
	dsn := "file:" + (&url.URL{Path: sqlitePath(w.dataDir)}).EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return sqliteRaw{db}, nil
}

type pgRaw struct{ pool *pgxpool.Pool }

func (p pgRaw) insertOrder(ctx context.Context, o orders.Order, e event.Event) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		items, _ := itemsJSON(o)
		if _, err := tx.Exec(ctx, `INSERT INTO orders (id, user_id, status, currency, items, total, comment, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			o.ID, o.UserID, o.Status, o.Currency, items, o.Total, o.Comment, o.Version, o.CreatedAt, o.UpdatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO outbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			e.ID, e.Type, e.Source, e.Subject, e.Time, e.DataSchema, e.Sequence, e.TraceParent, string(e.Data))
		return err
	})
}

func (p pgRaw) fillOutbox(ctx context.Context, events []event.Event) error {
	_, err := p.pool.CopyFrom(ctx, pgx.Identifier{"outbox"},
		[]string{"event_id", "type", "source", "subject", "time", "dataschema", "sequence", "traceparent", "data"},
		pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
			e := events[i]
			return []any{e.ID, e.Type, e.Source, e.Subject, e.Time, e.DataSchema, e.Sequence, e.TraceParent, string(e.Data)}, nil
		}))
	return err
}

func (p pgRaw) count(ctx context.Context, query string) (int, error) {
	var n int
	err := p.pool.QueryRow(ctx, query).Scan(&n)
	return n, err
}

func (p pgRaw) deliverySubjects(ctx context.Context) (map[string]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT id::text, subject FROM deliveries`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collectPairs(rows)
}

func (p pgRaw) close() { p.pool.Close() }

type sqliteRaw struct{ db *sql.DB }

// sqliteTime is how eventflow's SQLite store writes times.
func sqliteTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (s sqliteRaw) insertOrder(ctx context.Context, o orders.Order, e event.Event) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	items, _ := itemsJSON(o)
	if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, user_id, status, currency, items, total, comment, version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.UserID, string(o.Status), o.Currency, items, o.Total, o.Comment, o.Version, sqliteTime(o.CreatedAt), sqliteTime(o.UpdatedAt)); err != nil {
		return err
	}
	if err := s.insertEvent(ctx, tx, e); err != nil {
		return err
	}
	return tx.Commit()
}

func (s sqliteRaw) insertEvent(ctx context.Context, tx *sql.Tx, e event.Event) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Type, e.Source, e.Subject, sqliteTime(e.Time), e.DataSchema, e.Sequence, e.TraceParent, string(e.Data), sqliteTime(time.Now()))
	return err
}

func (s sqliteRaw) fillOutbox(ctx context.Context, events []event.Event) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, e := range events {
		if err := s.insertEvent(ctx, tx, e); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s sqliteRaw) count(ctx context.Context, query string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, query).Scan(&n)
	return n, err
}

func (s sqliteRaw) deliverySubjects(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, subject FROM deliveries`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collectPairs(rows)
}

func (s sqliteRaw) close() { s.db.Close() }

// rows is what pgx and database/sql result sets have in common.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collectPairs reads (delivery id, subject) rows into a map by lower-case id.
func collectPairs(r rows) (map[string]string, error) {
	out := map[string]string{}
	for r.Next() {
		var id, subject string
		if err := r.Scan(&id, &subject); err != nil {
			return nil, err
		}
		out[strings.ToLower(id)] = subject
	}
	return out, r.Err()
}
