package outbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
	"github.com/eventflow/eventflow/sqlite"
	"github.com/eventflow/eventflow/storetest"
)

// recorder is a Publisher that keeps what it was given. It stands in for
// Kafka in these tests of the relay's own logic; the end-to-end tests run
// the relay against the real broker.
type recorder struct {
	mu        sync.Mutex
	published []event.Event
	fail      atomic.Int32 // fail this many calls
	inFlight  atomic.Int32
	overlap   atomic.Bool
	ctxErr    atomic.Bool // a Publish saw its context end
	delay     time.Duration
}

func (r *recorder) Publish(ctx context.Context, events []event.Event) error {
	if r.inFlight.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.inFlight.Add(-1)
	time.Sleep(r.delay)
	if ctx.Err() != nil {
		r.ctxErr.Store(true)
	}
	if r.fail.Load() > 0 {
		r.fail.Add(-1)
		return errors.New("broker unavailable")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = append(r.published, events...)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.published)
}

func newStores(t *testing.T) (orders.Store, outbox.Store) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return sqlite.NewOrders(db), sqlite.NewOutbox(db)
}

func commitOrders(t *testing.T, store orders.Store, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		o, e := storetest.NewOrder("u")
		if err := store.CreateOrder(context.Background(), o, e, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func runRelay(t *testing.T, store outbox.Store, pub outbox.Publisher, cfg outbox.RelayConfig) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { outbox.NewRelay(store, pub, cfg).Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func backlog(t *testing.T, store outbox.Store) int64 {
	b, err := store.Backlog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b.Count
}

func TestRelayPublishesInOrderAndDeletes(t *testing.T) {
	ord, ob := newStores(t)
	want := commitOrders(t, ord, 25)
	pub := &recorder{}
	// A poll interval far longer than the test: only the commit wake-up
	// can make the relay see the later orders in time.
	runRelay(t, ob, pub, outbox.RelayConfig{BatchSize: 10, PollInterval: time.Hour, Holder: "a"})
	want = append(want, commitOrders(t, ord, 5)...)
	waitFor(t, "every event published", func() bool { return pub.count() == len(want) })
	pub.mu.Lock()
	for i, e := range pub.published {
		if e.ID != want[i] {
			t.Fatalf("event %d is %s; want %s (commit order)", i, e.ID, want[i])
		}
	}
	pub.mu.Unlock()
	waitFor(t, "the outbox emptied", func() bool { return backlog(t, ob) == 0 })
}

func TestRelayKeepsEventsWhenPublishFails(t *testing.T) {
	ord, ob := newStores(t)
	commitOrders(t, ord, 3)
	pub := &recorder{}
	pub.fail.Store(3)
	runRelay(t, ob, pub, outbox.RelayConfig{PollInterval: 20 * time.Millisecond, Holder: "a"})
	waitFor(t, "published after the broker came back", func() bool { return pub.count() == 3 })
	if pub.fail.Load() != 0 {
		t.Fatal("the relay did not retry")
	}
	waitFor(t, "the outbox emptied", func() bool { return backlog(t, ob) == 0 })
}

// Under at-most-once the relay deletes first: a failed publish loses the
// batch, which is what that guarantee allows, and the relay goes on.
func TestAtMostOnceLosesAFailedBatch(t *testing.T) {
	ord, ob := newStores(t)
	commitOrders(t, ord, 3)
	pub := &recorder{}
	pub.fail.Store(1)
	runRelay(t, ob, pub, outbox.RelayConfig{PollInterval: 20 * time.Millisecond, Holder: "a", DeleteBeforePublish: true})
	waitFor(t, "the outbox emptied", func() bool { return backlog(t, ob) == 0 })
	commitOrders(t, ord, 2)
	waitFor(t, "the next events published", func() bool { return pub.count() == 2 })
	time.Sleep(100 * time.Millisecond)
	if pub.count() != 2 {
		t.Fatalf("published %d; want only the 2 events after the failed batch", pub.count())
	}
}

// Two relays on one outbox: only the lease holder publishes, never both at
// once, and when it stops the other takes over.
func TestOneRelayPublishesAtATime(t *testing.T) {
	ord, ob := newStores(t)
	pub := &recorder{delay: 5 * time.Millisecond}
	cfg := outbox.RelayConfig{BatchSize: 5, PollInterval: 10 * time.Millisecond, LeaseTTL: time.Second}
	cfg.Holder = "a"
	stopA := runRelay(t, ob, pub, cfg)
	cfg.Holder = "b"
	runRelay(t, ob, pub, cfg)
	commitOrders(t, ord, 40)
	waitFor(t, "the first 40 published", func() bool { return pub.count() == 40 })
	stopA()
	commitOrders(t, ord, 40)
	waitFor(t, "the next 40 published by the survivor", func() bool { return pub.count() == 80 })
	if pub.overlap.Load() {
		t.Fatal("two relays published at the same time")
	}
}

// Shutdown does not cut a batch short: the publish in flight gets a context
// that Run's cancellation does not end.
func TestShutdownLetsTheBatchFinish(t *testing.T) {
	ord, ob := newStores(t)
	commitOrders(t, ord, 3)
	pub := &recorder{delay: 200 * time.Millisecond}
	stop := runRelay(t, ob, pub, outbox.RelayConfig{PollInterval: 10 * time.Millisecond, Holder: "a"})
	waitFor(t, "a publish in flight", func() bool { return pub.inFlight.Load() == 1 })
	stop()
	waitFor(t, "the batch published", func() bool { return pub.count() == 3 })
	if pub.ctxErr.Load() {
		t.Fatal("the publish saw its context cancelled by shutdown")
	}
	waitFor(t, "the published batch deleted", func() bool { return backlog(t, ob) == 0 })
}

// stingyStore refuses every other read-ahead, as a store does when a record
// below the caller's last one committed late.
type stingyStore struct {
	outbox.Store
	calls atomic.Int32
}

func (s *stingyStore) PendingAfter(ctx context.Context, after int64, held, limit int) ([]outbox.Record, error) {
	if s.calls.Add(1)%2 == 1 {
		return nil, nil
	}
	return s.Store.PendingAfter(ctx, after, held, limit)
}

// The relay reads the next batch while the broker takes the current one;
// when the store refuses to read ahead, it reads from the start again, and
// every event still goes out once, in commit order.
func TestRelayReadsAheadAndFallsBack(t *testing.T) {
	ord, ob := newStores(t)
	want := commitOrders(t, ord, 95)
	store := &stingyStore{Store: ob}
	pub := &recorder{}
	runRelay(t, store, pub, outbox.RelayConfig{BatchSize: 10, PollInterval: 10 * time.Millisecond, Holder: "a"})
	waitFor(t, "every event published", func() bool { return pub.count() >= len(want) })
	waitFor(t, "the outbox emptied", func() bool { return backlog(t, ob) == 0 })
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.published) != len(want) {
		t.Fatalf("published %d events; want %d", len(pub.published), len(want))
	}
	for i, e := range pub.published {
		if e.ID != want[i] {
			t.Fatalf("event %d is %s; want %s (commit order)", i, e.ID, want[i])
		}
	}
	if store.calls.Load() < 4 {
		t.Fatalf("the relay read ahead %d times; want it to for most batches", store.calls.Load())
	}
}
