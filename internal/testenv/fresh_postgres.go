package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// FreshPostgres creates an empty database on the test PostgreSQL server
// (see Postgres) for t alone, drops it when t ends, and returns its URL.
// Tests that run eventflow whole use it so that no other test's outbox rows
// or subscriptions reach theirs.
func FreshPostgres(t testing.TB) string {
	t.Helper()
	serverURL := Postgres(t)
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatalf("testenv: EVENTFLOW_TEST_POSTGRES_URL: %v", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "eventflow_t_" + hex.EncodeToString(rnd[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("testenv: connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Logf("testenv: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
