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
	// Recorded is called after deliveries were created that were not
	// handed to Workers, to wake the delivery workers in this process.
	Recorded func()
	// Workers, when set, are the delivery workers of this process: as far
	// as they have room, the deliveries an event creates are recorded as
	// claimed by them and handed over in memory, which spares the claim
	// (a write and a read of each delivery) and the wait for it. If the
	// process dies first, they are sent by any worker after their lease.
	Workers *Worker
	Logger  *slog.Logger
	Now     func() time.Time
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
	matched := map[string]Subscription{} // by id: what a handed-over job sends with
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
			matched[s.ID] = s
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
	handing := n.claimForHandOff(ctx, records, now)
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
		if handing > 0 {
			n.cfg.Workers.unreserve(handing)
		}
		if len(records) == 1 {
			return fmt.Errorf("record event %s: %w", records[0].Event.ID, err)
		}
		return fmt.Errorf("record %d events: %w", len(records), err)
	}
	var jobs []Job
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
			for _, d := range r.Deliveries {
				if bornClaimed(d) {
					jobs = append(jobs, Job{Delivery: d, Event: r.Event, Subscription: matched[d.SubscriptionID]})
				} else {
					woke = true
				}
			}
		}
	}
	if handing > 0 {
		// The born-claimed deliveries of events already in the inbox were
		// not recorded: their room goes back.
		n.cfg.Workers.unreserve(handing - len(jobs))
		n.cfg.Workers.handOff(jobs, now)
		n.metrics.handedOff.Add(float64(len(jobs)))
	}
	if woke {
		n.cfg.Recorded()
	}
	return nil
}

// claimForHandOff records as claimed by this process's workers (an attempt
// counted, hidden from claims until the lease ends) the deliveries of
// records that the workers have room for and may send at once, and
// returns how many: the room it reserved for them. A delivery may go at
// once only if it is the first of its subscription and subject in records
// and none of theirs is pending in the store, so that a subscriber still
// hears about one order's changes in order. Should asking the store fail,
// nothing is handed over: the deliveries wait for a claim as before.
func (n *Notifier) claimForHandOff(ctx context.Context, records []EventRecord, now time.Time) int {
	w := n.cfg.Workers
	if w == nil {
		return 0
	}
	var (
		firsts []*Delivery
		keys   []SubjectKey
		seen   = map[SubjectKey]bool{}
	)
	for i := range records {
		for j := range records[i].Deliveries {
			d := &records[i].Deliveries[j]
			k := SubjectKey{SubscriptionID: d.SubscriptionID, Subject: d.Subject}
			if !seen[k] {
				seen[k] = true
				firsts, keys = append(firsts, d), append(keys, k)
			}
		}
	}
	reserved := w.reserve(len(firsts))
	if reserved == 0 {
		return 0
	}
	firsts, keys = firsts[:reserved], keys[:reserved]
	pending, err := n.store.PendingSubjects(ctx, keys)
	if err != nil {
		w.unreserve(reserved)
		n.cfg.Logger.Warn("look for pending deliveries; the new ones wait for a claim", "err", err)
		return 0
	}
	blocked := make(map[SubjectKey]bool, len(pending))
	for _, k := range pending {
		blocked[k] = true
	}
	claimed := 0
	for i, d := range firsts {
		if !blocked[keys[i]] {
			d.Attempts = 1
			d.NextAttemptAt = now.Add(w.cfg.Lease)
			claimed++
		}
	}
	w.unreserve(reserved - claimed)
	return claimed
}

// bornClaimed reports whether claimForHandOff claimed d.
func bornClaimed(d Delivery) bool { return d.Attempts > 0 }

type notifierMetrics struct {
	events            *prometheus.CounterVec
	deliveriesCreated prometheus.Counter
	handedOff         prometheus.Counter
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
		handedOff: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventflow_notifier_deliveries_handed_off_total",
			Help: "Deliveries created claimed by the workers of the same process and handed to them without a claim.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.deliveriesCreated, m.handedOff)
	}
	return m
}
