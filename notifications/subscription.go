// Package notifications is the whole notifications domain: subscriptions to
// order events, matching an event to the subscriptions that want it, the
// delivery records that make each notification happen exactly once, and the
// delivery workers that send them by email or webhook with retries.
//
// The notifier reads events through a consumer it does not know the broker
// of: it gets event.Event values and hands back an error. Storage is behind
// Store; senders are behind Sender.
package notifications

import (
	"time"
)

// Channel is how a subscriber is notified.
type Channel string

const (
	ChannelEmail   Channel = "email"
	ChannelWebhook Channel = "webhook"
)

// Scope says whose orders a subscription hears about.
type Scope string

const (
	// ScopeOwn, the default, is events about the subscriber's own orders
	// (the event data's user_id is the subscription's user_id).
	ScopeOwn Scope = "own"
	// ScopeAll is events about every order; only callers allowed to may
	// create such a subscription.
	ScopeAll Scope = "all"
)

// SubscriptionStatus says whether a subscription is notified.
type SubscriptionStatus string

const (
	StatusActive SubscriptionStatus = "active"
	StatusPaused SubscriptionStatus = "paused"
	// StatusUnsubscribed is set by the one-click unsubscribe link; the
	// subscription is kept, so the activity log still explains it.
	StatusUnsubscribed SubscriptionStatus = "unsubscribed"
)

// Subscription is someone's wish to be notified of some events.
type Subscription struct {
	ID     string  `json:"id"`
	UserID string  `json:"user_id"`
	Chan   Channel `json:"channel"`
	// Address is an email address or a webhook URL.
	Address string `json:"address"`
	// Patterns are event-type patterns; see Pattern.
	Patterns []string `json:"patterns"`
	Scope    Scope    `json:"scope"`
	// Filter is a CEL expression over the event; empty matches every event.
	Filter string             `json:"filter,omitempty"`
	Status SubscriptionStatus `json:"status"`
	// WebhookSecret signs webhook calls (Standard Webhooks); empty for
	// email. It is shown once, in the response that creates the
	// subscription, and never again.
	WebhookSecret string    `json:"-"`
	Version       int64     `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// SubscriptionFilter selects subscriptions to list.
type SubscriptionFilter struct {
	UserID string
	// Before is the pagination cursor: only ids smaller than it.
	Before string
	Limit  int
}
