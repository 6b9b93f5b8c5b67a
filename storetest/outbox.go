package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
)

// writeEvents writes five events of three orders, interleaved, and returns
// them in the order written.
func writeEvents(t *testing.T, s stores) []event.Event {
	t.Helper()
	o1, e1 := NewOrder("alice")
	o2, e2 := NewOrder("bob")
	o3, e3 := NewOrder("alice")
	mustCreate(t, s, o1, e1, nil)
	mustCreate(t, s, o2, e2, nil)
	paid, e4 := changed(o1, orders.StatusPaid)
	mustUpdate(t, s, paid, e4)
	mustCreate(t, s, o3, e3, nil)
	cancelled, e5 := changed(o2, orders.StatusCancelled)
	mustUpdate(t, s, cancelled, e5)
	return []event.Event{e1, e2, e4, e3, e5}
}

// testOutboxPending: Pending returns the waiting records in Seq order, the
// order they were written in, every event attribute intact, limit at a time.
func testOutboxPending(t *testing.T, s stores) {
	written := writeEvents(t, s)
	all := checkPending(t, s, written...)

	first, err := s.outbox.Pending(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, first, written[:2]...)

	if len(all) == len(written) {
		if err := s.outbox.Delete(t.Context(), []int64{all[0].Seq, all[1].Seq}); err != nil {
			t.Fatal(err)
		}
		next, err := s.outbox.Pending(t.Context(), 2)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, next, written[2:4]...)
	}
}

// testOutboxPendingAfter: PendingAfter reads on from a Seq, limit at a time,
// but only while exactly the given number of records wait up to that Seq;
// otherwise it returns nothing.
func testOutboxPendingAfter(t *testing.T, s stores) {
	written := writeEvents(t, s)
	all := checkPending(t, s, written...)
	if len(all) != len(written) {
		return
	}
	after := func(seq int64, held, limit int) []outbox.Record {
		t.Helper()
		records, err := s.outbox.PendingAfter(t.Context(), seq, held, limit)
		if err != nil {
			t.Fatalf("PendingAfter(%d, %d, %d): %v", seq, held, limit, err)
		}
		return records
	}
	checkRecords(t, after(all[1].Seq, 2, 2), written[2:4]...)
	checkRecords(t, after(all[1].Seq, 2, 10), written[2:]...)
	checkRecords(t, after(0, 0, 10), written...)
	// More wait below the Seq than the caller holds (one committed late, as
	// far as the store can tell), or fewer (another deleted some): nothing.
	checkRecords(t, after(all[1].Seq, 1, 10))
	checkRecords(t, after(all[1].Seq, 3, 10))
	checkRecords(t, after(all[4].Seq, 5, 10))

	if err := s.outbox.Delete(t.Context(), []int64{all[0].Seq}); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, after(all[1].Seq, 2, 10))
	checkRecords(t, after(all[1].Seq, 1, 10), written[2:]...)
	checkRecords(t, after(all[2].Seq, 2, 1), written[3])
}

// testOutboxDelete: Delete removes exactly the given records, and ignores
// the ones gone already.
func testOutboxDelete(t *testing.T, s stores) {
	written := writeEvents(t, s)
	all := checkPending(t, s, written...)
	if len(all) != len(written) {
		return
	}
	del := func(seqs ...int64) {
		t.Helper()
		if err := s.outbox.Delete(t.Context(), seqs); err != nil {
			t.Fatalf("Delete(%v): %v", seqs, err)
		}
	}
	del(all[0].Seq, all[2].Seq)
	checkPending(t, s, written[1], written[3], written[4])
	del(all[0].Seq, all[2].Seq)
	del()
	checkPending(t, s, written[1], written[3], written[4])
	del(all[1].Seq, all[3].Seq, all[4].Seq, all[4].Seq+1000)
	checkPending(t, s)
}

