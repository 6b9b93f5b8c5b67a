package notifications

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventflow/eventflow/event"
)

// Notifier turns each consumed event into deliveries: it matches the event
// to subscriptions and, in one transaction, records the event as handled
// and creates one delivery per matching subscription. The consumer commits
// the event's offset only after HandleEvent returns nil, so a crash before
// that redelivers the event, and the inbox makes the redelivery a no-op.
type Notifier struct {
	store   Store
	matcher *Matcher
	cfg     NotifierConfig
	metrics *notifierMetrics
}

// NotifierConfig tunes a Notifier.
type NotifierConfig struct {
	// EventTTL is how old an event may be and still notify anyone; older
	// events are recorded as expired and skipped. Zero keeps every event.
	EventTTL time.Duration
	// Recorded is called after deliveries were created, to wake the
	// delivery workers in this process.
	Recorded func()
	Logger   *slog.Logger
	Now      func() time.Time
}

// NewNotifier returns a Notifier. reg may be nil.
func NewNotifier(store Store, matcher *Matcher, reg prometheus.Registerer, cfg NotifierConfig) *Notifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Recorded == nil {
		cfg.Recorded = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{store: store, matcher: matcher, cfg: cfg, metrics: newNotifierMetrics(reg)}
}

// HandleEvent records e and its deliveries. It returns an error only when
// that could not be done (the database is unreachable, say): the consumer
// then retries the same event rather than skipping it.
func (n *Notifier) HandleEvent(ctx context.Context, e event.Event) error {
	return n.HandleEvents(ctx, []event.Event{e})
}

// HandleEvents records events and their deliveries in one transaction, so
// that a batch costs one commit rather than one per event: all are
// recorded or, on an error, none is and the consumer retries the batch.
// An error marked event.Unprocessable means some event of the batch is
// refused by the store; the consumer then handles the events one by one to
// set that one aside.
func (n *Notifier) HandleEvents(ctx context.Context, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	now := n.cfg.Now().UTC().Truncate(time.Microsecond)
	records := make([]EventRecord, 0, len(events))
	for _, e := range events {
		if n.cfg.EventTTL > 0 && now.Sub(e.Time) > n.cfg.EventTTL {
			records = append(records, EventRecord{Event: e, Status: InboxExpired})
			continue
		}
		subs, err := n.matcher.Match(ctx, e)
		if err != nil {
			return err
		}
		deliveries := make([]Delivery, 0, len(subs))
		for _, s := range subs {
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			deliveries = append(deliveries, Delivery{
				ID:             id.String(),
				EventID:        e.ID,
				EventType:      e.Type,
				Subject:        e.Subject,
				SubscriptionID: s.ID,
				UserID:         s.UserID,
				Channel:        s.Chan,
				Address:        s.Address,
				Status:         DeliveryPending,
				NextAttemptAt:  now,
				CreatedAt:      now,
				UpdatedAt:      now,
			})
		}
		records = append(records, EventRecord{Event: e, Status: InboxHandled, Deliveries: deliveries})
	}
	var (
		created []bool
		err     error
	)
	if len(records) == 1 {
		// One event keeps the plain single-event path of the store.
		var c bool
		r := records[0]
		c, err = n.store.RecordEvent(ctx, r.Event, r.Status, r.Deliveries)
		created = []bool{c}
	} else {
		created, err = n.store.RecordEvents(ctx, records)
	}
	if err != nil {
		if len(records) == 1 {
			return fmt.Errorf("record event %s: %w", records[0].Event.ID, err)
		}
		return fmt.Errorf("record %d events: %w", len(records), err)
	}
	woke := false
	for i, r := range records {
		switch {
		case r.Status == InboxExpired:
			n.metrics.events.WithLabelValues("expired").Inc()
			n.cfg.Logger.Info("skipped an event past its time to live", "event", r.Event.ID, "type", r.Event.Type, "age", now.Sub(r.Event.Time))
		case !created[i]:
			n.metrics.events.WithLabelValues("duplicate").Inc()
		default:
			n.metrics.events.WithLabelValues("handled").Inc()
			n.metrics.deliveriesCreated.Add(float64(len(r.Deliveries)))
			woke = woke || len(r.Deliveries) > 0
		}
	}
	if woke {
		n.cfg.Recorded()
	}
	return nil
}

type notifierMetrics struct {
	events            *prometheus.CounterVec
	deliveriesCreated prometheus.Counter
}

func newNotifierMetrics(reg prometheus.Registerer) *notifierMetrics {
	m := &notifierMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventflow_notifier_events_total",
			Help: "Events the notifier handled, by outcome: handled, duplicate (already in the inbox), expired (past the TTL).",
		}, []string{"outcome"}),
		deliveriesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventflow_notifier_deliveries_created_total",
			Help: "Deliveries created for matching subscriptions.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.deliveriesCreated)
	}
	return m
}
