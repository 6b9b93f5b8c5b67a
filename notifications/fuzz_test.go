package notifications

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/eventflow/eventflow/event"
)

// A pattern that parses prints as given, has at most 10 segments of the
// allowed form, and matches an event type exactly when the plain
// backtracking definition of "*" and "#" says it does — in time linear in
// the type, whatever the type.
//
//	go test ./notifications -run '^$' -fuzz '^FuzzPattern$' -fuzztime 1m
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"orders.order.created", "orders.order.created"},
		{"orders.order.*", "orders.order.paid"},
		{"orders.#", "orders.order.shipped"},
		{"#", "a.b.c"},
		{"#.#.#.#.#.#.#.#.#.x", strings.Repeat("a.", 200) + "y"},
		{"*.*.*", "a.b"},
		{"a.#.b.#.c", "a.b.b.c.c"},
		{"orders..created", "orders.order.created"},
		{"Orders.*", "Orders.x"},
		{"a-b_c.*", "a-b_c."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, typ string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		if p.String() != pattern || len(p.segments) > 10 || len(pattern) > 255 {
			t.Fatalf("ParsePattern(%q) accepted %v", pattern, p.segments)
		}
		start := time.Now()
		got := p.Match(typ)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("%q against %d bytes took %v", pattern, len(typ), took)
		}
		segs := strings.Split(typ, ".")
		if len(segs) <= 16 {
			if want := backtrack(p.segments, segs); got != want {
				t.Fatalf("%q.Match(%q) = %v; the definition says %v", pattern, typ, got, want)
			}
		}
	})
}

// backtrack is the definition of a match, tried split by split.
func backtrack(pattern, typ []string) bool {
	if len(pattern) == 0 {
		return len(typ) == 0
	}
	switch pattern[0] {
	case "#":
		for skip := 0; skip <= len(typ); skip++ {
			if backtrack(pattern[1:], typ[skip:]) {
				return true
			}
		}
		return false
	case "*":
		return len(typ) > 0 && backtrack(pattern[1:], typ[1:])
	}
	return len(typ) > 0 && typ[0] == pattern[0] && backtrack(pattern[1:], typ[1:])
}

// Compiling any text, and evaluating any filter that compiles on any event
// data, ends quickly without a panic: the cost limit stops an expensive
// evaluation, and no compiled filter holds a control character.
//
//	go test ./notifications -run '^$' -fuzz '^FuzzFilter$' -fuzztime 1m
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		`data.total >= 10000 && data.currency == "EUR"`,
		`type == "orders.order.cancelled" || data.previous_status == "paid"`,
		`data.items.exists(i, i.sku.startsWith("TEA"))`,
		`data.items.all(i, data.items.all(j, data.items.all(k, i == j)))`,
		`[1,2,3,4,5,6,7,8,9,10].map(x, [1,2,3,4,5,6,7,8,9,10].map(y, [1,2,3,4,5,6,7,8,9,10].map(z, x*y*z))).size() > 0`,
		`data.comment.matches("(a|aa)+$")`,
		`size(data.comment + data.comment + data.comment) > 1`,
		`time > timestamp("2026-01-01T00:00:00Z") && subject.size() == 36`,
		`data.total / 0 == 1`,
		`data.nope.nope`,
		`1 + 1`,
		"data.total > 0\r\n",
		`data.comment == "` + "\x00" + `"`,
		strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100),
		strings.Repeat("[", 100) + strings.Repeat("]", 100) + ` == []`,
	} {
		f.Add(s, []byte(nil))
	}
	f.Add(`data.x == 1`, []byte(`{"x":1}`))
	f.Add(`data.x.y.z`, []byte(`{"x":{"y":{"z":true}}}`))
	filters, err := NewFilters()
	if err != nil {
		f.Fatal(err)
	}
	items := make([]map[string]any, 100)
	for i := range items {
		items[i] = map[string]any{"sku": fmt.Sprintf("SKU-%d", i), "name": strings.Repeat("n", 200), "quantity": 1, "unit_price": 100}
	}
	order, _ := json.Marshal(map[string]any{
		"id": "0190c0de-0000-7000-8000-000000000001", "user_id": "alice", "status": "created", "currency": "EUR",
		"items": items, "total": 10000, "comment": strings.Repeat("a", 1000), "version": 1,
	})
	f.Fuzz(func(t *testing.T, expr string, data []byte) {
		start := time.Now()
		flt, err := filters.Compile(expr)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("compiling %d bytes took %v", len(expr), took)
		}
		if err != nil {
			return
		}
		if strings.ContainsFunc(expr, func(r rune) bool { return r != '\n' && r != '\t' && unicode.IsControl(r) }) {
			t.Fatalf("compiled a filter with a control character: %q", expr)
		}
		if !json.Valid(data) {
			data = order
		}
		e := event.Event{ID: "0190c0de-0000-7000-8000-000000000002", Source: "/eventflow/orders", Type: "orders.order.created",
			Subject: "0190c0de-0000-7000-8000-000000000001", Time: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Data: data}
		start = time.Now()
		flt.Match(e)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("evaluating %q took %v: the cost limit did not hold", expr, took)
		}
	})
}
