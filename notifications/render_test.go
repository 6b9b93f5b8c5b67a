package notifications

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventflow/eventflow/event"
)

// TestRenderOncePerEvent: the bodies rendered once for an event and reused
// for its other subscribers are exactly what rendering for each of them
// afresh gives, each with its own unsubscribe link, whatever the public URL
// and the order data hold.
func TestRenderOncePerEvent(t *testing.T) {
	tokens := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	const publicURL = "https://shop.example/a&b?x=<y>"
	data, _ := json.Marshal(map[string]any{"id": "o1", "user_id": "u", "status": "created", "total": 2100, "currency": "EUR",
		"comment": `"quoted" & <b>`, "items": []map[string]any{{"sku": "A", "name": "Tea & <b>cake</b>", "quantity": 2, "unit_price": 1050}}})
	e := event.Event{ID: "e1", Type: "orders.order.created", Data: data, Time: time.Now()}
	job := func() Job {
		return Job{
			Delivery:     Delivery{ID: uuid.Must(uuid.NewV7()).String(), Address: "alice@example.com", Channel: ChannelEmail},
			Event:        e,
			Subscription: Subscription{ID: uuid.Must(uuid.NewV7()).String()},
		}
	}
	shared, err := NewRenderer("eventflow <notify@shop.example>", publicURL, tokens)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		j := job()
		got, err := shared.Email(j)
		if err != nil {
			t.Fatal(err)
		}
		token := tokens.Token(j.Subscription.ID)
		want, err := shared.render(e, token) // rendered for this subscriber alone
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != want.subject || got.Text != want.text || got.HTML != want.html {
			t.Fatalf("subscriber %d: email from the per-event cache differs from one rendered for it alone:\n got %q\n%q\nwant %q\n%q",
				i, got.Text, got.HTML, want.text, want.html)
		}
		if !strings.Contains(got.Text, token) || !strings.Contains(got.HTML, token) || strings.Contains(got.HTML, shared.placeholder) {
			t.Fatalf("subscriber %d: bodies lack its unsubscribe token or keep the placeholder", i)
		}
	}
}
