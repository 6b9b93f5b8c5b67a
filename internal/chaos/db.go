package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// runDB is the driver's own connection to the run's database: it reads
// what committed and takes the locks that hold a process inside a window.
type runDB struct {
	pool *pgxpool.Pool
	url  string
}

func openRunDB(ctx context.Context, url string) (*runDB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "eventflow-chaos"
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &runDB{pool: pool, url: url}, nil
}

func (d *runDB) Close() { d.pool.Close() }

// retry runs f until it succeeds, for up to a minute: the database may be
// restarting.
func retry[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	deadline := time.Now().Add(time.Minute)
	for {
		qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		v, err = f(qctx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (d *runDB) count(ctx context.Context, query string, args ...any) (int, error) {
	return retry(ctx, func(ctx context.Context) (int, error) {
		var n int
		err := d.pool.QueryRow(ctx, query, args...).Scan(&n)
		return n, err
	})
}

// Orders reads every order as it committed.
func (d *runDB) Orders(ctx context.Context) ([]CommittedOrder, error) {
	return retry(ctx, func(ctx context.Context) ([]CommittedOrder, error) {
		rows, err := d.pool.Query(ctx, `SELECT id::text, user_id, currency, status, total, version FROM orders ORDER BY id`)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CommittedOrder, error) {
			var o CommittedOrder
			err := r.Scan(&o.ID, &o.User, &o.Currency, &o.Status, &o.Total, &o.Version)
			return o, err
		})
	})
}

func (d *runDB) Outbox(ctx context.Context) (int, error) {
	return d.count(ctx, `SELECT count(*) FROM outbox`)
}

func (d *runDB) Deliveries(ctx context.Context, status string) (int, error) {
	return d.count(ctx, `SELECT count(*) FROM deliveries WHERE status = $1`, status)
}

// InboxHas counts the ids that are in the inbox.
func (d *runDB) InboxHas(ctx context.Context, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return d.count(ctx, `SELECT count(*) FROM inbox WHERE event_id = ANY($1)`, ids)
}

// ActiveRelayPid is the OS pid of the relay holding the lease: the holder
// is "host/pid/start".
func (d *runDB) ActiveRelayPid(ctx context.Context) (int, error) {
	var holder string
	err := d.pool.QueryRow(ctx, `SELECT holder FROM leases WHERE name = 'outbox-relay' AND expires_at > now()`).Scan(&holder)
	if err != nil {
		return 0, err
	}
	parts := strings.Split(holder, "/")
	if len(parts) < 3 {
		return 0, fmt.Errorf("lease holder %q", holder)
	}
	return strconv.Atoi(parts[len(parts)-2])
}

// blockedBackend is a server process of the run's database waiting for a
// lock, and the eventflow process it serves (by application_name).
type blockedBackend struct {
	Pid      int
	Instance string
	Query    string
}

// blocked lists the backends of the run's database whose query matches
// like and waits for a lock.
func (d *runDB) blocked(ctx context.Context, like string) ([]blockedBackend, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT pid, application_name, left(query, 80) FROM pg_stat_activity
		 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE $1`, like)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (blockedBackend, error) {
		var b blockedBackend
		err := r.Scan(&b.Pid, &b.Instance, &b.Query)
		return b, err
	})
}

// waitBlocked polls blocked until one backend matches or timeout passes.
func (d *runDB) waitBlocked(ctx context.Context, like string, timeout time.Duration) (blockedBackend, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if list, err := d.blocked(ctx, like); err == nil && len(list) > 0 {
			return list[0], true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return blockedBackend{}, false
}

// terminate ends a backend, rolling back its transaction: what the server
// does when the client died.
func (d *runDB) terminate(ctx context.Context, pid int) {
	d.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
}
