package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/outbox"
)

// commitChannel is the notification channel a transaction that writes to the
// outbox notifies; PostgreSQL delivers the notification when it commits.
const commitChannel = "eventflow_outbox"

// Outbox is the outbox's side of the database.
type Outbox struct {
	db *DB
}

var _ outbox.Store = (*Outbox)(nil)

// NewOutbox returns the outbox store of db.
func NewOutbox(db *DB) *Outbox { return &Outbox{db: db} }

// insertOutbox writes e to the outbox in tx and announces it to the
// listeners of commitChannel, who hear of it when tx commits (or never, if it
// rolls back).
func insertOutbox(ctx context.Context, tx pgx.Tx, e event.Event) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO outbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.ID, e.Type, e.Source, e.Subject, dbTime(e.Time), e.DataSchema, e.Sequence, e.TraceParent, string(e.Data))
	if err != nil {
		return fmt.Errorf("insert outbox record: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify('`+commitChannel+`', '')`); err != nil {
		return fmt.Errorf("notify outbox listeners: %w", err)
	}
	return nil
}

// Pending implements outbox.Store. A limit of zero or less returns nothing.
func (s *Outbox) Pending(ctx context.Context, limit int) ([]outbox.Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.pool.Query(ctx, `
		SELECT seq, event_id, type, source, subject, time, dataschema, sequence, traceparent, data, created_at
		  FROM outbox
		 ORDER BY seq
		 LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	records, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outbox.Record, error) { return scanRecord(r) })
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return records, nil
}

// scanRecord reads one outbox row, in the column order of Pending.
func scanRecord(row pgx.Row) (outbox.Record, error) {
	var (
		r    outbox.Record
		e    = &r.Event
		data []byte
	)
	err := row.Scan(&r.Seq, &e.ID, &e.Type, &e.Source, &e.Subject, &e.Time, &e.DataSchema,
		&e.Sequence, &e.TraceParent, &data, &r.CreatedAt)
	if err != nil {
		return outbox.Record{}, err
	}
	// jsonb prints with spaces after separators; the broker gets it compact.
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return outbox.Record{}, fmt.Errorf("outbox record %d: data: %w", r.Seq, err)
	}
	e.Data = compact.Bytes()
	e.Time, r.CreatedAt = e.Time.UTC(), r.CreatedAt.UTC()
	return r, nil
}

// Delete implements outbox.Store.
func (s *Outbox) Delete(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM outbox WHERE seq = ANY($1)`, seqs); err != nil {
		return fmt.Errorf("delete outbox records: %w", err)
	}
	return nil
}

// Backlog implements outbox.Store. A record's creation time is the database
// clock's time of the transaction that wrote it.
func (s *Outbox) Backlog(ctx context.Context) (outbox.Backlog, error) {
	var (
		b      outbox.Backlog
		oldest *time.Time
	)
	if err := s.db.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM outbox`).Scan(&b.Count, &oldest); err != nil {
		return outbox.Backlog{}, fmt.Errorf("measure outbox backlog: %w", err)
	}
	if oldest != nil {
		b.Oldest = oldest.UTC()
	}
	return b, nil
}

// Listener timing: how long a listening connection may stay silent before it
// is pinged (a peer that vanished without closing the connection is otherwise
// noticed only by TCP keep-alives, minutes later), and how long to wait
// between attempts to reconnect.
const (
	listenIdleCheck   = time.Minute
	listenPingTimeout = 10 * time.Second
	listenMinBackoff  = 250 * time.Millisecond
	listenMaxBackoff  = 10 * time.Second
)

// Committed implements outbox.Store. It listens for the notifications that
// transactions writing to the outbox send on commit, on a connection taken
// out of the pool for as long as ctx lasts. When Committed returns, it
// listens already, so every later commit is announced; if the connection
// fails, it reconnects with backoff and, once listening again, sends a value
// for the commits it may have missed meanwhile. The connection is not the
// pool's: end ctx to close it, before or after DB.Close.
func (s *Outbox) Committed(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	conn, err := s.listen(ctx)
	if err != nil && ctx.Err() == nil {
		slog.WarnContext(ctx, "outbox: cannot listen for commits; retrying", "err", err)
	}
	go s.watch(ctx, conn, ch)
	return ch
}

// watch announces commits on ch until ctx ends, then closes ch. conn is the
// listening connection, or nil if there is none yet.
func (s *Outbox) watch(ctx context.Context, conn *pgx.Conn, ch chan<- struct{}) {
	defer close(ch)
	backoff := listenMinBackoff
	for {
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			var err error
			if conn, err = s.listen(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				backoff = min(2*backoff, listenMaxBackoff)
				slog.WarnContext(ctx, "outbox: cannot listen for commits; retrying", "err", err, "retry_in", backoff)
				continue
			}
			backoff = listenMinBackoff
			notify(ch)
		}
		err := waitForCommits(ctx, conn, ch)
		closeConn(conn)
		conn = nil
		if ctx.Err() != nil {
			return
		}
		slog.WarnContext(ctx, "outbox: lost the connection listening for commits; reconnecting", "err", err)
	}
}

// listen takes a connection out of the pool and listens on it.
func (s *Outbox) listen(ctx context.Context) (*pgx.Conn, error) {
	pc, err := s.db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	// The connection leaves the pool for good: a connection that listens must
	// not serve queries for others (it would collect the notifications), and
	// must not count against the pool's size.
	conn := pc.Hijack()
	if _, err := conn.Exec(ctx, `LISTEN `+commitChannel); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

// waitForCommits sends on ch for every notification that conn receives, and
// returns when ctx ends or conn fails.
func waitForCommits(ctx context.Context, conn *pgx.Conn, ch chan<- struct{}) error {
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenIdleCheck)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			notify(ch)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pingCtx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return err
		}
	}
}

// notify sends on ch unless a value waits there already: one value tells the
// reader to look, however many commits there were.
func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx) // the connection is given up either way
}

// AcquireLease implements outbox.Store. The lease's expiry is measured by
// the database's clock, so the holders' clocks need not agree; a lease is
// expired from its expiry time on.
func (s *Outbox) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	// One statement, so two contenders cannot both win: the second one's
	// INSERT waits for the first's row, then finds it live and not its own,
	// and updates (and returns) nothing.
	var got string
	err := s.db.pool.QueryRow(ctx, `
		INSERT INTO leases (name, holder, expires_at)
		VALUES ($1, $2, now() + $3::bigint * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE
		   SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
		 WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= now()
		RETURNING holder`,
		name, holder, ttl.Microseconds()).Scan(&got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLease implements outbox.Store.
func (s *Outbox) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}
