package postgres_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"

	"github.com/eventflow/eventflow/internal/testenv"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
	"github.com/eventflow/eventflow/postgres"
	"github.com/eventflow/eventflow/storetest"
)

func TestStore(t *testing.T) {
	testenv.Postgres(t) // skip (or fail) once, not in every subtest
	storetest.Run(t, func(t *testing.T) (orders.Store, outbox.Store) {
		db := openDB(t)
		return postgres.NewOrders(db), postgres.NewOutbox(db)
	})
}

func TestNotifications(t *testing.T) {
	testenv.Postgres(t)
	storetest.RunNotifications(t, func(t *testing.T) notifications.Store {
		return postgres.NewNotifications(openDB(t))
	})
}

// openDB opens a fresh, migrated database of t's own (a database per test:
// its own tables and its own LISTEN/NOTIFY channels), dropped when t ends.
func openDB(t *testing.T) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), testenv.FreshPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMigrate(t *testing.T) {
	db, err := postgres.Open(t.Context(), testenv.FreshPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	status, err := db.MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(status) == 0 {
		t.Fatal("MigrationStatus lists no migrations")
	}
	for _, s := range status {
		if s.State != goose.StatePending {
			t.Errorf("before Migrate, migration %d is %s, want pending", s.Source.Version, s.State)
		}
	}

	// Processes that start together migrate one at a time, and all succeed.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = db.Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate %d: %v", i, err)
		}
	}
	if err := db.Migrate(t.Context()); err != nil {
		t.Errorf("Migrate of a migrated database: %v", err)
	}

	status, err = db.MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.State != goose.StateApplied || s.AppliedAt.IsZero() {
			t.Errorf("after Migrate, migration %d is %s (applied at %v), want applied", s.Source.Version, s.State, s.AppliedAt)
		}
	}
	var tables []string
	rows, err := db.Pool().Query(t.Context(), `
		SELECT table_name FROM information_schema.tables
		 WHERE table_schema = current_schema() AND table_name = ANY($1)
		 ORDER BY table_name`, []string{"idempotency_keys", "leases", "orders", "outbox"})
	if err == nil {
		tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || strings.Join(tables, " ") != "idempotency_keys leases orders outbox" {
		t.Errorf("tables after Migrate: %v, %v", tables, err)
	}
}

// TestCommittedReconnects: when the listening connection dies, Committed
// reconnects, says that commits may have been missed, and hears later commits.
func TestCommittedReconnects(t *testing.T) {
	db := openDB(t)
	store, box := postgres.NewOrders(db), postgres.NewOutbox(db)
	committed := box.Committed(t.Context())

	listener := func(not int32) int32 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var pid int32
			err := db.Pool().QueryRow(t.Context(), `
				SELECT pid FROM pg_stat_activity
				 WHERE datname = current_database() AND query = 'LISTEN eventflow_outbox' AND pid <> $1`,
				not).Scan(&pid)
			if err == nil {
				return pid
			}
			if err != pgx.ErrNoRows || time.Now().After(deadline) {
				t.Fatalf("find the listening connection: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	expect := func(what string) {
		t.Helper()
		select {
		case _, ok := <-committed:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing received in 10 s", what)
		}
	}

	old := listener(0)
	if _, err := db.Pool().Exec(t.Context(), `SELECT pg_terminate_backend($1)`, old); err != nil {
		t.Fatal(err)
	}
	expect("reconnecting")
	listener(old)

	o, e := storetest.NewOrder("alice")
	if err := store.CreateOrder(t.Context(), o, e, nil); err != nil {
		t.Fatal(err)
	}
	expect("a commit after reconnecting")
}

func TestOpen(t *testing.T) {
	for _, u := range []string{
		"postgres://user:secret@127.0.0.1:1/db?connect_timeout=5",
		"postgres://user:secret@[::1/db",
		"mysql://user:secret@localhost/db",
	} {
		db, err := postgres.Open(t.Context(), u)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): the error shows the password: %v", u, err)
		}
	}
}
