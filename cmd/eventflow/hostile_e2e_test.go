package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hostileMaxBody is the body limit the hostile suite runs eventflow with:
// small enough that a body over it is cheap to send, large enough to hold
// 100,000 nested arrays.
const hostileMaxBody = 256 << 10

// hostileRequest is one hostile request and the 4xx it must get.
type hostileRequest struct {
	name    string
	method  string
	path    string
	body    any // string or []byte, sent as they are; nil for none
	headers []string
	status  int
	field   string // the problem's field, when the answer must name one
}

// Every endpoint, fed malformed, hostile and out-of-range input, answers a
// 4xx application/problem+json, never a 5xx, and stores nothing: the orders,
// subscriptions, deliveries and Kafka records are exactly what they were
// before. On the real tier this also proves that nothing reaches PostgreSQL
// that it would refuse (a NUL byte in text, an index entry over its size).
func TestHostileHTTPInput(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		box, env := mailboxFor(t, tr)
		a := startApp(t, tr, withEnv(env, "EVENTFLOW_HTTP_MAX_BODY_BYTES", fmt.Sprint(hostileMaxBody)))

		// What exists before the attack: one order, one subscription, one
		// delivery (sent), one event in Kafka.
		addr := uniqueAddress("mallory")
		sub := a.subscribe(t, `{"user_id":"mallory","channel":"email","address":"`+addr+`","patterns":["orders.#"]}`)
		order := a.createOrder(t, "mallory", 1234)
		waitForMail(t, box, addr, 1)
		delivery := waitForDelivery(t, a, sub.ID, func(d deliveryJSON) bool { return d.Status == "sent" })
		before := snapshot(t, a)

		cases := hostileRequests(order.ID, sub.ID, delivery.ID)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := a.do(t, c.method, c.path, c.body, c.headers...)
				if r.status >= 500 {
					t.Fatalf("%s %s: %d %s", c.method, c.path, r.status, r.body)
				}
				expectProblem(t, r, c.status, c.field)
			})
		}
		t.Logf("%s: %d hostile requests, each refused with a 4xx problem", tr.name, len(cases))

		after := snapshot(t, a)
		if !maps.Equal(before.counts, after.counts) || before.order != after.order || before.subscription != after.subscription {
			t.Fatalf("hostile requests changed what is stored:\nbefore %+v\nafter  %+v", before, after)
		}
		if n := len(box.to(t, addr)); n != 1 {
			t.Fatalf("%d emails; want the 1 from before the attack", n)
		}
		metrics := string(a.do(t, "GET", "/metrics", nil).body)
		for line := range strings.SplitSeq(metrics, "\n") {
			if strings.HasPrefix(line, "eventflow_http_requests_total") && strings.Contains(line, `status="5`) {
				t.Errorf("a 5xx was answered: %s", line)
			}
		}

		t.Run("limits accepted", func(t *testing.T) { testLimitsAccepted(t, a) })
	})
}

// stored is what the API and the topic hold, to compare before and after.
type stored struct {
	counts       map[string]int
	order        string // GET /v1/orders/{id}, byte for byte
	subscription string
}

func snapshot(t *testing.T, a *app) stored {
	t.Helper()
	var orders struct {
		Orders []orderJSON `json:"orders"`
	}
	a.do(t, "GET", "/v1/orders?limit=200", nil).json(t, &orders)
	var subs struct {
		Subscriptions []subscriptionJSON `json:"subscriptions"`
	}
	a.do(t, "GET", "/v1/subscriptions?limit=200", nil).json(t, &subs)
	s := stored{counts: map[string]int{
		"orders":        len(orders.Orders),
		"subscriptions": len(subs.Subscriptions),
		"deliveries":    len(a.deliveries(t, "limit=200")),
		"events":        countRecords(t, a),
	}}
	if len(orders.Orders) > 0 {
		s.order = string(a.do(t, "GET", "/v1/orders/"+orders.Orders[0].ID, nil).body)
	}
	if len(subs.Subscriptions) > 0 {
		s.subscription = string(a.do(t, "GET", "/v1/subscriptions/"+subs.Subscriptions[0].ID, nil).body)
	}
	return s
}

