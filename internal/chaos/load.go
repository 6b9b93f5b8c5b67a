package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventflow/eventflow/notifications"

	"github.com/eventflow/eventflow/internal/backoff"
)

// PlannedOrder is one order of the stream: when it is created, for whom,
// and the status changes it goes through after that.
type PlannedOrder struct {
	Key      string // Idempotency-Key of the creation
	User     string
	Currency string
	Total    int64
	At       time.Duration   // creation, from the start of the stream
	Steps    []string        // statuses after "created"
	Gaps     []time.Duration // wait before each step
}

// lifecycles are the paths an order may take, with their weights.
var lifecycles = []struct {
	steps  []string
	weight int
}{
	{nil, 15},
	{[]string{"paid"}, 10},
	{[]string{"paid", "shipped"}, 15},
	{[]string{"paid", "shipped", "delivered"}, 30},
	{[]string{"cancelled"}, 12},
	{[]string{"paid", "cancelled"}, 18},
}

// Users own the orders of the stream.
var Users = []string{"u0", "u1", "u2", "u3", "u4", "u5"}

// PlanOrders draws n orders created at rate per second.
func PlanOrders(rng *rand.Rand, n int, rate float64) []PlannedOrder {
	total := 0
	for _, l := range lifecycles {
		total += l.weight
	}
	orders := make([]PlannedOrder, n)
	for i := range orders {
		w := rng.IntN(total)
		var steps []string
		for _, l := range lifecycles {
			if w < l.weight {
				steps = l.steps
				break
			}
			w -= l.weight
		}
		o := PlannedOrder{
			Key:      fmt.Sprintf("chaos-%d-%d", rng.Int64(), i),
			User:     Users[rng.IntN(len(Users))],
			Currency: "EUR",
			Total:    100 + rng.Int64N(9900),
			At:       time.Duration(float64(i) / rate * float64(time.Second)),
			Steps:    steps,
		}
		if rng.IntN(10) < 3 {
			o.Currency = "USD"
		}
		for range steps {
			o.Gaps = append(o.Gaps, time.Duration(200+rng.IntN(3000))*time.Millisecond)
		}
		orders[i] = o
	}
	return orders
}

// SubSpec is a subscription the driver makes before the stream starts, with
// the rule, written again here on purpose, of which events it must hear of.
type SubSpec struct {
	Name     string
	User     string
	Patterns []string
	Scope    string
	Filter   string
	// State is active, paused (PATCH) or unsubscribed (the one-click link).
	State string
	// Wants says whether an event must be notified to it.
	Wants func(e CommittedEvent) bool

	ID      string // given by eventflow
	Address string
}

