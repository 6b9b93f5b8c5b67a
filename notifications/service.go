package notifications

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/eventflow/eventflow"
)

// Service manages subscriptions and the activity log of deliveries.
type Service struct {
	store   Store
	filters *Filters
	tokens  *Tokens
	cfg     ServiceConfig
}

// ServiceConfig tunes a Service.
type ServiceConfig struct {
	// AllowScopeAll lets admins create subscriptions of scope all, about
	// every user's orders; nobody else ever may. With API keys, serve sets
	// it: that is what an admin key is for. Without keys every caller is an
	// admin, and the EVENTFLOW_ALLOW_SCOPE_ALL setting decides.
	AllowScopeAll bool
	// ValidateWebhookURL checks a webhook URL (the webhook package's rules:
	// https, or http on loopback where allowed).
	ValidateWebhookURL func(string) error
	// NewWebhookSecret makes a webhook signing secret.
	NewWebhookSecret func() (string, error)
	// OnChange is called after any subscription change, so that a matcher
	// in this process reloads at once.
	OnChange func()
	Now      func() time.Time
}

// NewService returns a Service. tokens signs unsubscribe links.
func NewService(store Store, filters *Filters, tokens *Tokens, cfg ServiceConfig) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	return &Service{store: store, filters: filters, tokens: tokens, cfg: cfg}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// CreateSubscriptionRequest is what a caller gives to subscribe.
type CreateSubscriptionRequest struct {
	UserID   string   `json:"user_id"`
	Channel  Channel  `json:"channel"`
	Address  string   `json:"address"`
	Patterns []string `json:"patterns"`
	Scope    Scope    `json:"scope"`
	Filter   string   `json:"filter"`
}

// CreateSubscription validates req and stores the subscription. It is the
// caller's (req.UserID defaults to the caller's user); only an admin may
// subscribe another user, or ask for scope all: both are EFORBIDDEN errors.
func (s *Service) CreateSubscription(ctx context.Context, caller eventflow.Caller, req CreateSubscriptionRequest) (Subscription, error) {
	userID := caller.UserFor(req.UserID)
	if !eventflow.ValidUserID(userID) {
		return Subscription{}, eventflow.FieldError("/user_id", eventflow.UserIDRule)
	}
	sub := Subscription{
		UserID:   userID,
		Chan:     req.Channel,
		Address:  req.Address,
		Patterns: req.Patterns,
		Scope:    req.Scope,
		Filter:   req.Filter,
		Status:   StatusActive,
		Version:  1,
	}
	if sub.Scope == "" {
		sub.Scope = ScopeOwn
	}
	if err := s.validate(&sub); err != nil {
		return Subscription{}, err
	}
	if !caller.Owns(sub.UserID) {
		return Subscription{}, &eventflow.Error{Code: eventflow.EFORBIDDEN, Field: "/user_id",
			Message: "this API key may subscribe only its own user"}
	}
	if sub.Scope == ScopeAll {
		if err := s.mayWidenScope(caller); err != nil {
			return Subscription{}, err
		}
	}
	if sub.Chan == ChannelWebhook {
		secret, err := s.cfg.NewWebhookSecret()
		if err != nil {
			return Subscription{}, fmt.Errorf("webhook secret: %w", err)
		}
		sub.WebhookSecret = secret
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Subscription{}, err
	}
	sub.ID = id.String()
	sub.CreatedAt, sub.UpdatedAt = s.now(), s.now()
	if err := s.store.CreateSubscription(ctx, sub); err != nil {
		return Subscription{}, subscriptionError(err)
	}
	s.cfg.OnChange()
	return sub, nil
}

// mayWidenScope says whether the caller may create a subscription of scope
// all. A subscription keeps its scope for life, and its owner may pause,
// resume or change it without this permission.
func (s *Service) mayWidenScope(caller eventflow.Caller) error {
	switch {
	case !caller.Admin:
		return &eventflow.Error{Code: eventflow.EFORBIDDEN, Field: "/scope",
			Message: "subscribing to every user's orders needs an admin API key"}
	case !s.cfg.AllowScopeAll:
		return &eventflow.Error{Code: eventflow.EFORBIDDEN, Field: "/scope",
			Message: "subscribing to every user's orders is not allowed (EVENTFLOW_ALLOW_SCOPE_ALL)"}
	}
	return nil
}