// testOutboxBacklog: Backlog counts the waiting records and says when the
// oldest was written; zero when none waits.
func testOutboxBacklog(t *testing.T, s stores) {
	backlog := func() outbox.Backlog {
		t.Helper()
		b, err := s.outbox.Backlog(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := backlog(); b != (outbox.Backlog{}) {
		t.Errorf("Backlog of an empty outbox = %+v, want zero", b)
	}

	for range 3 {
		o, e := NewOrder("alice")
		mustCreate(t, s, o, e, nil)
		time.Sleep(2 * time.Millisecond)
	}
	records := pending(t, s)
	if len(records) != 3 {
		t.Fatalf("outbox holds %d records, want 3", len(records))
	}
	oldest := records[0].CreatedAt
	for _, r := range records {
		if r.CreatedAt.Before(oldest) {
			oldest = r.CreatedAt
		}
	}
	b := backlog()
	if b.Count != 3 {
		t.Errorf("Backlog.Count = %d, want 3", b.Count)
	}
	checkTime(t, "Backlog.Oldest", b.Oldest, oldest)
	// The store may use its own clock, but it must be about now.
	if d := time.Since(b.Oldest); d < -5*time.Minute || d > 5*time.Minute {
		t.Errorf("Backlog.Oldest = %s, %s from now", b.Oldest, d)
	}

	if err := s.outbox.Delete(t.Context(), []int64{records[0].Seq}); err != nil {
		t.Fatal(err)
	}
	if b := backlog(); b.Count != 2 || !b.Oldest.Equal(records[1].CreatedAt) {
		t.Errorf("Backlog after deleting the first record = %+v, want 2 records, oldest %s", b, records[1].CreatedAt)
	}
	if err := s.outbox.Delete(t.Context(), []int64{records[1].Seq, records[2].Seq}); err != nil {
		t.Fatal(err)
	}
	if b := backlog(); b != (outbox.Backlog{}) {
		t.Errorf("Backlog of an emptied outbox = %+v, want zero", b)
	}
}

// testLease: one holder at a time; the holder renews; another takes over
// once the lease expired; only the holder releases it; leases of different
// names are independent.
func testLease(t *testing.T, s stores) {
	// Generous times, so that a loaded machine (the race detector, other
	// packages' tests in parallel) cannot make one call late enough to
	// cross a lease boundary.
	const ttl = 2 * time.Second
	acquire := func(name, holder string, want bool) {
		t.Helper()
		got, err := s.outbox.AcquireLease(t.Context(), name, holder, ttl)
		if err != nil || got != want {
			t.Fatalf("AcquireLease(%q, %q) = %v, %v; want %v", name, holder, got, err, want)
		}
	}
	release := func(name, holder string) {
		t.Helper()
		if err := s.outbox.ReleaseLease(t.Context(), name, holder); err != nil {
			t.Fatalf("ReleaseLease(%q, %q): %v", name, holder, err)
		}
	}

	acquire("relay", "a", true) // expires at 2 s
	acquire("relay", "b", false)
	time.Sleep(1200 * time.Millisecond)
	acquire("relay", "a", true) // renewed: expires at 3.2 s
	time.Sleep(1200 * time.Millisecond)
	acquire("relay", "b", false) // at 2.4 s: the first term is over, the renewal is not
	time.Sleep(1600 * time.Millisecond)
	acquire("relay", "b", true) // at 4 s: a's lease expired
	acquire("relay", "a", false)

	release("relay", "a") // not the holder: nothing happens
	acquire("relay", "a", false)
	acquire("other", "a", true)

	release("relay", "b")
	acquire("relay", "a", true)
	acquire("other", "b", false)
}

// testCommitted: the channel receives soon after a change commits, and is
// closed when its context ends. An implementation listens by the time
// Committed returns (pinned): a commit right after it is not missed.
func testCommitted(t *testing.T, s stores) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	committed := s.outbox.Committed(ctx)
	drain := func() {
		for {
			select {
			case <-committed:
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	}
	expect := func(what string) {
		t.Helper()
		select {
		case _, ok := <-committed:
			if !ok {
				t.Fatalf("after %s: channel closed", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("after %s: nothing received in 5 s", what)
		}
	}

	drain()
	o, e := NewOrder("alice")
	mustCreate(t, s, o, e, nil)
	expect("CreateOrder")
	drain()
	paid, ePaid := changed(o, orders.StatusPaid)
	mustUpdate(t, s, paid, ePaid)
	expect("UpdateOrder")

	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-committed:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed 5 s after its context ended")
		}
	}
}
