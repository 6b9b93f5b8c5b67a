// Package sqlite is eventflow's embedded storage: the orders and outbox
// stores on SQLite (pure Go, WAL), for running on one machine with nothing
// else installed. The postgres package implements the same contracts.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an SQLite database opened for eventflow.
//
// SQLite allows one writer at a time. Writes go through a pool of one
// connection that begins transactions IMMEDIATE, so they queue in Go instead
// of failing with SQLITE_BUSY; reads use their own pool and, thanks to WAL,
// never wait for the writer.
type DB struct {
	write *sql.DB
	read  *sql.DB

	mu          sync.Mutex
	subscribers map[chan struct{}]struct{}
}

// Open opens (creating if needed) the database file at path.
func Open(ctx context.Context, path string) (*DB, error) {
	// synchronous(FULL) makes a commit durable across power loss, not only
	// across a crash of the process, at some cost in write latency.
	pragmas := "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas
	write, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	// Readers keep a page cache of 1 MiB each rather than SQLite's 2 MB:
	// up to eight of them are open under load, their caches live outside
	// the Go heap (no memory limit sees them), and reads are served by
	// the operating system's file cache anyway.
	read, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)&_pragma=cache_size(-1024)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	db := &DB{write: write, read: read, subscribers: map[chan struct{}]struct{}{}}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	return errors.Join(db.read.Close(), db.write.Close())
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

func (db *DB) migrations() (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectSQLite3, db.write, fsys)
}

// Migrate applies every migration not applied yet.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.migrations()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	return nil
}

// MigrationStatus says which migrations are applied.
func (db *DB) MigrationStatus(ctx context.Context) ([]*goose.MigrationStatus, error) {
	p, err := db.migrations()
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p.Status(ctx)
}

// inTx runs fn in a write transaction and commits it if fn succeeds.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// notifyCommitted wakes every Committed channel: the in-process stand-in for
// PostgreSQL's LISTEN/NOTIFY. Another process on the same file is not woken;
// its relay finds the records by polling.
func (db *DB) notifyCommitted() {
	db.mu.Lock()
	defer db.mu.Unlock()
	for ch := range db.subscribers {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

func (db *DB) subscribe(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	db.mu.Lock()
	db.subscribers[ch] = struct{}{}
	db.mu.Unlock()
	go func() {
		<-ctx.Done()
		db.mu.Lock()
		delete(db.subscribers, ch)
		close(ch)
		db.mu.Unlock()
	}()
	return ch
}

// timeLayout stores times as fixed-width UTC text, so that they sort and
// compare as strings and keep the microseconds PostgreSQL keeps too.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t, nil
}