// Subscriptions are the subscriptions of every run. Their addresses are
// unique, so each email names its subscription.
func Subscriptions() []*SubSpec {
	own := func(user string, types ...string) func(CommittedEvent) bool {
		return func(e CommittedEvent) bool {
			if e.User != user {
				return false
			}
			if len(types) == 0 {
				return true
			}
			for _, t := range types {
				if e.Type == t {
					return true
				}
			}
			return false
		}
	}
	never := func(CommittedEvent) bool { return false }
	var subs []*SubSpec
	for i, u := range Users {
		subs = append(subs, &SubSpec{Name: "all-" + u, User: u, Patterns: []string{"orders.order.*"}, State: "active", Wants: own(u)})
		if i%2 == 0 {
			subs = append(subs, &SubSpec{Name: "lifecycle-" + u, User: u,
				Patterns: []string{"orders.order.created", "orders.order.cancelled"}, State: "active",
				Wants: own(u, "orders.order.created", "orders.order.cancelled")})
		}
	}
	subs = append(subs,
		&SubSpec{Name: "big-u0", User: "u0", Patterns: []string{"orders.#"}, Filter: "data.total >= 5000", State: "active",
			Wants: func(e CommittedEvent) bool { return e.User == "u0" && e.Total >= 5000 }},
		&SubSpec{Name: "big-u1", User: "u1", Patterns: []string{"orders.#"}, Filter: "data.total >= 5000", State: "active",
			Wants: func(e CommittedEvent) bool { return e.User == "u1" && e.Total >= 5000 }},
		&SubSpec{Name: "shipped-u1", User: "u1", Patterns: []string{"orders.*.shipped"}, State: "active",
			Wants: own("u1", "orders.order.shipped")},
		&SubSpec{Name: "small-eur-delivered-u5", User: "u5", Patterns: []string{"orders.order.delivered"},
			Filter: `data.currency == "EUR" && data.total < 3000`, State: "active",
			Wants: func(e CommittedEvent) bool {
				return e.User == "u5" && e.Type == "orders.order.delivered" && e.Currency == "EUR" && e.Total < 3000
			}},
		&SubSpec{Name: "auditor-usd-cancelled", User: "auditor", Patterns: []string{"orders.order.cancelled"},
			Scope: "all", Filter: `data.currency == "USD"`, State: "active",
			Wants: func(e CommittedEvent) bool { return e.Type == "orders.order.cancelled" && e.Currency == "USD" }},
		// Must hear nothing: paused, unsubscribed, a pattern no event has, a
		// user with no orders.
		&SubSpec{Name: "paused-u2", User: "u2", Patterns: []string{"orders.order.*"}, State: "paused", Wants: never},
		&SubSpec{Name: "unsubscribed-u3", User: "u3", Patterns: []string{"orders.#"}, State: "unsubscribed", Wants: never},
		&SubSpec{Name: "payments-u4", User: "u4", Patterns: []string{"payments.#"}, State: "active", Wants: never},
		&SubSpec{Name: "ghost", User: "ghost", Patterns: []string{"#"}, State: "active", Wants: never},
	)
	return subs
}

// API is eventflow's HTTP API as the driver uses it.
type API struct {
	Base   string
	Client *http.Client
}

func (a API) do(ctx context.Context, method, path string, body any, headers map[string]string, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := a.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return res.StatusCode, err
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(raw))
	}
	return res.StatusCode, nil
}

// CreateSubscriptions makes subs, with addresses unique to the run, and
// brings each to its state.
func (a API) CreateSubscriptions(ctx context.Context, run string, subs []*SubSpec, unsubscribeKey []byte) error {
	tokens := notifications.NewTokens(unsubscribeKey)
	for _, s := range subs {
		s.Address = s.Name + "." + run + "@chaos.test"
		req := map[string]any{"user_id": s.User, "channel": "email", "address": s.Address, "patterns": s.Patterns}
		if s.Scope != "" {
			req["scope"] = s.Scope
		}
		if s.Filter != "" {
			req["filter"] = s.Filter
		}
		var created struct {
			ID string `json:"id"`
		}
		if _, err := a.do(ctx, "POST", "/v1/subscriptions", req, nil, &created); err != nil {
			return fmt.Errorf("subscription %s: %w", s.Name, err)
		}
		s.ID = created.ID
		switch s.State {
		case "paused":
			if _, err := a.do(ctx, "PATCH", "/v1/subscriptions/"+s.ID, map[string]string{"status": "paused"}, nil, nil); err != nil {
				return fmt.Errorf("pause %s: %w", s.Name, err)
			}
		case "unsubscribed":
			// The one-click link of RFC 8058, as a mail client would use it.
			if _, err := a.do(ctx, "POST", "/unsubscribe/"+tokens.Token(s.ID), nil, nil, nil); err != nil {
				return fmt.Errorf("unsubscribe %s: %w", s.Name, err)
			}
		}
		var got struct {
			Status string `json:"status"`
		}
		if _, err := a.do(ctx, "GET", "/v1/subscriptions/"+s.ID, nil, nil, &got); err != nil {
			return err
		}
		if got.Status != s.State {
			return fmt.Errorf("subscription %s is %q, want %q", s.Name, got.Status, s.State)
		}
	}
	return nil
}

