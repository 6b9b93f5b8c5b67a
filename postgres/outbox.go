package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/outbox"
)

// commitChannel is the notification channel on which writers of the outbox
// announce their commits (see announcer) and relays listen.
const commitChannel = "eventflow_outbox"

// Outbox is the outbox's side of the database.
type Outbox struct {
	db *DB
}

var _ outbox.Store = (*Outbox)(nil)

// NewOutbox returns the outbox store of db.
func NewOutbox(db *DB) *Outbox { return &Outbox{db: db} }

// insertOutbox writes e to the outbox in tx. The caller announces the
// commit (DB.committed) once tx has committed: see announcer for why not
// inside tx.
func insertOutbox(ctx context.Context, tx pgx.Tx, e event.Event) error {
	_, err := tx.Exec(ctx, insertOutboxSQL, outboxArgs(e)...)
	if err != nil {
		return fmt.Errorf("insert outbox record: %w", err)
	}
	return nil
}

// recordColumns are the columns read reads, in its order.
const recordColumns = `seq, event_id, type, source, subject, time, dataschema, sequence, traceparent, data, created_at`

const insertOutboxSQL = `
	INSERT INTO outbox (event_id, type, source, subject, time, dataschema, sequence, traceparent, data)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

func outboxArgs(e event.Event) []any {
	return []any{e.ID, e.Type, e.Source, e.Subject, dbTime(e.Time), e.DataSchema, e.Sequence, e.TraceParent, string(e.Data)}
}

// Pending implements outbox.Store. A limit of zero or less returns nothing.
func (s *Outbox) Pending(ctx context.Context, limit int) ([]outbox.Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.read(ctx, limit, `SELECT `+recordColumns+` FROM outbox ORDER BY seq LIMIT $1`, limit)
}

// PendingAfter implements outbox.Store. The count is an InitPlan, computed
// once, in the statement's snapshot; when it differs, the scan does not run.
func (s *Outbox) PendingAfter(ctx context.Context, after int64, held, limit int) ([]outbox.Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.read(ctx, limit, `
		SELECT `+recordColumns+`
		  FROM outbox
		 WHERE seq > $1 AND (SELECT count(*) FROM outbox WHERE seq <= $1) = $2
		 ORDER BY seq
		 LIMIT $3`, after, held, limit)
}

// read runs a query of up to limit records, in the column order of
// recordColumns.
func (s *Outbox) read(ctx context.Context, limit int, query string, args ...any) ([]outbox.Record, error) {
	rows, err := s.db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	// Sized up front: growing a slice of records batch after batch was a
	// good part of the relay's allocations. The cap bounds what a huge
	// limit with few records waiting costs.
	records := make([]outbox.Record, 0, min(limit, 10000))
	// One scan target for all rows: scanning into a fresh record per row
	// made each record, and the destinations, escape to the heap.
	var (
		r    outbox.Record
		e    = &r.Event
		data []byte
	)
	dest := []any{&r.Seq, &e.ID, &e.Type, &e.Source, &e.Subject, &e.Time, &e.DataSchema,
		&e.Sequence, &e.TraceParent, &data, &r.CreatedAt}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		// jsonb prints with spaces after separators; the broker gets it
		// compact. Scan gave data a fresh copy, so it is compacted in place
		// and handed over; the next Scan allocates anew.
		e.Data = compactJSON(data)
		data = nil
		e.Time, r.CreatedAt = e.Time.UTC(), r.CreatedAt.UTC()
		records = append(records, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return records, nil
}

// compactJSON removes the whitespace between the tokens of the valid JSON
// text b, in place, and returns the shortened b. It does not validate: the
// database holds only valid JSON in a jsonb column, and the publisher
// validates each event anyway. encoding/json.Compact validates as it goes,
// which made it the relay's costliest step.
func compactJSON(b []byte) []byte {
	w := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			// Copy the whole string at once: it ends at the first quote not
			// escaped, that is, not preceded by an odd run of backslashes.
			end := i + 1
			for {
				q := bytes.IndexByte(b[end:], '"')
				if q < 0 {
					end = len(b) - 1 // not JSON; keep the rest as it is
					break
				}
				end += q
				backslashes := 0
				for j := end - 1; j > i && b[j] == '\\'; j-- {
					backslashes++
				}
				if backslashes%2 == 0 {
					break
				}
				end++
			}
			w += copy(b[w:], b[i:end+1])
			i = end
			continue
		}
		b[w] = c
		w++
	}
	return b[:w]
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
