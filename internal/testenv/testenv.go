// Package testenv decides what a test does when a real service it needs is
// not configured: a developer's quick run skips it, and a strict run (CI, or
// the full suite asked for by EVENTFLOW_TEST_FULL=1) fails, because a missing
// service there is a broken pipeline, not a reason to pass.
package testenv

import (
	"os"
	"testing"
)

// Strict reports whether a test must fail, rather than skip, when a service
// it needs is not configured: when CI is "true" or EVENTFLOW_TEST_FULL is "1".
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("EVENTFLOW_TEST_FULL") == "1"
}

// Postgres returns the URL of the PostgreSQL server the tests may use, from
// EVENTFLOW_TEST_POSTGRES_URL. When that is not set, it skips t, or fails it
// if Strict.
func Postgres(t testing.TB) string {
	t.Helper()
	return Require(t, "EVENTFLOW_TEST_POSTGRES_URL", "PostgreSQL")
}

// Require returns the value of the environment variable key, which
// configures service; when it is empty it skips t, or fails it if Strict.
func Require(t testing.TB, key, service string) string {
	t.Helper()
	if v := os.Getenv(key); v != "" {
		return v
	}
	msg := key + " is not set, so the tests that need " + service + " cannot run; " +
		`start it with scripts/services.sh start and eval "$(scripts/services.sh env)"`
	if Strict() {
		t.Fatal(msg + " (a strict run, CI=true or EVENTFLOW_TEST_FULL=1, needs every service)")
	}
	t.Skip(msg)
	return ""
}