// jsonObject returns base with the fields in set replaced (a nil value
// deletes the field), encoded as JSON. encoding/json escapes CR, LF and NUL
// as \r, \n and \u0000, so the server decodes the very bytes given here.
func jsonObject(base map[string]any, set map[string]any) string {
	m := maps.Clone(base)
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// nested is n arrays inside one another.
func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

func hostileRequests(orderID, subID, deliveryID string) []hostileRequest {
	var cases []hostileRequest
	add := func(name, method, path string, body any, status int, field string, headers ...string) {
		cases = append(cases, hostileRequest{name: name, method: method, path: path, body: body, headers: headers, status: status, field: field})
	}
	const (
		crlf     = "x\r\nBcc: victim@example.com"
		lf       = "x\nBcc: victim@example.com"
		nul      = "x\x00y"
		sqlQuote = "x'); DROP TABLE orders; --"
	)
	badIDs := map[string]string{
		"not a uuid":        "not-a-uuid",
		"upper-case uuid":   "0190C0DE-0000-7000-8000-000000000000",
		"braced uuid":       "%7B0190c0de-0000-7000-8000-000000000000%7D",
		"unknown uuid":      "0190c0de-0000-7000-8000-000000000000",
		"NUL":               "%00",
		"CRLF":              "0190c0de-0000-7000-8000-000000000000%0D%0ALocation:%20x",
		"SQL":               "1'%20OR%20'1'='1",
		"invalid UTF-8":     "%FF%FE",
		"2000 characters":   strings.Repeat("a", 2000),
		"uuid with a space": "0190c0de-0000-7000-8000-00000000000%20",
	}
	badQuery := map[string]struct{ query, field string }{
		"user_id CRLF":         {"user_id=a%0D%0Ab", "user_id"},
		"user_id NUL":          {"user_id=a%00b", "user_id"},
		"user_id SQL":          {"user_id=a'%20OR%20'1'='1", "user_id"},
		"user_id invalid UTF8": {"user_id=%FF", "user_id"},
		"user_id too long":     {"user_id=" + strings.Repeat("u", 129), "user_id"},
		"cursor not a uuid":    {"cursor=zzz", "cursor"},
		"cursor NUL":           {"cursor=%00", "cursor"},
		"cursor upper-case":    {"cursor=0190C0DE-0000-7000-8000-000000000000", "cursor"},
		"limit zero":           {"limit=0", "limit"},
		"limit negative":       {"limit=-1", "limit"},
		"limit over max":       {"limit=201", "limit"},
		"limit not a number":   {"limit=ten", "limit"},
		"limit overflowing":    {"limit=99999999999999999999", "limit"},
		"limit float":          {"limit=1.5", "limit"},
	}

	// Malformed bodies, the same for every route that reads one.
	malformed := func(route, method, path string) {
		for name, c := range map[string]struct {
			body   any
			status int
		}{
			"empty body":             {"", 400},
			"whitespace":             {" \n\t", 400},
			"truncated":              {`{"user_id":"a","curr`, 400},
			"truncated after colon":  {`{"status":`, 400},
			"unterminated string":    {`{"status":"paid`, 400},
			"trailing comma":         {`{"status":"paid",}`, 400},
			"single quotes":          {`{'status':'paid'}`, 400},
			"not an object":          {`[1,2]`, 400},
			"a string":               {`"paid"`, 400},
			"a number":               {`42`, 400},
			"two values":             {`{}{}`, 400},
			"raw NUL":                {"{\"status\":\"pa\x00id\"}", 400},
			"raw CRLF in string":     {"{\"status\":\"pa\r\nid\"}", 400},
			"invalid UTF-8":          {"{\"status\":\"pa\xffid\"}", 400},
			"UTF-16 BOM":             {"\xfe\xff{}", 400},
			"100k nested arrays":     {nested(100_000), 400},
			"100k nested in a field": {`{"items":` + nested(100_000) + `}`, 400},
			"10k nested objects":     {strings.Repeat(`{"a":`, 10_000) + "1" + strings.Repeat("}", 10_000), 400},
			"over the limit":         {`{"comment":"` + strings.Repeat("x", hostileMaxBody) + `"}`, 413},
			"far over the limit":     {strings.Repeat(" ", hostileMaxBody+200_000) + "{}", 413},
		} {
			add(route+"/"+name, method, path, c.body, c.status, "")
		}
		add(route+"/text/plain", method, path, `{}`, 415, "", "Content-Type", "text/plain")
		add(route+"/form", method, path, `status=paid`, 415, "", "Content-Type", "application/x-www-form-urlencoded")
		add(route+"/bad media type", method, path, `{}`, 415, "", "Content-Type", "application/json; ==")
	}

	// POST /v1/orders
	order := map[string]any{
		"user_id": "mallory", "currency": "EUR", "comment": "hi",
		"items": []map[string]any{{"sku": "TEA-1", "name": "Tea", "quantity": 1, "unit_price": 100}},
	}
	item := func(set map[string]any) map[string]any {
		it := map[string]any{"sku": "TEA-1", "name": "Tea", "quantity": 1, "unit_price": 100}
		maps.Copy(it, set)
		return map[string]any{"items": []map[string]any{it}}
	}
	malformed("orders create", "POST", "/v1/orders")
	for name, value := range map[string]string{"CRLF": crlf, "LF": lf, "CR": "x\ry", "NUL": nul, "U+2028": "x\u2028y", "escape": "x\x1b[31my", "DEL": "x\x7fy", "C1 NEL": "x\u0085y"} {
		add("orders create/"+name+" in user_id", "POST", "/v1/orders", jsonObject(order, map[string]any{"user_id": value}), 400, "/user_id")
		add("orders create/"+name+" in currency", "POST", "/v1/orders", jsonObject(order, map[string]any{"currency": "EU" + value}), 400, "/currency")
		add("orders create/"+name+" in sku", "POST", "/v1/orders", jsonObject(order, item(map[string]any{"sku": value})), 400, "/items/0/sku")
		add("orders create/"+name+" in name", "POST", "/v1/orders", jsonObject(order, item(map[string]any{"name": value})), 400, "/items/0/name")
		if name != "LF" { // a comment may have several lines, but no CR
			add("orders create/"+name+" in comment", "POST", "/v1/orders", jsonObject(order, map[string]any{"comment": value}), 400, "/comment")
		}
	}
	for name, c := range map[string]struct {
		set   map[string]any
		field string
	}{
		"user_id a number":         {map[string]any{"user_id": 7}, "/user_id"},
		"user_id missing":          {map[string]any{"user_id": nil}, "/user_id"},
		"user_id SQL":              {map[string]any{"user_id": sqlQuote}, "/user_id"},
		"user_id too long":         {map[string]any{"user_id": strings.Repeat("u", 129)}, "/user_id"},
		"items an object":          {map[string]any{"items": map[string]any{"sku": "A"}}, "/items"},
		"items empty, no total":    {map[string]any{"items": []any{}}, "/items"},
		"101 items":                {map[string]any{"items": manyItems(101)}, "/items"},
		"unknown field":            {map[string]any{"admin": true}, "/admin"},
		"unknown field id":         {map[string]any{"id": "0190c0de-0000-7000-8000-000000000000"}, "/id"},
		"unknown field status":     {map[string]any{"status": "paid"}, "/status"},
		"total a string":           {map[string]any{"total": "100"}, "/total"},
		"total a float":            {map[string]any{"total": 1.5}, "/total"},
		"total a bool":             {map[string]any{"total": true}, "/total"},
		"total negative":           {map[string]any{"items": nil, "total": -1}, "/total"},
		"total over max":           {map[string]any{"items": nil, "total": json.Number("1000000000000000001")}, "/total"},
		"total overflowing int64":  {map[string]any{"items": nil, "total": json.Number("9223372036854775808")}, "/total"},
		"total 1e19":               {map[string]any{"items": nil, "total": json.Number("1e19")}, "/total"},
		"total disagrees":          {map[string]any{"total": 1}, "/total"},
		"quantity zero":            {item(map[string]any{"quantity": 0}), "/items/0/quantity"},
		"quantity negative":        {item(map[string]any{"quantity": -1}), "/items/0/quantity"},
		"quantity over max":        {item(map[string]any{"quantity": 1_000_001}), "/items/0/quantity"},
		"quantity a string":        {item(map[string]any{"quantity": "1"}), "/items/quantity"},
		"unit_price negative":      {item(map[string]any{"unit_price": -100}), "/items/0/unit_price"},
		"unit_price min int64":     {item(map[string]any{"unit_price": json.Number("-9223372036854775808")}), "/items/0/unit_price"},
		"unit_price overflowing":   {item(map[string]any{"unit_price": json.Number("18446744073709551616")}), "/items/unit_price"},
		"line total overflowing":   {item(map[string]any{"quantity": 2, "unit_price": json.Number("1000000000000000")}), "/items/0"},
		"line total over int64":    {item(map[string]any{"quantity": 1_000_000, "unit_price": json.Number("999999999999999")}), "/items/0"},
		"item unknown field":       {item(map[string]any{"discount": 5}), "/discount"},
		"sku empty":                {item(map[string]any{"sku": ""}), "/items/0/sku"},
		"sku SQL":                  {item(map[string]any{"sku": sqlQuote}), "/items/0/sku"},
		"name blank":               {item(map[string]any{"name": "   "}), "/items/0/name"},
		"name too long":            {item(map[string]any{"name": strings.Repeat("n", 201)}), "/items/0/name"},
		"comment too long":         {map[string]any{"comment": strings.Repeat("€", 1001)}, "/comment"},
		"currency lower case":      {map[string]any{"currency": "eur"}, "/currency"},
		"currency four letters":    {map[string]any{"currency": "EURO"}, "/currency"},
		"currency unknown":         {map[string]any{"currency": "ZZZ"}, "/currency"},
		"currency XXX":             {map[string]any{"currency": "XXX"}, "/currency"},
		"currency XTS":             {map[string]any{"currency": "XTS"}, "/currency"},
		"currency symbol":          {map[string]any{"currency": "€"}, "/currency"},
		"currency empty":           {map[string]any{"currency": ""}, "/currency"},
		"currency SQL":             {map[string]any{"currency": "E'--"}, "/currency"},
		"currency full-width":      {map[string]any{"currency": "ＥＵＲ"}, "/currency"},
		"currency with NUL inside": {map[string]any{"currency": "E\x00R"}, "/currency"},
	} {
		add("orders create/"+name, "POST", "/v1/orders", jsonObject(order, c.set), 400, c.field)
	}
	valid := jsonObject(order, nil)
	for name, key := range map[string]string{
		"space":      "a b",
		"non-ASCII":  "ключ",
		"256 chars":  strings.Repeat("k", 256),
		"tab inside": "a\tb",
	} {
		add("orders create/Idempotency-Key "+name, "POST", "/v1/orders", valid, 400, "Idempotency-Key", "Idempotency-Key", key)
	}

	// GET /v1/orders/{id}, GET /v1/orders
	for name, id := range badIDs {
		add("orders get/"+name, "GET", "/v1/orders/"+id, nil, 404, "")
	}
	for name, q := range badQuery {
		add("orders list/"+name, "GET", "/v1/orders?"+q.query, nil, 400, q.field)
	}

	// POST /v1/orders/{id}/status
	statusPath := "/v1/orders/" + orderID + "/status"
	malformed("orders status", "POST", statusPath)
	for name, body := range map[string]string{
		"status a number":   `{"status":1}`,
		"status an array":   `{"status":["paid"]}`,
		"status null":       `{"status":null}`,
		"status missing":    `{}`,
		"status unknown":    `{"status":"lost"}`,
		"status created":    `{"status":"created"}`,
		"status upper case": `{"status":"PAID"}`,
		"status CRLF":       `{"status":"paid\r\nX-Injected: 1"}`,
		"status NUL":        `{"status":"paid\u0000"}`,
		"status SQL":        `{"status":"paid'; UPDATE orders SET status='delivered'; --"}`,
		"status padded":     `{"status":" paid"}`,
	} {
		add("orders status/"+name, "POST", statusPath, body, 400, "/status")
	}
	add("orders status/unknown field", "POST", statusPath, `{"status":"paid","version":9}`, 400, "/version")
	add("orders status/forbidden transition", "POST", statusPath, `{"status":"delivered"}`, 409, "")
	for name, id := range badIDs {
		add("orders status/"+name, "POST", "/v1/orders/"+id+"/status", `{"status":"paid"}`, 404, "")
	}

	// POST /v1/subscriptions
	subscription := map[string]any{"user_id": "mallory", "channel": "email", "address": "m@example.com", "patterns": []string{"orders.#"}}
	webhookSub := func(url string) string {
		return jsonObject(subscription, map[string]any{"channel": "webhook", "address": url})
	}
	malformed("subscriptions create", "POST", "/v1/subscriptions")
	for name, value := range map[string]string{"CRLF": crlf, "LF": lf, "CR": "x\ry", "NUL": nul, "escape": "x\x1b[2Jy"} {
		add("subscriptions create/"+name+" in user_id", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"user_id": value}), 400, "/user_id")
		add("subscriptions create/"+name+" in channel", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"channel": "email" + value}), 400, "/channel")
		add("subscriptions create/"+name+" in address", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"address": "m@example.com" + value}), 400, "/address")
		add("subscriptions create/"+name+" in local part", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"address": value + "@example.com"}), 400, "/address")
		add("subscriptions create/"+name+" in webhook", "POST", "/v1/subscriptions", webhookSub("https://hooks.example.com/"+value), 400, "/address")
		add("subscriptions create/"+name+" in pattern", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"patterns": []string{"orders.#" + value}}), 400, "/patterns/0")
		add("subscriptions create/"+name+" in scope", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"scope": "own" + value}), 400, "/scope")
		add("subscriptions create/"+name+" in filter", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"filter": "data.total > 0" + value}), 400, "/filter")
		add("subscriptions create/"+name+" in filter string", "POST", "/v1/subscriptions", jsonObject(subscription, map[string]any{"filter": `data.comment == "` + value + `"`}), 400, "/filter")
	}
	for name, c := range map[string]struct {
		set    map[string]any
		status int
		field  string
	}{
		"user_id a number":        {map[string]any{"user_id": 1}, 400, "/user_id"},
		"user_id SQL":             {map[string]any{"user_id": "m'; DROP TABLE subscriptions; --"}, 400, "/user_id"},
		"user_id missing":         {map[string]any{"user_id": nil}, 400, "/user_id"},
		"channel sms":             {map[string]any{"channel": "sms"}, 400, "/channel"},
		"channel empty":           {map[string]any{"channel": ""}, 400, "/channel"},
		"channel upper case":      {map[string]any{"channel": "EMAIL"}, 400, "/channel"},
		"address an object":       {map[string]any{"address": map[string]any{}}, 400, "/address"},
		"address empty":           {map[string]any{"address": ""}, 400, "/address"},
		"address display name":    {map[string]any{"address": "Mallory <m@example.com>"}, 400, "/address"},
		"address quoted name":     {map[string]any{"address": `"Mallory" <m@example.com>`}, 400, "/address"},
		"address encoded name":    {map[string]any{"address": "=?utf-8?q?=0D=0ABcc:_v@example.com?= <m@example.com>"}, 400, "/address"},
		"address angle brackets":  {map[string]any{"address": "<m@example.com>"}, 400, "/address"},
		"address two":             {map[string]any{"address": "m@example.com, v@example.com"}, 400, "/address"},
		"address group":           {map[string]any{"address": "all: m@example.com, v@example.com;"}, 400, "/address"},
		"address comment":         {map[string]any{"address": "m@example.com (Mallory)"}, 400, "/address"},
		"address header smuggled": {map[string]any{"address": "m@example.com\r\nBcc: v@example.com"}, 400, "/address"},
		"address no at":           {map[string]any{"address": "mallory"}, 400, "/address"},
		"address domain literal":  {map[string]any{"address": "m@[127.0.0.1]"}, 400, "/address"},
		"address IPv6 literal":    {map[string]any{"address": "m@[IPv6:::1]"}, 400, "/address"},
		"address too long":        {map[string]any{"address": strings.Repeat("m", 250) + "@example.com"}, 400, "/address"},
		"address SQL":             {map[string]any{"address": "m@example.com'; DROP TABLE subscriptions; --"}, 400, "/address"},
		"patterns missing":        {map[string]any{"patterns": nil}, 400, "/patterns"},
		"patterns empty":          {map[string]any{"patterns": []string{}}, 400, "/patterns"},
		"patterns a string":       {map[string]any{"patterns": "orders.#"}, 400, "/patterns"},
		"patterns 21":             {map[string]any{"patterns": manyPatterns(21)}, 400, "/patterns"},
		"pattern empty":           {map[string]any{"patterns": []string{""}}, 400, "/patterns/0"},
		"pattern empty segment":   {map[string]any{"patterns": []string{"orders..created"}}, 400, "/patterns/0"},
		"pattern upper case":      {map[string]any{"patterns": []string{"Orders.*"}}, 400, "/patterns/0"},
		"pattern double star":     {map[string]any{"patterns": []string{"orders.**"}}, 400, "/patterns/0"},
		"pattern trailing dot":    {map[string]any{"patterns": []string{"orders.order.created."}}, 400, "/patterns/0"},
		"pattern 11 segments":     {map[string]any{"patterns": []string{"a.b.c.d.e.f.g.h.i.j.k"}}, 400, "/patterns/0"},
		"pattern 256 characters":  {map[string]any{"patterns": []string{strings.Repeat("a", 256)}}, 400, "/patterns/0"},
		"pattern non-ASCII":       {map[string]any{"patterns": []string{"orders.order.créé"}}, 400, "/patterns/0"},
		"pattern regexp":          {map[string]any{"patterns": []string{"orders.(a+)+"}}, 400, "/patterns/0"},
		"pattern SQL":             {map[string]any{"patterns": []string{"orders.%'; DROP TABLE subscriptions; --"}}, 400, "/patterns/0"},
		"second pattern bad":      {map[string]any{"patterns": []string{"orders.#", "x y"}}, 400, "/patterns/1"},
		"filter incomplete":       {map[string]any{"filter": "data.total >"}, 400, "/filter"},
		"filter not a bool":       {map[string]any{"filter": "1 + 1"}, 400, "/filter"},
		"filter a string":         {map[string]any{"filter": `"true"`}, 400, "/filter"},
		"filter undeclared":       {map[string]any{"filter": "secret == 1"}, 400, "/filter"},
		"filter unknown function": {map[string]any{"filter": "system('id')"}, 400, "/filter"},
		"filter 2001 characters":  {map[string]any{"filter": "true" + strings.Repeat(" ", 1997)}, 400, "/filter"},
		"filter deep":             {map[string]any{"filter": strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300)}, 400, "/filter"},
		"filter SQL":              {map[string]any{"filter": "'; DROP TABLE subscriptions; --"}, 400, "/filter"},
		"filter a number":         {map[string]any{"filter": 1}, 400, "/filter"},
		"scope everyone":          {map[string]any{"scope": "everyone"}, 400, "/scope"},
		"scope all, not allowed":  {map[string]any{"scope": "all"}, 403, "/scope"},
		"unknown field":           {map[string]any{"admin": true}, 400, "/admin"},
		"webhook_secret given":    {map[string]any{"webhook_secret": "whsec_mine"}, 400, "/webhook_secret"},
		"id given":                {map[string]any{"id": "0190c0de-0000-7000-8000-000000000000"}, 400, "/id"},
		"status given":            {map[string]any{"status": "active"}, 400, "/status"},
	} {
		add("subscriptions create/"+name, "POST", "/v1/subscriptions", jsonObject(subscription, c.set), c.status, c.field)
	}
	// Webhooks: only https to a public host; never a private, loopback or
	// link-local address (EVENTFLOW_WEBHOOK_ALLOW_PRIVATE is off).
	for name, url := range map[string]string{
		"http to a public host":     "http://hooks.example.com/x",
		"http to loopback":          "http://127.0.0.1:9000/x",
		"loopback":                  "https://127.0.0.1/x",
		"loopback, other address":   "https://127.8.9.10/x",
		"loopback IPv6":             "https://[::1]/x",
		"localhost":                 "https://localhost/x",
		"a localhost subdomain":     "https://api.localhost/x",
		"unspecified":               "https://0.0.0.0/x",
		"unspecified IPv6":          "https://[::]/x",
		"private 10/8":              "https://10.0.0.1/x",
		"private 172.16/12":         "https://172.16.5.4/x",
		"private 192.168/16":        "https://192.168.1.1/x",
		"private IPv6 fd00::/8":     "https://[fd00::1]/x",
		"link-local metadata":       "https://169.254.169.254/latest/meta-data/",
		"link-local IPv6":           "https://[fe80::1]/x",
		"carrier-grade NAT":         "https://100.64.0.1/x",
		"IPv4-mapped private":       "https://[::ffff:10.0.0.1]/x",
		"IPv4-mapped loopback":      "https://[::ffff:127.0.0.1]/x",
		"NAT64 of loopback":         "https://[64:ff9b::7f00:1]/x",
		"6to4 of private":           "https://[2002:a00:1::]/x",
		"multicast":                 "https://224.0.0.1/x",
		"broadcast":                 "https://255.255.255.255/x",
		"decimal IPv4":              "https://2130706433/x",
		"hex IPv4":                  "https://0x7f000001/x",
		"short IPv4":                "https://127.1/x",
		"octal IPv4":                "https://0177.0.0.1/x",
		"IPv6 zone":                 "https://[fe80::1%25eth0]/x",
		"user info":                 "https://user:pass@hooks.example.com/x",
		"fragment":                  "https://hooks.example.com/x#frag",
		"ftp":                       "ftp://hooks.example.com/x",
		"file":                      "file:///etc/passwd",
		"gopher":                    "gopher://hooks.example.com/x",
		"javascript":                "javascript:alert(1)",
		"relative":                  "/hooks/x",
		"no host":                   "https:///x",
		"port zero":                 "https://hooks.example.com:0/x",
		"port out of range":         "https://hooks.example.com:65536/x",
		"2049 characters":           "https://hooks.example.com/" + strings.Repeat("p", 2049-len("https://hooks.example.com/")),
		"space in host":             "https://hooks example.com/x",
		"backslash trick":           `https://hooks.example.com\@127.0.0.1/x`,
		"empty":                     "",
		"email address as webhook":  "m@example.com",
		"scheme only":               "https:",
		"percent-encoded CRLF host": "https://hooks.example.com%0d%0a/x",
	} {
		add("subscriptions create/webhook "+name, "POST", "/v1/subscriptions", webhookSub(url), 400, "/address")
	}

	// GET /v1/subscriptions, GET|PATCH|DELETE /v1/subscriptions/{id}
	for name, q := range badQuery {
		add("subscriptions list/"+name, "GET", "/v1/subscriptions?"+q.query, nil, 400, q.field)
	}
	for name, id := range badIDs {
		add("subscriptions get/"+name, "GET", "/v1/subscriptions/"+id, nil, 404, "")
		add("subscriptions patch/"+name, "PATCH", "/v1/subscriptions/"+id, `{"status":"paused"}`, 404, "")
		add("subscriptions delete/"+name, "DELETE", "/v1/subscriptions/"+id, nil, 404, "")
	}
	subPath := "/v1/subscriptions/" + subID
	malformed("subscriptions patch", "PATCH", subPath)
	for name, c := range map[string]struct {
		body  string
		field string
	}{
		"status unsubscribed":   {`{"status":"unsubscribed"}`, "/status"},
		"status deleted":        {`{"status":"deleted"}`, "/status"},
		"status empty":          {`{"status":""}`, "/status"},
		"status CRLF":           {`{"status":"paused\r\n"}`, "/status"},
		"status NUL":            {`{"status":"paused\u0000"}`, "/status"},
		"status a number":       {`{"status":1}`, "/status"},
		"patterns empty":        {`{"patterns":[]}`, "/patterns"},
		"patterns a string":     {`{"patterns":"orders.#"}`, "/patterns"},
		"pattern invalid":       {`{"patterns":["Orders"]}`, "/patterns/0"},
		"pattern CRLF":          {`{"patterns":["orders.#\r\nx"]}`, "/patterns/0"},
		"pattern NUL":           {`{"patterns":["orders.#\u0000"]}`, "/patterns/0"},
		"filter invalid":        {`{"filter":"1 + 1"}`, "/filter"},
		"filter CRLF":           {`{"filter":"true\r\n"}`, "/filter"},
		"filter NUL":            {`{"filter":"type == \"\u0000\""}`, "/filter"},
		"filter a number":       {`{"filter":1}`, "/filter"},
		"user_id cannot change": {`{"user_id":"victim"}`, "/user_id"},
		"address cannot change": {`{"address":"v@example.com"}`, "/address"},
		"channel cannot change": {`{"channel":"webhook"}`, "/channel"},
		"scope cannot change":   {`{"scope":"all"}`, "/scope"},
		"version cannot change": {`{"version":99}`, "/version"},
		"good then bad":         {`{"status":"paused","patterns":["x y"]}`, "/patterns/0"},
	} {
		add("subscriptions patch/"+name, "PATCH", subPath, c.body, 400, c.field)
	}

	// GET /v1/deliveries, GET /v1/deliveries/{id}, POST …/retry
	for name, q := range badQuery {
		add("deliveries list/"+name, "GET", "/v1/deliveries?"+q.query, nil, 400, q.field)
	}
	for name, c := range map[string]struct{ query, field string }{
		"event_id not a uuid":        {"event_id=x", "event_id"},
		"event_id SQL":               {"event_id=x'%20OR%20'1'='1", "event_id"},
		"event_id NUL":               {"event_id=%00", "event_id"},
		"subscription_id not a uuid": {"subscription_id=x", "subscription_id"},
		"subscription_id CRLF":       {"subscription_id=%0D%0A", "subscription_id"},
		"status unknown":             {"status=lost", "status"},
		"status SQL":                 {"status=sent'%20OR%20'1'='1", "status"},
		"status upper case":          {"status=SENT", "status"},
	} {
		add("deliveries list/"+name, "GET", "/v1/deliveries?"+c.query, nil, 400, c.field)
	}
	for name, id := range badIDs {
		add("deliveries get/"+name, "GET", "/v1/deliveries/"+id, nil, 404, "")
		add("deliveries retry/"+name, "POST", "/v1/deliveries/"+id+"/retry", nil, 404, "")
	}
	add("deliveries retry/a sent delivery", "POST", "/v1/deliveries/"+deliveryID+"/retry", nil, 409, "")
	add("deliveries retry/a sent delivery, with a body", "POST", "/v1/deliveries/"+deliveryID+"/retry", `{"status":"dead"}`, 409, "")

	// GET|POST /unsubscribe/{token}
	forged := make([]byte, 32)
	rand.Read(forged)
	for name, token := range map[string]string{
		"garbage":           "garbage",
		"forged":            base64.RawURLEncoding.EncodeToString(forged),
		"forged, padded":    base64.URLEncoding.EncodeToString(forged),
		"too short":         base64.RawURLEncoding.EncodeToString(forged[:31]),
		"too long":          base64.RawURLEncoding.EncodeToString(append(forged, 0)),
		"std alphabet":      base64.RawStdEncoding.EncodeToString(forged),
		"NUL":               "%00",
		"CRLF":              "%0D%0ASet-Cookie:%20x=1",
		"2000 characters":   strings.Repeat("A", 2000),
		"a subscription id": subID,
		"SQL":               "x'%20OR%20'1'='1",
		"invalid UTF-8":     "%FF",
	} {
		add("unsubscribe page/"+name, "GET", "/unsubscribe/"+token, nil, 404, "")
		add("unsubscribe/"+name, "POST", "/unsubscribe/"+token, "List-Unsubscribe=One-Click", 404, "", "Content-Type", "application/x-www-form-urlencoded")
	}

	// GET /v1/schemas/{type}/{version}
	for name, path := range map[string]string{
		"version 0":          "orders.order.created/v0",
		"version 2":          "orders.order.created/v2",
		"no v":               "orders.order.created/1",
		"vv1":                "orders.order.created/vv1",
		"negative":           "orders.order.created/v-1",
		"overflowing":        "orders.order.created/v99999999999999999999",
		"unknown type":       "orders.order.exploded/v1",
		"path traversal":     "%2e%2e%2f%2e%2e%2fetc%2fpasswd/v1",
		"NUL":                "orders.order.created%00/v1",
		"CRLF":               "orders.order.created%0D%0A/v1",
		"invalid UTF-8":      "%FF/v1",
		"upper case":         "Orders.Order.Created/v1",
		"version with space": "orders.order.created/v1%20",
	} {
		add("schemas/"+name, "GET", "/v1/schemas/"+path, nil, 404, "")
	}

	// Methods a route does not have, and routes that do not exist.
	for _, c := range []struct{ method, path string }{
		{"PUT", "/v1/orders"},
		{"DELETE", "/v1/orders"},
		{"PATCH", "/v1/orders/" + orderID},
		{"DELETE", "/v1/orders/" + orderID},
		{"GET", "/v1/orders/" + orderID + "/status"},
		{"PUT", "/v1/subscriptions/" + subID},
		{"POST", "/v1/subscriptions/" + subID},
		{"DELETE", "/v1/deliveries/" + deliveryID},
		{"GET", "/v1/deliveries/" + deliveryID + "/retry"},
		{"DELETE", "/unsubscribe/x"},
		{"POST", "/v1/schemas"},
		{"TRACE", "/v1/orders"},
	} {
		add("method/"+c.method+" "+c.path, c.method, c.path, nil, 405, "")
	}
	for _, p := range []string{"/v1/order", "/v2/orders", "/v1/orders/" + orderID + "/status/x", "/admin", "/v1/subscriptions/" + subID + "/secret"} {
		add("no route/"+p, "GET", p, nil, 404, "")
	}
	return cases
}

