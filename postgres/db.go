// Package postgres keeps orders and the outbox in PostgreSQL. It implements
// orders.Store and outbox.Store; storetest holds the contract they meet.
//
// Times are stored as timestamptz, which keeps microseconds: the stores
// truncate every time to the microsecond and return it in UTC.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is a pool of connections to one PostgreSQL database.
type DB struct {
	pool     *pgxpool.Pool
	announce *announcer
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) and checks that it answers. Unless the url sets
// pool_max_conns, the pool holds up to max(10, number of CPUs) connections.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err) // pgx redacts the password
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = max(10, int32(runtime.NumCPU()))
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "eventflow"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db := &DB{pool: pool}
	if err := db.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	db.startAnnouncer()
	return db, nil
}

// Close closes every connection, waiting for those in use to be released.
func (db *DB) Close() {
	db.stopAnnouncer()
	db.pool.Close()
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Pool returns the underlying pool, for callers that need pgx itself.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Migrate applies the migrations that have not been applied yet. Processes
// that start together take turns: a PostgreSQL advisory lock lets one
// migrate while the others wait.
func (db *DB) Migrate(ctx context.Context) error {
	err := db.withProvider(func(p *goose.Provider) error {
		_, err := p.Up(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

// MigrationStatus reports every known migration and whether it was applied.
func (db *DB) MigrationStatus(ctx context.Context) ([]*goose.MigrationStatus, error) {
	var status []*goose.MigrationStatus
	err := db.withProvider(func(p *goose.Provider) (err error) {
		status, err = p.Status(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	return status, nil
}

// withProvider runs fn with a goose provider over the pool's connections.
func (db *DB) withProvider(fn func(*goose.Provider) error) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	// Retry the lock every second for up to five minutes: a peer's migration
	// is short, and the default five-second period would slow every start.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return err
	}
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close() // returns the connections to the pool; the pool stays open
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return err
	}
	return errors.Join(fn(p), p.Close())
}

// dbTime is t as the database keeps it: in UTC, to the microsecond.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
