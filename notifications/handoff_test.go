package notifications_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/sqlite"
	"github.com/eventflow/eventflow/storetest"
)

// These tests run the notifier and the workers of one process on a real
// SQLite store; only the mail server is replaced, by a recorder that can
// refuse a message for a while.

// recordingSender keeps the delivery ids of the emails it accepted, in
// order, and answers 451 to the emails of an event listed in refuse as
// many times as listed.
type recordingSender struct {
	mu       sync.Mutex
	accepted []string
	refuse   map[string]int // event id → refusals left
}

func (s *recordingSender) SendEmail(_ context.Context, m notifications.Email) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := m.Headers["X-Eventflow-Event-Id"]; s.refuse[e] > 0 {
		s.refuse[e]--
		return errors.New("451 try again later")
	}
	s.accepted = append(s.accepted, m.Headers["X-Eventflow-Delivery-Id"])
	return nil
}

func (s *recordingSender) setRefusals(eventID string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse[eventID] = n
}

func (s *recordingSender) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.accepted)
}

// countingStore counts the deliveries that claims returned.
type countingStore struct {
	notifications.Store
	claimed atomic.Int64
}

func (s *countingStore) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]notifications.Job, error) {
	jobs, err := s.Store.ClaimDeliveries(ctx, now, limit, lease)
	s.claimed.Add(int64(len(jobs)))
	return jobs, err
}

type handOffWorld struct {
	store    *countingStore
	sender   *recordingSender
	worker   *notifications.Worker
	notifier *notifications.Notifier
}