// validate checks every field but the owner and the permission to widen
// the scope, normalising the patterns.
func (s *Service) validate(sub *Subscription) error {
	switch sub.Chan {
	case ChannelEmail:
		if err := validateEmail(sub.Address); err != nil {
			return eventflow.FieldError("/address", "%v", err)
		}
	case ChannelWebhook:
		if err := s.cfg.ValidateWebhookURL(sub.Address); err != nil {
			return eventflow.FieldError("/address", "%v", err)
		}
	default:
		return eventflow.FieldError("/channel", "must be email or webhook")
	}
	if len(sub.Patterns) == 0 || len(sub.Patterns) > 20 {
		return eventflow.FieldError("/patterns", "give 1 to 20 event-type patterns, such as orders.order.created or orders.order.*")
	}
	for i, p := range sub.Patterns {
		if _, err := ParsePattern(p); err != nil {
			return eventflow.FieldError(fmt.Sprintf("/patterns/%d", i), "%v", err)
		}
	}
	sub.Patterns = slices.Compact(slices.Sorted(slices.Values(sub.Patterns)))
	switch sub.Scope {
	case ScopeOwn, ScopeAll:
	default:
		return eventflow.FieldError("/scope", "must be own or all")
	}
	if sub.Filter != "" {
		if _, err := s.filters.Compile(sub.Filter); err != nil {
			return eventflow.FieldError("/filter", "invalid CEL expression: %v", err)
		}
	}
	return nil
}

