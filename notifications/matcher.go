package notifications

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eventflow/eventflow/event"
)

// Matcher finds the active subscriptions an event matches. It keeps them
// compiled in memory and reloads them when the store's subscriptions
// version moves: at once after a change in this process (Invalidate), and
// within RefreshEvery after a change made by another process.
type Matcher struct {
	store        Store
	filters      *Filters
	refreshEvery time.Duration
	log          *slog.Logger

	mu        sync.Mutex
	version   int64
	checkedAt time.Time
	subs      []compiledSubscription
	loaded    bool
}

type compiledSubscription struct {
	sub      Subscription
	patterns []Pattern
	filter   *Filter
}

// NewMatcher returns a Matcher over store's subscriptions.
func NewMatcher(store Store, filters *Filters, refreshEvery time.Duration, log *slog.Logger) *Matcher {
	if refreshEvery <= 0 {
		refreshEvery = time.Second
	}
	return &Matcher{store: store, filters: filters, refreshEvery: refreshEvery, log: log}
}

// Invalidate makes the next Match check for changes at once.
func (m *Matcher) Invalidate() {
	m.mu.Lock()
	m.checkedAt = time.Time{}
	m.mu.Unlock()
}

// Match returns the subscriptions e should be delivered to: active, with a
// pattern matching e's type, in scope (the event's order belongs to the
// subscriber, or the scope is all), and whose filter, if any, is true.
func (m *Matcher) Match(ctx context.Context, e event.Event) ([]Subscription, error) {
	subs, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	var owner struct {
		UserID string `json:"user_id"`
	}
	_ = json.Unmarshal(e.Data, &owner) // no user_id: only scope-all subscriptions match
	var out []Subscription
	for _, cs := range subs {
		if cs.sub.Scope != ScopeAll && cs.sub.UserID != owner.UserID {
			continue
		}
		if !matchesAny(cs.patterns, e.Type) {
			continue
		}
		if cs.filter != nil {
			ok, err := cs.filter.Match(e)
			if err != nil {
				m.log.Debug("filter failed; no match", "subscription", cs.sub.ID, "event", e.ID, "err", err)
			}
			if !ok {
				continue
			}
		}
		out = append(out, cs.sub)
	}
	return out, nil
}

func matchesAny(patterns []Pattern, eventType string) bool {
	for _, p := range patterns {
		if p.Match(eventType) {
			return true
		}
	}
	return false
}

// current returns the compiled subscriptions, reloading them if they changed.
func (m *Matcher) current(ctx context.Context) ([]compiledSubscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loaded && time.Since(m.checkedAt) < m.refreshEvery {
		return m.subs, nil
	}
	version, err := m.store.SubscriptionsVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscriptions version: %w", err)
	}
	m.checkedAt = time.Now()
	if m.loaded && version == m.version {
		return m.subs, nil
	}
	active, err := m.store.ActiveSubscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("load subscriptions: %w", err)
	}
	subs := make([]compiledSubscription, 0, len(active))
	for _, s := range active {
		cs := compiledSubscription{sub: s}
		for _, p := range s.Patterns {
			pat, err := ParsePattern(p)
			if err != nil {
				m.log.Warn("skipping a stored pattern that no longer parses", "subscription", s.ID, "pattern", p, "err", err)
				continue
			}
			cs.patterns = append(cs.patterns, pat)
		}
		if s.Filter != "" {
			f, err := m.filters.Compile(s.Filter)
			if err != nil {
				m.log.Warn("skipping a subscription whose filter no longer compiles", "subscription", s.ID, "err", err)
				continue
			}
			cs.filter = f
		}
		subs = append(subs, cs)
	}
	m.subs, m.version, m.loaded = subs, version, true
	return subs, nil
}