// LoadStats counts what the stream's requests got.
type LoadStats struct {
	Requests, Failed, Retried, Conflicts atomic.Int64
	Created, Abandoned                   atomic.Int64
}

// RunLoad plays orders against the API until all are done or ctx ends:
// each order is created at its time (retried with its Idempotency-Key) and
// then moved through its steps. HTTP answers decide nothing about the
// expected events (a request that timed out may have committed); they only
// steer the stream.
func RunLoad(ctx context.Context, api API, orders []PlannedOrder, inFlight int) *LoadStats {
	stats := &LoadStats{}
	sem := make(chan struct{}, inFlight)
	start := time.Now()
	var wg sync.WaitGroup
	for _, o := range orders {
		wg.Go(func() {
			if !sleepUntil(ctx, start.Add(o.At)) {
				return
			}
			id, ok := createOrder(ctx, api, o, sem, stats)
			if !ok {
				stats.Abandoned.Add(1)
				return
			}
			stats.Created.Add(1)
			for i, status := range o.Steps {
				if !backoff.Sleep(ctx, o.Gaps[i]) {
					return
				}
				if !changeStatus(ctx, api, id, status, sem, stats) {
					stats.Abandoned.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	return stats
}

// attempts bounds the tries of one request, requestTimeout each, and
// retryPause the pause before the next: together they ride out a database
// restart of half a minute.
const (
	attempts       = 10
	requestTimeout = 5 * time.Second
)

func retryPause(attempt int) time.Duration {
	return min(time.Duration(500*(attempt+1))*time.Millisecond, 3*time.Second)
}

func createOrder(ctx context.Context, api API, o PlannedOrder, sem chan struct{}, stats *LoadStats) (string, bool) {
	body := map[string]any{"user_id": o.User, "currency": o.Currency, "total": o.Total}
	for attempt := range attempts {
		var out struct {
			ID string `json:"id"`
		}
		status, err := call(ctx, api, "POST", "/v1/orders", body, map[string]string{"Idempotency-Key": o.Key}, &out, sem, stats)
		if err == nil {
			return out.ID, true
		}
		if status >= 400 && status < 500 && status != 408 && status != 429 {
			return "", false
		}
		stats.Retried.Add(1)
		if !backoff.Sleep(ctx, retryPause(attempt)) {
			return "", false
		}
	}
	return "", false
}

func changeStatus(ctx context.Context, api API, id, status string, sem chan struct{}, stats *LoadStats) bool {
	for attempt := range attempts {
		code, err := call(ctx, api, "POST", "/v1/orders/"+id+"/status", map[string]string{"status": status}, nil, nil, sem, stats)
		if err == nil {
			return true
		}
		if code == http.StatusConflict {
			// An earlier try may have committed and lost its answer: look.
			stats.Conflicts.Add(1)
			var o struct {
				Status string `json:"status"`
			}
			if _, err := call(ctx, api, "GET", "/v1/orders/"+id, nil, nil, &o, sem, stats); err == nil && o.Status == status {
				return true
			}
			return false
		}
		if code >= 400 && code < 500 && code != 408 && code != 429 {
			return false
		}
		stats.Retried.Add(1)
		if !backoff.Sleep(ctx, retryPause(attempt)) {
			return false
		}
	}
	return false
}

func call(ctx context.Context, api API, method, path string, body any, headers map[string]string, out any, sem chan struct{}, stats *LoadStats) (int, error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-sem }()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	stats.Requests.Add(1)
	code, err := api.do(rctx, method, path, body, headers, out)
	if err != nil {
		stats.Failed.Add(1)
	}
	return code, err
}

func sleepUntil(ctx context.Context, at time.Time) bool { return backoff.Sleep(ctx, time.Until(at)) }