func validateEmail(addr string) error {
	if len(addr) > 254 || strings.ContainsAny(addr, "\r\n") {
		return errors.New("must be an email address such as alice@example.com")
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil || parsed.Address != addr || parsed.Name != "" {
		return errors.New("must be an email address such as alice@example.com")
	}
	// A domain literal (alice@[10.0.0.1]) would have the mail server relay
	// to whatever address it names, private ones included.
	if strings.HasPrefix(addr[strings.LastIndex(addr, "@")+1:], "[") {
		return errors.New("must have a domain name, not an address in brackets")
	}
	return nil
}

func subscriptionError(err error) error {
	switch {
	case errors.Is(err, ErrDuplicateSubscription):
		return eventflow.Errorf(eventflow.ECONFLICT, "an equal subscription exists (same user, channel, address and patterns)")
	case errors.Is(err, ErrVersionConflict):
		return eventflow.Errorf(eventflow.ECONFLICT, "the subscription changed meanwhile; read it and retry")
	}
	return err
}

// Subscription returns the subscription with the id. Another user's is not
// found, just like one that does not exist, unless the caller is an admin.
func (s *Service) Subscription(ctx context.Context, caller eventflow.Caller, id string) (Subscription, error) {
	notFound := eventflow.Errorf(eventflow.ENOTFOUND, "subscription %q not found", id)
	if !eventflow.ValidUUID(id) {
		return Subscription{}, notFound
	}
	sub, err := s.store.Subscription(ctx, id)
	if eventflow.ErrorCode(err) == eventflow.ENOTFOUND || (err == nil && !caller.Owns(sub.UserID)) {
		return Subscription{}, notFound
	}
	return sub, err
}

// SubscriptionPage is one page of subscriptions.
type SubscriptionPage struct {
	Subscriptions []Subscription `json:"subscriptions"`
	NextCursor    string         `json:"next_cursor,omitempty"`
}

// Subscriptions lists a page of subscriptions, newest first: of userID, or
// of every user when it is empty; a caller who is not an admin sees only
// their own.
func (s *Service) Subscriptions(ctx context.Context, caller eventflow.Caller, userID, cursor string, limit int) (SubscriptionPage, error) {
	limit, err := eventflow.PageParams(userID, cursor, limit)
	if err != nil {
		return SubscriptionPage{}, err
	}
	userID, ok := caller.ListUser(userID)
	if !ok {
		return SubscriptionPage{Subscriptions: []Subscription{}}, nil
	}
	list, err := s.store.Subscriptions(ctx, SubscriptionFilter{UserID: userID, Before: cursor, Limit: limit + 1})
	if err != nil {
		return SubscriptionPage{}, err
	}
	page := SubscriptionPage{Subscriptions: list}
	if len(list) > limit {
		page.Subscriptions, page.NextCursor = list[:limit], list[limit-1].ID
	}
	return page, nil
}

// SubscriptionPatch changes a subscription; nil fields stay as they are.
type SubscriptionPatch struct {
	Status   *SubscriptionStatus `json:"status"`
	Patterns *[]string           `json:"patterns"`
	Filter   *string             `json:"filter"`
}

// UpdateSubscription applies patch: pause or resume, change patterns or
// filter. Another user's subscription is not found, unless the caller is an
// admin.
func (s *Service) UpdateSubscription(ctx context.Context, caller eventflow.Caller, id string, patch SubscriptionPatch) (Subscription, error) {
	if patch.Status != nil && *patch.Status != StatusActive && *patch.Status != StatusPaused {
		return Subscription{}, eventflow.FieldError("/status", "must be active or paused")
	}
	return s.update(ctx, caller, id, func(sub *Subscription) error {
		if patch.Status != nil {
			sub.Status = *patch.Status
		}
		if patch.Patterns != nil {
			sub.Patterns = *patch.Patterns
		}
		if patch.Filter != nil {
			sub.Filter = *patch.Filter
		}
		return s.validate(sub)
	})
}

// update applies change to the subscription, retrying when a concurrent
// change wins the race.
func (s *Service) update(ctx context.Context, caller eventflow.Caller, id string, change func(*Subscription) error) (Subscription, error) {
	for attempt := 0; ; attempt++ {
		sub, err := s.Subscription(ctx, caller, id)
		if err != nil {
			return Subscription{}, err
		}
		if err := change(&sub); err != nil {
			return Subscription{}, err
		}
		sub.Version++
		sub.UpdatedAt = s.now()
		err = s.store.UpdateSubscription(ctx, sub)
		if errors.Is(err, ErrVersionConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return Subscription{}, subscriptionError(err)
		}
		s.cfg.OnChange()
		return sub, nil
	}
}

// DeleteSubscription deletes a subscription; its deliveries stay in the
// activity log. Another user's subscription is not found, unless the caller
// is an admin.
func (s *Service) DeleteSubscription(ctx context.Context, caller eventflow.Caller, id string) error {
	// The owner of a subscription never changes, so checking it before
	// deleting leaves no window.
	if _, err := s.Subscription(ctx, caller, id); err != nil {
		return err
	}
	if err := s.store.DeleteSubscription(ctx, id); err != nil {
		return err
	}
	s.cfg.OnChange()
	return nil
}

// UnsubscribeTarget returns the subscription an unsubscribe token names.
func (s *Service) UnsubscribeTarget(ctx context.Context, token string) (Subscription, error) {
	id, ok := s.tokens.Parse(token)
	if !ok {
		return Subscription{}, eventflow.Errorf(eventflow.ENOTFOUND, "this unsubscribe link is not valid")
	}
	return s.store.Subscription(ctx, id)
}

// Unsubscribe ends the subscription a token names (RFC 8058 one-click). It
// is idempotent: a second click changes nothing and succeeds. The token is
// the credential: its holder acts for the subscription's owner.
func (s *Service) Unsubscribe(ctx context.Context, token string) (Subscription, error) {
	sub, err := s.UnsubscribeTarget(ctx, token)
	if err != nil || sub.Status == StatusUnsubscribed {
		return sub, err
	}
	return s.update(ctx, eventflow.Caller{UserID: sub.UserID}, sub.ID, func(sub *Subscription) error {
		sub.Status = StatusUnsubscribed
		return nil
	})
}

// DeliveryPage is one page of the activity log.
type DeliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// Deliveries lists a page of deliveries, newest first: of f.UserID, or of
// every user when it is empty; a caller who is not an admin sees only their
// own.
func (s *Service) Deliveries(ctx context.Context, caller eventflow.Caller, f DeliveryFilter) (DeliveryPage, error) {
	limit, err := eventflow.PageParams(f.UserID, f.Before, f.Limit)
	if err != nil {
		return DeliveryPage{}, err
	}
	switch {
	case f.EventID != "" && !eventflow.ValidUUID(f.EventID):
		return DeliveryPage{}, eventflow.FieldError("event_id", "must be an event id (a UUID)")
	case f.SubscriptionID != "" && !eventflow.ValidUUID(f.SubscriptionID):
		return DeliveryPage{}, eventflow.FieldError("subscription_id", "must be a subscription id (a UUID)")
	case f.Status != "" && !f.Status.Known():
		return DeliveryPage{}, eventflow.FieldError("status", "must be pending, sent or dead")
	}
	var ok bool
	if f.UserID, ok = caller.ListUser(f.UserID); !ok {
		return DeliveryPage{Deliveries: []Delivery{}}, nil
	}
	f.Limit = limit + 1
	list, err := s.store.Deliveries(ctx, f)
	if err != nil {
		return DeliveryPage{}, err
	}
	page := DeliveryPage{Deliveries: list}
	if len(list) > limit {
		page.Deliveries, page.NextCursor = list[:limit], list[limit-1].ID
	}
	return page, nil
}

// Delivery returns one delivery. Another user's is not found, just like
// one that does not exist, unless the caller is an admin.
func (s *Service) Delivery(ctx context.Context, caller eventflow.Caller, id string) (Delivery, error) {
	notFound := eventflow.Errorf(eventflow.ENOTFOUND, "delivery %q not found", id)
	if !eventflow.ValidUUID(id) {
		return Delivery{}, notFound
	}
	d, err := s.store.Delivery(ctx, id)
	if eventflow.ErrorCode(err) == eventflow.ENOTFOUND || (err == nil && !caller.Owns(d.UserID)) {
		return Delivery{}, notFound
	}
	return d, err
}

// RetryDelivery sends a dead delivery again. Another user's delivery is not
// found, unless the caller is an admin.
func (s *Service) RetryDelivery(ctx context.Context, caller eventflow.Caller, id string) (Delivery, error) {
	// A delivery's owner never changes, so checking it first leaves no
	// window.
	if _, err := s.Delivery(ctx, caller, id); err != nil {
		return Delivery{}, err
	}
	d, err := s.store.RetryDelivery(ctx, id, s.now())
	if errors.Is(err, ErrNotDead) {
		return Delivery{}, eventflow.Errorf(eventflow.ECONFLICT, "only a dead delivery can be retried")
	}
	return d, err
}
