package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventflow/eventflow/apikey"
)

// testKey is an API key made by `eventflow apikey new` for a test.
type testKey struct{ name, key, entry string }

// newAPIKey runs `eventflow apikey new` and reads the key and the entry it
// prints.
func newAPIKey(t *testing.T, name, user, scopes string) testKey {
	t.Helper()
	var out bytes.Buffer
	args := []string{"apikey", "new", "--name", name, "--scopes", scopes}
	if user != "" {
		args = append(args, "--user", user)
	}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("eventflow apikey new: %v", err)
	}
	k := testKey{name: name}
	for line := range strings.Lines(out.String()) {
		if v, ok := strings.CutPrefix(line, "key:"); ok {
			k.key = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "entry:"); ok {
			k.entry = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(k.key, apikey.Prefix) || !strings.HasPrefix(k.entry, name+"|"+apikey.Hash(k.key)+"|"+user+"|") {
		t.Fatalf("eventflow apikey new printed:\n%s", out.String())
	}
	return k
}

// auth is the header that presents the key.
func auth(k testKey) []string { return []string{"Authorization", "Bearer " + k.key} }

// syncBuffer collects a log written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// expectUnauthorized checks a 401 with its Bearer challenge, in which
// nothing the caller sent is repeated.
func expectUnauthorized(t *testing.T, r response, challenge, sent string) {
	t.Helper()
	expectProblem(t, r, http.StatusUnauthorized, "Authorization")
	if got := r.header.Get("WWW-Authenticate"); got != challenge {
		t.Fatalf("WWW-Authenticate = %q; want %q", got, challenge)
	}
	if sent != "" && bytes.Contains(r.body, []byte(sent)) {
		t.Fatalf("the 401 repeats the credential: %s", r.body)
	}
}

// expectForbiddenScope checks a 403 for a scope the key lacks.
func expectForbiddenScope(t *testing.T, r response, scope apikey.Scope) {
	t.Helper()
	expectProblem(t, r, http.StatusForbidden, "")
	want := `Bearer realm="eventflow", error="insufficient_scope", scope="` + string(scope) + `"`
	if got := r.header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("WWW-Authenticate = %q; want %q", got, want)
	}
}

type ownedDelivery struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	UserID         string `json:"user_id"`
}

