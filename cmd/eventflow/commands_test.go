package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The operator commands work on embedded defaults: migrations applied and
// listed, topics created and then found again in the broker's data folder.
func TestOperatorCommands(t *testing.T) {
	dir := t.TempDir()
	getenv := func(k string) string {
		return map[string]string{"EVENTFLOW_DATA_DIR": dir, "EVENTFLOW_EMBEDDED_KAFKA_PORT": "0"}[k]
	}
	runCmd := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, getenv, &out, &errOut); err != nil {
			t.Fatalf("eventflow %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	if out := runCmd("migrate", "up"); strings.Count(out, "applied") < 2 {
		t.Fatalf("migrate up:\n%s", out)
	}
	if out := runCmd("migrate", "status"); !strings.Contains(out, "00002_notifications.sql") || strings.Contains(out, "pending") {
		t.Fatalf("migrate status:\n%s", out)
	}
	runCmd("topics", "apply")
	out := runCmd("topics", "list")
	for _, topic := range []string{"orders.order.events", "notifications.notifier.dead-letter"} {
		if !strings.Contains(out, topic) {
			t.Fatalf("topics list lacks %s:\n%s", topic, out)
		}
	}
	if out := runCmd("version"); !strings.HasPrefix(out, "eventflow ") {
		t.Fatalf("version: %q", out)
	}
	var errOut bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, getenv, &bytes.Buffer{}, &errOut); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	if err := run(context.Background(), []string{"topics", "apply", "--orders-topic", "Bad Name"}, getenv, &bytes.Buffer{}, &errOut); err == nil {
		t.Fatal("an invalid topic name was applied")
	}
}
