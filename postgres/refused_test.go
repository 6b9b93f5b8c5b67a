package postgres_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/postgres"
)

// An event PostgreSQL refuses for its values — which event.Validate keeps
// out, should one slip past it — is unprocessable: retried, it would hold
// its partition forever. A store that is merely unreachable is not.
func TestRecordEventRefusedData(t *testing.T) {
	db := openDB(t)
	store := postgres.NewNotifications(db)
	long := make([]byte, 2000)
	rand.Read(long)
	base := event.Event{
		ID: "0190c0de-0000-7000-8000-00000000000a", Source: "/test", Type: "orders.order.created", Subject: "s",
		Time: time.Now(), DataSchema: "x/orders.order.created/v1", Sequence: 1, Data: []byte(`{}`),
	}
	for name, edit := range map[string]func(*event.Event){
		"invalid UTF-8 in data": func(e *event.Event) { e.Data = []byte("{\"a\":\"\xff\"}") },
		"NUL in the source":     func(e *event.Event) { e.Source = "a\x00b" },
		"id over the index":     func(e *event.Event) { e.ID = hex.EncodeToString(long) },
	} {
		t.Run(name, func(t *testing.T) {
			e := base
			edit(&e)
			_, err := store.RecordEvent(t.Context(), e, notifications.InboxHandled, nil)
			if err == nil || !event.IsUnprocessable(err) {
				t.Fatalf("got %v; want an unprocessable error", err)
			}
		})
	}
	db.Close()
	if _, err := store.RecordEvent(t.Context(), base, notifications.InboxHandled, nil); err == nil || event.IsUnprocessable(err) {
		t.Fatalf("with the database closed: %v; want a retryable error", err)
	}
}