// Every refusal of access control, on a running eventflow with API keys:
// 401 without a valid key, 403 without the scope or for another user, 404
// for another owner's objects, lists of one's own only, an admin who sees
// everything, open routes and unsubscribe links that need no key, and no
// key or hash in the log or the metrics.
func TestAccessControl(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		const writeAll = "orders:write,orders:read,subscriptions:write,subscriptions:read,deliveries:read,deliveries:write"
		alice := newAPIKey(t, "alice-app", "alice", writeAll)
		bob := newAPIKey(t, "bob-app", "bob", writeAll)
		admin := newAPIKey(t, "ops", "", "admin")
		keys := []testKey{alice, bob, admin}
		// only holds, for each scope but admin, a key of alice's with that
		// scope alone.
		only := map[apikey.Scope]testKey{}
		for _, s := range apikey.Scopes[:len(apikey.Scopes)-1] {
			only[s] = newAPIKey(t, "alice-"+strings.ReplaceAll(string(s), ":", "-"), "alice", string(s))
			keys = append(keys, only[s])
		}

		box, env := mailboxFor(t, tr)
		if env == nil {
			env = map[string]string{}
		}
		var entries []string
		for _, k := range keys {
			entries = append(entries, k.entry)
		}
		env["EVENTFLOW_API_KEYS"] = strings.Join(entries, " ; ")
		env["EVENTFLOW_LOG_LEVEL"] = "debug"
		var logs syncBuffer
		a := startAppLogging(t, tr, env, io.MultiWriter(&logs, testWriter{t}))

		// alice and bob each subscribe and order; the user id defaults to
		// the key's.
		aliceAddr, bobAddr := uniqueAddress("alice"), uniqueAddress("bob")
		var subA, subB subscriptionJSON
		r := a.do(t, "POST", "/v1/subscriptions", `{"channel":"email","address":"`+aliceAddr+`","patterns":["orders.order.*"]}`, auth(alice)...)
		if r.status != 201 {
			t.Fatalf("alice subscribes: %d %s", r.status, r.body)
		}
		r.json(t, &subA)
		r = a.do(t, "POST", "/v1/subscriptions", `{"user_id":"bob","channel":"email","address":"`+bobAddr+`","patterns":["orders.order.*"]}`, auth(bob)...)
		if r.status != 201 {
			t.Fatalf("bob subscribes: %d %s", r.status, r.body)
		}
		r.json(t, &subB)
		var orderA, orderB orderJSON
		r = a.do(t, "POST", "/v1/orders", `{"currency":"EUR","total":1500}`, auth(alice)...)
		if r.status != 201 {
			t.Fatalf("alice orders: %d %s", r.status, r.body)
		}
		r.json(t, &orderA)
		r = a.do(t, "POST", "/v1/orders", `{"user_id":"bob","currency":"EUR","total":900}`, auth(bob)...)
		if r.status != 201 {
			t.Fatalf("bob orders: %d %s", r.status, r.body)
		}
		r.json(t, &orderB)
		if subA.UserID != "alice" || orderA.UserID != "alice" {
			t.Fatalf("without user_id, alice's key made %+v and %+v", subA, orderA)
		}
		mailA := waitForMail(t, box, aliceAddr, 1)
		waitForMail(t, box, bobAddr, 1)
		deliveriesOf := func(k testKey, query string) []ownedDelivery {
			t.Helper()
			var page struct {
				Deliveries []ownedDelivery `json:"deliveries"`
			}
			r := a.do(t, "GET", "/v1/deliveries?"+query, nil, auth(k)...)
			if r.status != 200 {
				t.Fatalf("deliveries: %d %s", r.status, r.body)
			}
			r.json(t, &page)
			return page.Deliveries
		}
		ds := deliveriesOf(alice, "")
		if len(ds) != 1 || ds[0].SubscriptionID != subA.ID {
			t.Fatalf("alice's deliveries: %+v", ds)
		}
		deliveryA := ds[0]

		// protected is every route that needs a key, with the scope it
		// needs, its OpenAPI path, and a request to it on alice's objects.
		protected := []struct {
			method, path, body, spec string
			scope                    apikey.Scope
		}{
			{"POST", "/v1/orders", `{"user_id":"alice","currency":"EUR","total":1}`, "/v1/orders", apikey.OrdersWrite},
			{"GET", "/v1/orders", "", "/v1/orders", apikey.OrdersRead},
			{"GET", "/v1/orders/" + orderA.ID, "", "/v1/orders/{id}", apikey.OrdersRead},
			{"POST", "/v1/orders/" + orderA.ID + "/status", `{"status":"cancelled"}`, "/v1/orders/{id}/status", apikey.OrdersWrite},
			{"POST", "/v1/subscriptions", `{"user_id":"alice","channel":"email","address":"x@example.com","patterns":["#"]}`, "/v1/subscriptions", apikey.SubscriptionsWrite},
			{"GET", "/v1/subscriptions", "", "/v1/subscriptions", apikey.SubscriptionsRead},
			{"GET", "/v1/subscriptions/" + subA.ID, "", "/v1/subscriptions/{id}", apikey.SubscriptionsRead},
			{"PATCH", "/v1/subscriptions/" + subA.ID, `{"status":"paused"}`, "/v1/subscriptions/{id}", apikey.SubscriptionsWrite},
			{"DELETE", "/v1/subscriptions/" + subA.ID, "", "/v1/subscriptions/{id}", apikey.SubscriptionsWrite},
			{"GET", "/v1/deliveries", "", "/v1/deliveries", apikey.DeliveriesRead},
			{"GET", "/v1/deliveries/" + deliveryA.ID, "", "/v1/deliveries/{id}", apikey.DeliveriesRead},
			{"POST", "/v1/deliveries/" + deliveryA.ID + "/retry", "", "/v1/deliveries/{id}/retry", apikey.DeliveriesWrite},
		}
		send := func(method, path, body string, headers ...string) response {
			t.Helper()
			if body == "" {
				return a.do(t, method, path, nil, headers...)
			}
			return a.do(t, method, path, body, headers...)
		}
		// unchanged checks that alice's order and subscription are as they
		// were: no refused request changed them.
		unchanged := func(t *testing.T) {
			t.Helper()
			var o orderJSON
			a.do(t, "GET", "/v1/orders/"+orderA.ID, nil, auth(alice)...).json(t, &o)
			var s subscriptionJSON
			a.do(t, "GET", "/v1/subscriptions/"+subA.ID, nil, auth(alice)...).json(t, &s)
			if o.Version != 1 || o.Status != "created" || s.Status != "active" {
				t.Fatalf("a refused request changed alice's order %+v or subscription %+v", o, s)
			}
		}

		t.Run("no key is 401", func(t *testing.T) {
			for _, p := range protected {
				expectUnauthorized(t, send(p.method, p.path, p.body), `Bearer realm="eventflow"`, "")
			}
			unchanged(t)
		})

		t.Run("a bad or malformed key is 401", func(t *testing.T) {
			unknown := apikey.Prefix + strings.Repeat("A", 43)
			invalid := `Bearer realm="eventflow", error="invalid_token"`
			noBearer := `Bearer realm="eventflow"`
			for _, c := range []struct{ header, challenge, sent string }{
				{"Bearer " + unknown, invalid, unknown},
				{"Bearer " + alice.key[:len(alice.key)-1], invalid, alice.key[:len(alice.key)-1]},
				{"Bearer " + alice.key + "x", invalid, alice.key},
				{"Bearer " + apikey.Hash(alice.key), invalid, apikey.Hash(alice.key)},
				{"Bearer", invalid, ""},
				{"Bearer  " + alice.key, invalid, alice.key},
				{"Bearer " + alice.key + " " + alice.key, invalid, alice.key},
				{"Bearer " + alice.key + ",", invalid, alice.key},
				{"Bearer " + strings.Repeat("a", 300), invalid, strings.Repeat("a", 300)},
				{"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+alice.key)), noBearer, alice.key},
				{"Token " + alice.key, noBearer, alice.key},
				{alice.key, noBearer, alice.key},
			} {
				for _, p := range protected[:3] {
					expectUnauthorized(t, send(p.method, p.path, p.body, "Authorization", c.header), c.challenge, c.sent)
				}
			}
			// Two Authorization headers, even both valid, are one too many.
			req, _ := http.NewRequest("GET", a.baseURL+"/v1/orders", nil)
			req.Header.Add("Authorization", "Bearer "+alice.key)
			req.Header.Add("Authorization", "Bearer "+alice.key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			expectUnauthorized(t, response{status: res.StatusCode, header: res.Header, body: body}, invalid, alice.key)
			// The scheme is case-insensitive (RFC 9110).
			if r := a.do(t, "GET", "/v1/orders/"+orderA.ID, nil, "Authorization", "bearer "+alice.key); r.status != 200 {
				t.Fatalf("lower-case bearer: %d %s", r.status, r.body)
			}
			unchanged(t)
		})

		t.Run("a missing scope is 403", func(t *testing.T) {
			for _, p := range protected {
				for scope, k := range only {
					if scope != p.scope {
						expectForbiddenScope(t, send(p.method, p.path, p.body, auth(k)...), p.scope)
					} else if p.method == "GET" {
						if r := send(p.method, p.path, p.body, auth(k)...); r.status != 200 {
							t.Fatalf("%s %s with %s: %d %s", p.method, p.path, scope, r.status, r.body)
						}
					}
				}
			}
			unchanged(t)
		})

		t.Run("acting for another user is 403", func(t *testing.T) {
			expectProblem(t, a.do(t, "POST", "/v1/orders", `{"user_id":"bob","currency":"EUR","total":1}`, auth(alice)...), 403, "/user_id")
			expectProblem(t, a.do(t, "POST", "/v1/subscriptions", `{"user_id":"bob","channel":"email","address":"x@example.com","patterns":["#"]}`, auth(alice)...), 403, "/user_id")
			expectProblem(t, a.do(t, "POST", "/v1/subscriptions", `{"channel":"email","address":"x@example.com","patterns":["#"],"scope":"all"}`, auth(alice)...), 403, "/scope")
			var page struct {
				Orders        []orderJSON        `json:"orders"`
				Subscriptions []subscriptionJSON `json:"subscriptions"`
			}
			a.do(t, "GET", "/v1/orders?user_id=bob", nil, auth(admin)...).json(t, &page)
			a.do(t, "GET", "/v1/subscriptions?user_id=bob", nil, auth(admin)...).json(t, &page)
			if len(page.Orders) != 1 || len(page.Subscriptions) != 1 {
				t.Fatalf("refused requests stored something for bob: %+v", page)
			}
			// An admin may widen the scope, for anyone.
			r := a.do(t, "POST", "/v1/subscriptions", `{"user_id":"carol","channel":"email","address":"`+uniqueAddress("carol")+`","patterns":["orders.order.paid"],"scope":"all"}`, auth(admin)...)
			if r.status != 201 {
				t.Fatalf("admin, scope all: %d %s", r.status, r.body)
			}
		})

		t.Run("another owner's object is 404", func(t *testing.T) {
			const none = "0190c0de-0000-7000-8000-000000000000"
			for _, c := range []struct{ method, path, body, id string }{
				{"GET", "/v1/orders/%s", "", orderA.ID},
				{"POST", "/v1/orders/%s/status", `{"status":"cancelled"}`, orderA.ID},
				{"GET", "/v1/subscriptions/%s", "", subA.ID},
				{"PATCH", "/v1/subscriptions/%s", `{"status":"paused"}`, subA.ID},
				{"DELETE", "/v1/subscriptions/%s", "", subA.ID},
				{"GET", "/v1/deliveries/%s", "", deliveryA.ID},
				{"POST", "/v1/deliveries/%s/retry", "", deliveryA.ID},
			} {
				foreign := expectProblem(t, send(c.method, fmt.Sprintf(c.path, c.id), c.body, auth(bob)...), 404, "")
				missing := expectProblem(t, send(c.method, fmt.Sprintf(c.path, none), c.body, auth(bob)...), 404, "")
				// Nothing tells another owner's object from none at all.
				if foreign.Detail != strings.ReplaceAll(missing.Detail, none, c.id) || foreign.Type != missing.Type {
					t.Fatalf("%s %s: %q vs %q", c.method, c.path, foreign.Detail, missing.Detail)
				}
			}
			unchanged(t)
		})

		t.Run("lists hold the caller's own", func(t *testing.T) {
			var orders struct {
				Orders []orderJSON `json:"orders"`
			}
			var subs struct {
				Subscriptions []subscriptionJSON `json:"subscriptions"`
			}
			for _, query := range []string{"", "?user_id=bob", "?limit=200"} {
				a.do(t, "GET", "/v1/orders"+query, nil, auth(bob)...).json(t, &orders)
				a.do(t, "GET", "/v1/subscriptions"+query, nil, auth(bob)...).json(t, &subs)
				if len(orders.Orders) != 1 || orders.Orders[0].ID != orderB.ID || len(subs.Subscriptions) != 1 || subs.Subscriptions[0].ID != subB.ID {
					t.Fatalf("bob lists %q: %+v %+v", query, orders, subs)
				}
				if ds := deliveriesOf(bob, strings.TrimPrefix(query, "?")); len(ds) != 1 || ds[0].UserID != "bob" {
					t.Fatalf("bob's deliveries %q: %+v", query, ds)
				}
			}
			a.do(t, "GET", "/v1/orders?user_id=alice", nil, auth(bob)...).json(t, &orders)
			a.do(t, "GET", "/v1/subscriptions?user_id=alice", nil, auth(bob)...).json(t, &subs)
			if len(orders.Orders) != 0 || len(subs.Subscriptions) != 0 {
				t.Fatalf("bob lists alice's: %+v %+v", orders, subs)
			}
			for _, q := range []string{"user_id=alice", "subscription_id=" + subA.ID} {
				if ds := deliveriesOf(bob, q); len(ds) != 0 {
					t.Fatalf("bob lists alice's deliveries by %s: %+v", q, ds)
				}
			}
		})

		t.Run("an admin sees and changes everything", func(t *testing.T) {
			var orders struct {
				Orders []orderJSON `json:"orders"`
			}
			a.do(t, "GET", "/v1/orders", nil, auth(admin)...).json(t, &orders)
			ids := []string{}
			for _, o := range orders.Orders {
				ids = append(ids, o.ID)
			}
			if !slices.Contains(ids, orderA.ID) || !slices.Contains(ids, orderB.ID) {
				t.Fatalf("admin lists %v", ids)
			}
			a.do(t, "GET", "/v1/orders?user_id=alice", nil, auth(admin)...).json(t, &orders)
			if len(orders.Orders) != 1 || orders.Orders[0].ID != orderA.ID {
				t.Fatalf("admin lists alice's: %+v", orders)
			}
			if ds := deliveriesOf(admin, ""); len(ds) < 2 {
				t.Fatalf("admin's deliveries: %+v", ds)
			}
			for _, p := range []string{"/v1/orders/" + orderA.ID, "/v1/subscriptions/" + subB.ID, "/v1/deliveries/" + deliveryA.ID} {
				if r := a.do(t, "GET", p, nil, auth(admin)...); r.status != 200 {
					t.Fatalf("admin GET %s: %d %s", p, r.status, r.body)
				}
			}
			if r := a.do(t, "POST", "/v1/orders/"+orderB.ID+"/status", `{"status":"paid"}`, auth(admin)...); r.status != 200 {
				t.Fatalf("admin changes bob's order: %d %s", r.status, r.body)
			}
			// Past access control, a retry of a sent delivery is a conflict,
			// for its owner and for an admin alike.
			expectProblem(t, a.do(t, "POST", "/v1/deliveries/"+deliveryA.ID+"/retry", nil, auth(alice)...), 409, "")
			expectProblem(t, a.do(t, "POST", "/v1/deliveries/"+deliveryA.ID+"/retry", nil, auth(admin)...), 409, "")
		})

		t.Run("open routes need no key", func(t *testing.T) {
			for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/schemas", "/v1/schemas/orders.order.created/v1"} {
				if r := a.do(t, "GET", p, nil); r.status != 200 {
					t.Fatalf("GET %s without a key: %d %s", p, r.status, r.body)
				}
			}
		})

		t.Run("openapi.json says what is enforced", func(t *testing.T) {
			type operation struct {
				Security  []map[string][]string `json:"security"`
				Responses map[string]any        `json:"responses"`
			}
			var spec struct {
				Paths      map[string]map[string]operation `json:"paths"`
				Components struct {
					SecuritySchemes map[string]struct{ Type, Scheme string } `json:"securitySchemes"`
				} `json:"components"`
			}
			a.do(t, "GET", "/openapi.json", nil).json(t, &spec)
			if s := spec.Components.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
				t.Fatalf("securitySchemes: %+v", spec.Components.SecuritySchemes)
			}
			for _, p := range protected {
				op := spec.Paths[p.spec][strings.ToLower(p.method)]
				if len(op.Security) != 1 || !slices.Equal(op.Security[0]["bearer"], []string{string(p.scope)}) || op.Responses["401"] == nil || op.Responses["403"] == nil {
					t.Errorf("%s %s: security %v, responses 401 %v, 403 %v", p.method, p.spec, op.Security, op.Responses["401"], op.Responses["403"])
				}
			}
			for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/schemas", "/unsubscribe/{token}"} {
				if op, ok := spec.Paths[p]["get"]; !ok || op.Security == nil || len(op.Security) != 0 {
					t.Errorf("GET %s: security %v; want [] (open)", p, op.Security)
				}
			}
		})

		t.Run("the unsubscribe link needs no key", func(t *testing.T) {
			link := strings.TrimPrefix(strings.Trim(mailA[0].header("List-Unsubscribe"), "<>"), a.baseURL)
			if r := a.do(t, "GET", link, nil); r.status != 200 || !strings.Contains(string(r.body), "<form") {
				t.Fatalf("unsubscribe page: %d %s", r.status, r.body)
			}
			if r := a.do(t, "POST", link, "List-Unsubscribe=One-Click", "Content-Type", "application/x-www-form-urlencoded"); r.status != 200 {
				t.Fatalf("one-click unsubscribe: %d %s", r.status, r.body)
			}
			var s subscriptionJSON
			a.do(t, "GET", "/v1/subscriptions/"+subA.ID, nil, auth(alice)...).json(t, &s)
			if s.Status != "unsubscribed" {
				t.Fatalf("after the one-click POST: %+v", s)
			}
		})

		metrics := string(a.do(t, "GET", "/metrics", nil).body)
		a.stop()
		log := logs.String()
		for _, k := range keys {
			for what, secret := range map[string]string{"key": k.key, "hash": apikey.Hash(k.key)} {
				if strings.Contains(log, secret) {
					t.Errorf("the log shows the %s of %s", what, k.name)
				}
				if strings.Contains(metrics, secret) {
					t.Errorf("the metrics show the %s of %s", what, k.name)
				}
			}
		}
		// The log was captured, at debug level, and names keys.
		for _, want := range []string{"access control is on", "alice-app", "alice-orders-read", "request refused: unknown API key", "request refused: missing scope"} {
			if !strings.Contains(log, want) {
				t.Errorf("the log lacks %q", want)
			}
		}
	})
}

