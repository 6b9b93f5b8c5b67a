package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
	"github.com/eventflow/eventflow/sqlite"
	"github.com/eventflow/eventflow/storetest"
)

// open returns the stores of a fresh, migrated database file.
func open(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "eventflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (orders.Store, outbox.Store) {
		db := open(t)
		return sqlite.NewOrders(db), sqlite.NewOutbox(db)
	})
}

func TestNotifications(t *testing.T) {
	storetest.RunNotifications(t, func(t *testing.T) notifications.Store {
		return sqlite.NewNotifications(open(t))
	})
}

func TestMigrateTwice(t *testing.T) {
	db := open(t)
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	status, err := db.MigrationStatus(t.Context())
	if err != nil || len(status) == 0 {
		t.Fatalf("status = %v, %v", status, err)
	}
	for _, s := range status {
		if s.State != "applied" {
			t.Fatalf("migration %d is %s", s.Source.Version, s.State)
		}
	}
}
