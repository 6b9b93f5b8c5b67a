package notifications

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventflow/eventflow/event"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		matches []string
		misses  []string
	}{
		{"orders.order.created", []string{"orders.order.created"}, []string{"orders.order.paid", "orders.order", "orders.order.created.v2"}},
		{"orders.order.*", []string{"orders.order.created", "orders.order.cancelled"}, []string{"orders.order", "orders.invoice.created", "orders.order.created.x"}},
		{"orders.#", []string{"orders", "orders.order", "orders.order.created", "orders.a.b.c"}, []string{"payments.order.created", "ordersx.order"}},
		{"#.cancelled", []string{"orders.order.cancelled", "cancelled"}, []string{"orders.order.paid"}},
		{"*.order.*", []string{"orders.order.paid"}, []string{"orders.order", "orders.invoice.paid"}},
		{"#", []string{"orders.order.created", "x"}, nil},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tt.pattern, err)
		}
		for _, typ := range tt.matches {
			if !p.Match(typ) {
				t.Errorf("%s should match %s", tt.pattern, typ)
			}
		}
		for _, typ := range tt.misses {
			if p.Match(typ) {
				t.Errorf("%s should not match %s", tt.pattern, typ)
			}
		}
	}
	for _, bad := range []string{"", "Orders.order", "orders..created", "orders.order.cre ated", "orders.*x", "a.b.c.d.e.f.g.h.i.j.k", "orders.order.created\r\n"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

func orderEvent(t *testing.T, typ, user string, total int64, currency string) event.Event {
	t.Helper()
	data, _ := json.Marshal(map[string]any{"id": "o1", "user_id": user, "status": strings.TrimPrefix(typ, "orders.order."),
		"total": total, "currency": currency, "items": []any{}})
	return event.Event{ID: uuid.NewString(), Source: "/eventflow/orders", Type: typ, Subject: "o1", Time: time.Now(), Data: data}
}

func TestFilters(t *testing.T) {
	filters, err := NewFilters()
	if err != nil {
		t.Fatal(err)
	}
	f, err := filters.Compile(`data.total >= 10000 && data.currency == "EUR"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		total    int64
		currency string
		want     bool
	}{{10000, "EUR", true}, {9999, "EUR", false}, {20000, "USD", false}} {
		got, err := f.Match(orderEvent(t, "orders.order.created", "u", c.total, c.currency))
		if err != nil || got != c.want {
			t.Errorf("total %d %s: got %v, %v; want %v", c.total, c.currency, got, err, c.want)
		}
	}
	// A field that is not there is an evaluation error and no match.
	missing, _ := filters.Compile(`data.nope == 1`)
	if ok, err := missing.Match(orderEvent(t, "orders.order.created", "u", 1, "EUR")); ok || err == nil {
		t.Errorf("missing field: %v, %v; want no match with an error", ok, err)
	}
	for _, bad := range []string{`data.total >=`, `1 + 1`, `"text"`, `unknown_var == 1`, strings.Repeat("a", 3000)} {
		if _, err := filters.Compile(bad); err == nil {
			t.Errorf("Compile(%q) accepted", bad)
		}
	}
}

func TestTokens(t *testing.T) {
	tokens := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	id := uuid.Must(uuid.NewV7()).String()
	tok := tokens.Token(id)
	if got, ok := tokens.Parse(tok); !ok || got != id {
		t.Fatalf("Parse(Token(id)) = %q, %v", got, ok)
	}
	other := NewTokens([]byte("another key, another signature!!"))
	if _, ok := other.Parse(tok); ok {
		t.Fatal("a token verified under another key")
	}
	// Changing any character of the token must not name another
	// subscription (a flip in base64's unused low bits of the last
	// character decodes to the same bytes, which is harmless).
	for i := range tok {
		forged := []byte(tok)
		forged[i] ^= 1
		if got, ok := tokens.Parse(string(forged)); ok && got != id {
			t.Fatalf("forged token %q names %s", forged, got)
		}
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 43), "not base64!"} {
		if _, ok := tokens.Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestFormatMoney(t *testing.T) {
	for _, c := range []struct {
		minor    int64
		currency string
		want     string
	}{{2100, "EUR", "21.00 EUR"}, {5, "USD", "0.05 USD"}, {1500, "JPY", "1500 JPY"}, {12345, "KWD", "12.345 KWD"}} {
		if got := formatMoney(c.minor, c.currency); got != c.want {
			t.Errorf("formatMoney(%d, %s) = %q; want %q", c.minor, c.currency, got, c.want)
		}
	}
}

func TestRenderEscapesAndKeepsIdentity(t *testing.T) {
	tokens := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	r, err := NewRenderer("eventflow <notify@shop.example>", "https://shop.example", tokens)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"id": "o1", "user_id": "u", "status": "created", "total": 2100, "currency": "EUR",
		"comment": `<script>alert(1)</script>`, "items": []map[string]any{{"sku": "A", "name": "Tea & <b>cake</b>", "quantity": 2, "unit_price": 1050}}})
	subID := uuid.Must(uuid.NewV7()).String()
	j := Job{
		Delivery:     Delivery{ID: "d1", Address: "alice@example.com", Channel: ChannelEmail},
		Event:        event.Event{ID: "e1", Type: "orders.order.created", Data: data, Time: time.Now()},
		Subscription: Subscription{ID: subID},
	}
	m, err := r.Email(j)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, "<b>cake") {
		t.Fatalf("HTML is not escaped: %s", m.HTML)
	}
	if !strings.Contains(m.Text, "Tea & <b>cake</b>") || !strings.Contains(m.Text, "21.00 EUR") {
		t.Fatalf("text lacks the item or total: %s", m.Text)
	}
	if m.Subject != "Order o1 created: 21.00 EUR" || m.MessageID != "d1@shop.example" {
		t.Fatalf("subject %q, Message-ID %q", m.Subject, m.MessageID)
	}
	unsub := "https://shop.example/unsubscribe/" + tokens.Token(subID)
	if m.Headers["List-Unsubscribe"] != "<"+unsub+">" || m.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
		t.Fatalf("unsubscribe headers = %v", m.Headers)
	}
	again, _ := r.Email(j)
	if again.MessageID != m.MessageID {
		t.Fatal("a retry got another Message-ID")
	}
}