// Without keys eventflow works as before, says loudly that access control
// is off, and serves the API on loopback only; key settings that cannot be
// right stop it before it starts.
func TestNoKeysIsLoopbackOnly(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		key := newAPIKey(t, "k", "alice", "orders:read")
		start := func(extra map[string]string) error {
			vars := map[string]string{}
			for k, v := range tr.env {
				vars[k] = v
			}
			for k, v := range extra {
				vars[k] = v
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var stderr syncBuffer
			err := run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, io.Discard, &stderr)
			if strings.Contains(stderr.String(), apikey.Hash(key.key)) || (err != nil && strings.Contains(err.Error(), apikey.Hash(key.key))) {
				t.Errorf("a refusal shows the key's hash: %v\n%s", err, stderr.String())
			}
			return err
		}
		for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
			err := start(map[string]string{"EVENTFLOW_HTTP_ADDR": addr})
			if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
				t.Fatalf("no keys on %s: err = %v", addr, err)
			}
		}
		bad := strings.Replace(key.entry, "|alice|", "||", 1) // no user, not admin
		if err := start(map[string]string{"EVENTFLOW_API_KEYS": bad}); err == nil || !strings.Contains(err.Error(), "EVENTFLOW_API_KEYS") {
			t.Fatalf("a key without user: err = %v", err)
		}
		if err := start(map[string]string{"EVENTFLOW_API_KEYS": key.entry, "EVENTFLOW_ALLOW_SCOPE_ALL": "true"}); err == nil {
			t.Fatal("keys and EVENTFLOW_ALLOW_SCOPE_ALL: started")
		}

		var logs syncBuffer
		a := startAppLogging(t, tr, nil, io.MultiWriter(&logs, testWriter{t}))
		if !strings.Contains(logs.String(), "ACCESS CONTROL IS OFF") {
			t.Fatalf("no warning that access control is off:\n%s", logs.String())
		}
		if r := a.do(t, "POST", "/v1/orders", `{"user_id":"alice","currency":"EUR","total":1}`); r.status != 201 {
			t.Fatalf("without keys, no key needed: %d %s", r.status, r.body)
		}
		// A key sent anyway changes nothing.
		if r := a.do(t, "GET", "/v1/orders", nil, auth(key)...); r.status != 200 {
			t.Fatalf("without keys, a key sent: %d %s", r.status, r.body)
		}
	})
}