func manyItems(n int) []map[string]any {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"sku": fmt.Sprintf("SKU-%d", i), "name": "Item", "quantity": 1, "unit_price": 1}
	}
	return items
}

func manyPatterns(n int) []string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("orders.order.a%d", i)
	}
	return ps
}

// testLimitsAccepted sends requests at every limit, which must be stored
// and read back unchanged: on PostgreSQL they prove that no limit of the
// API lets through a value the database cannot index or store. Free text
// with SQL metacharacters is stored as it is, not interpreted.
func testLimitsAccepted(t *testing.T, a *app) {
	user := strings.Repeat("u", 128)
	items := make([]map[string]any, 100)
	for i := range items {
		items[i] = map[string]any{
			"sku":  fmt.Sprintf("%s-%02d", strings.Repeat("S", 61), i),
			"name": strings.Repeat("名", 200), "quantity": 1_000_000, "unit_price": 10_000_000,
		}
	}
	// 997 characters, 2,937 bytes, with SQL that must stay text.
	comment := strings.Repeat("€", 970) + "\n'); DROP TABLE orders; --\t"
	body := jsonObject(map[string]any{"user_id": user, "currency": "JPY", "items": items, "comment": comment}, nil)
	key := strings.Repeat("~", 255)
	r := a.do(t, "POST", "/v1/orders", body, "Idempotency-Key", key)
	if r.status != http.StatusCreated {
		t.Fatalf("an order at every limit: %d %s", r.status, r.body)
	}
	var o struct {
		ID      string `json:"id"`
		UserID  string `json:"user_id"`
		Comment string `json:"comment"`
		Total   int64  `json:"total"`
		Items   []any  `json:"items"`
	}
	a.do(t, "GET", "/v1/orders/"+extractID(t, r), nil).json(t, &o)
	if o.UserID != user || o.Comment != comment || o.Total != 1_000_000_000_000_000 || len(o.Items) != 100 {
		t.Fatalf("the order read back differs: user %q, total %d, %d items, comment %q", o.UserID, o.Total, len(o.Items), o.Comment)
	}
	if replay := a.do(t, "POST", "/v1/orders", body, "Idempotency-Key", key); replay.status != http.StatusCreated || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay with a 255-character key: %d %s", replay.status, replay.body)
	}

	patterns := make([]string, 20)
	for i := range patterns {
		// 10 segments, 255 characters each.
		p := fmt.Sprintf("p%02d", i) + strings.Repeat("."+strings.Repeat("a", 24), 9)
		patterns[i] = p + strings.Repeat("b", 255-len(p))
	}
	hook := "https://hooks.example.com/" + strings.Repeat("h", 2048-len("https://hooks.example.com/"))
	filter := `data.comment != "` + strings.Repeat("'; DROP TABLE subscriptions; --", 60) + `"`
	filter += strings.Repeat(" ", 2000-len(filter))
	sub := jsonObject(map[string]any{"user_id": user, "channel": "webhook", "address": hook, "patterns": patterns, "filter": filter}, nil)
	r = a.do(t, "POST", "/v1/subscriptions", sub)
	if r.status != http.StatusCreated {
		t.Fatalf("a subscription at every limit: %d %s", r.status, r.body)
	}
	var s struct {
		Address  string   `json:"address"`
		Patterns []string `json:"patterns"`
		Filter   string   `json:"filter"`
	}
	a.do(t, "GET", "/v1/subscriptions/"+extractID(t, r), nil).json(t, &s)
	if s.Address != hook || len(s.Patterns) != 20 || s.Filter != filter {
		t.Fatalf("the subscription read back differs: %d patterns, address %d bytes, filter %q", len(s.Patterns), len(s.Address), s.Filter)
	}
	// The same subscription again is a conflict, found through the
	// uniqueness index over these long values.
	if r := a.do(t, "POST", "/v1/subscriptions", sub); r.status != http.StatusConflict {
		t.Fatalf("the same subscription again: %d %s", r.status, r.body)
	}
	local := strings.Repeat("l", 64)
	email := local + "@" + strings.Repeat("d", 63) + "." + strings.Repeat("e", 63) + "." + strings.Repeat("f", 57) + ".com"
	if len(email) != 254 {
		t.Fatalf("test address is %d characters", len(email))
	}
	r = a.do(t, "POST", "/v1/subscriptions", jsonObject(map[string]any{"user_id": user, "channel": "email", "address": email, "patterns": []string{"orders.#"}}, nil))
	if r.status != http.StatusCreated {
		t.Fatalf("a 254-character email address: %d %s", r.status, r.body)
	}
	// The tables the SQL in the text named are still there.
	if r := a.do(t, "GET", "/v1/orders?user_id="+user, nil); r.status != 200 || !strings.Contains(string(r.body), `DROP TABLE orders`) {
		t.Fatalf("list after storing SQL text: %d", r.status)
	}
	start := time.Now()
	if r := a.do(t, "GET", "/v1/subscriptions?user_id="+user, nil); r.status != 200 {
		t.Fatalf("list subscriptions: %d", r.status)
	}
	t.Logf("limits accepted and read back (list took %v)", time.Since(start).Round(time.Millisecond))
}

func extractID(t *testing.T, r response) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	r.json(t, &v)
	if v.ID == "" {
		t.Fatalf("no id in %s", r.body)
	}
	return v.ID
}