// newHandOffWorld is one process's notifier and workers on a fresh SQLite
// database, with one email subscription of alice to every order event.
func newHandOffWorld(t *testing.T, poll time.Duration) *handOffWorld {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "eventflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := &handOffWorld{
		store:  &countingStore{Store: sqlite.NewNotifications(db)},
		sender: &recordingSender{refuse: map[string]int{}},
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	alice := notifications.Subscription{
		ID: "0190a000-0000-7000-8000-000000000001", UserID: "alice", Chan: notifications.ChannelEmail,
		Address: "alice@example.com", Patterns: []string{"orders.order.*"}, Scope: notifications.ScopeOwn,
		Status: notifications.StatusActive, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if err := w.store.CreateSubscription(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	render, err := notifications.NewRenderer("eventflow@example.com", "http://127.0.0.1:8080", notifications.NewTokens([]byte("key")))
	if err != nil {
		t.Fatal(err)
	}
	filters, err := notifications.NewFilters()
	if err != nil {
		t.Fatal(err)
	}
	w.worker = notifications.NewWorker(w.store, render, w.sender, nil, nil, notifications.WorkerConfig{
		Concurrency: 4, PollInterval: poll, Lease: time.Minute, MaxAttempts: 1_000_000,
		BaseBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	w.notifier = notifications.NewNotifier(w.store, notifications.NewMatcher(w.store, filters, time.Hour, nil), nil,
		notifications.NotifierConfig{Recorded: w.worker.Wake, Workers: w.worker})
	return w
}

// run starts the workers until the test ends.
func (w *handOffWorld) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.worker.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// deliveryOfEvent is the delivery the notifier made of e.
func (w *handOffWorld) deliveryOfEvent(t *testing.T, e event.Event) notifications.Delivery {
	t.Helper()
	list, err := w.store.Deliveries(t.Context(), notifications.DeliveryFilter{EventID: e.ID})
	if err != nil || len(list) != 1 {
		t.Fatalf("deliveries of event %s = %v, %v; want one", e.ID, list, err)
	}
	return list[0]
}

// waitSent waits until the sender accepted n emails.
func (w *handOffWorld) waitSent(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(w.sender.sent()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d emails, want %d", len(w.sender.sent()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w.sender.sent()
}

// A delivery the notifier creates goes to the workers of its process
// without a claim: with nothing to wake them and no poll before an hour,
// it is sent, recorded sent, with the one attempt counted.
func TestNotifierHandsDeliveriesToItsWorkers(t *testing.T) {
	w := newHandOffWorld(t, time.Hour)
	w.run(t)
	created, _ := storetest.OrderEvents("alice")
	if err := w.notifier.HandleEvents(t.Context(), []event.Event{created}); err != nil {
		t.Fatal(err)
	}
	d := w.deliveryOfEvent(t, created)
	if got := w.waitSent(t, 1); got[0] != d.ID {
		t.Fatalf("sent %v, want %s", got, d.ID)
	}
	if n := w.store.claimed.Load(); n != 0 {
		t.Errorf("claims took %d deliveries, want none: the delivery was handed over", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d = w.deliveryOfEvent(t, created); d.Status != notifications.DeliverySent && time.Now().Before(deadline); d = w.deliveryOfEvent(t, created) {
		time.Sleep(10 * time.Millisecond)
	}
	if d.Status != notifications.DeliverySent || d.Attempts != 1 {
		t.Errorf("delivery after the send: status %s, %d attempts; want sent, 1", d.Status, d.Attempts)
	}
}

// A subscriber hears about one order's changes in order, whether the
// earlier one is in the same batch or still pending in the database (here,
// refused once and waiting for its retry): the later one waits for it.
func TestHandOffKeepsEachOrdersDeliveriesInOrder(t *testing.T) {
	w := newHandOffWorld(t, 20*time.Millisecond)
	w.run(t)

	// Both changes of order x in one batch.
	xCreated, xPaid := storetest.OrderEvents("alice")
	if err := w.notifier.HandleEvents(t.Context(), []event.Event{xCreated, xPaid}); err != nil {
		t.Fatal(err)
	}
	x1, x2 := w.deliveryOfEvent(t, xCreated), w.deliveryOfEvent(t, xPaid)
	if x2.Attempts != 0 {
		t.Errorf("the later delivery of the batch was handed over (%d attempts) ahead of the earlier", x2.Attempts)
	}
	if got := w.waitSent(t, 2); !slices.Equal(got, []string{x1.ID, x2.ID}) {
		t.Errorf("order x: sent %v, want %v (created, then paid)", got, []string{x1.ID, x2.ID})
	}

	// Order y's creation is refused until its payment has come in.
	yCreated, yPaid := storetest.OrderEvents("alice")
	w.sender.setRefusals(yCreated.ID, 1_000_000)
	if err := w.notifier.HandleEvents(t.Context(), []event.Event{yCreated}); err != nil {
		t.Fatal(err)
	}
	y1 := w.deliveryOfEvent(t, yCreated)
	deadline := time.Now().Add(5 * time.Second)
	for y1.LastError == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		y1 = w.deliveryOfEvent(t, yCreated)
	}
	if y1.Status != notifications.DeliveryPending || y1.LastError == "" {
		t.Fatalf("order y's creation after a 451: status %s, last error %q; want pending, waiting for a retry", y1.Status, y1.LastError)
	}
	if err := w.notifier.HandleEvents(t.Context(), []event.Event{yPaid}); err != nil {
		t.Fatal(err)
	}
	y2 := w.deliveryOfEvent(t, yPaid)
	if y2.Attempts != 0 {
		t.Errorf("order y's payment was handed over (%d attempts) while its creation was pending", y2.Attempts)
	}
	w.sender.setRefusals(yCreated.ID, 0)
	want := []string{x1.ID, x2.ID, y1.ID, y2.ID}
	if got := w.waitSent(t, 4); !slices.Equal(got, want) {
		t.Errorf("sent %v, want %v: each order's creation before its payment", got, want)
	}
}

// A hand-over after the workers stopped (a batch finishing during
// shutdown) does not leave the deliveries hidden for their lease: they are
// due again at once for any worker.
func TestHandOffAfterWorkersStoppedReleases(t *testing.T) {
	w := newHandOffWorld(t, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.worker.Run(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	created, _ := storetest.OrderEvents("alice")
	before := time.Now()
	if err := w.notifier.HandleEvents(t.Context(), []event.Event{created}); err != nil {
		t.Fatal(err)
	}
	d := w.deliveryOfEvent(t, created)
	if d.Status != notifications.DeliveryPending || d.NextAttemptAt.After(time.Now()) || d.NextAttemptAt.Before(before.Add(-time.Second)) {
		t.Errorf("delivery handed to stopped workers: status %s, next attempt %s; want pending and due now", d.Status, d.NextAttemptAt)
	}
	if got := w.sender.sent(); len(got) != 0 {
		t.Errorf("stopped workers sent %v", got)
	}
}
