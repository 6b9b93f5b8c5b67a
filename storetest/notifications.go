package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/orders"
)

// RunNotifications runs the tests of the notifications.Store contract as
// parallel subtests of t. Each subtest calls open, which must return the
// store of a fresh, empty, migrated database that lives as long as the
// subtest's t; open is called from parallel subtests.
func RunNotifications(t *testing.T, open func(t *testing.T) notifications.Store) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, notifications.Store)
	}{
		{"SubscriptionRoundTrip", testSubscriptionRoundTrip},
		{"SubscriptionNotFound", testSubscriptionNotFound},
		{"SubscriptionLongKey", testSubscriptionLongKey},
		{"DuplicateSubscription", testDuplicateSubscription},
		{"UpdateSubscriptionStaleVersion", testUpdateSubscriptionStaleVersion},
		{"UpdateSubscriptionRace", testUpdateSubscriptionRace},
		{"DeleteSubscription", testDeleteSubscription},
		{"Subscriptions", testSubscriptions},
		{"ActiveSubscriptions", testActiveSubscriptions},
		{"SubscriptionsVersion", testSubscriptionsVersion},
		{"RecordEvent", testRecordEvent},
		{"RecordEventIsAtomic", testRecordEventIsAtomic},
		{"RecordEventKeepsTheEvent", testRecordEventKeepsTheEvent},
		{"RecordEvents", testRecordEvents},
		{"RecordEventsIsAtomic", testRecordEventsIsAtomic},
		{"ClaimDue", testClaimDue},
		{"ClaimInOrderPerSubject", testClaimInOrderPerSubject},
		{"ClaimConcurrently", testClaimConcurrently},
		{"PendingSubjects", testPendingSubjects},
		{"MarkSentAndFailed", testMarkSentAndFailed},
		{"MarkSentBatch", testMarkSentBatch},
		{"RetryDelivery", testRetryDelivery},
		{"Deliveries", testDeliveries},
		{"DeliveryCounts", testDeliveryCounts},
		{"Secret", testSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, open(t))
		})
	}
}

// newSubscription returns a valid, active email subscription of userID to
// address, not yet stored, with times in a zone other than UTC. With no
// patterns it subscribes to every order event.
func newSubscription(userID, address string, patterns ...string) notifications.Subscription {
	if len(patterns) == 0 {
		patterns = []string{"orders.order.*"}
	}
	now := testTime()
	return notifications.Subscription{
		ID:        newID(),
		UserID:    userID,
		Chan:      notifications.ChannelEmail,
		Address:   address,
		Patterns:  patterns,
		Scope:     notifications.ScopeOwn,
		Status:    notifications.StatusActive,
		Version:   1,
		CreatedAt: now,
		UpdatedAt: now,
	}
}

// newDelivery returns the pending delivery of e to sub, due at at, as the
// notifier makes it.
func newDelivery(e event.Event, sub notifications.Subscription, at time.Time) notifications.Delivery {
	return notifications.Delivery{
		ID:             newID(),
		EventID:        e.ID,
		EventType:      e.Type,
		Subject:        e.Subject,
		SubscriptionID: sub.ID,
		UserID:         sub.UserID,
		Channel:        sub.Chan,
		Address:        sub.Address,
		Status:         notifications.DeliveryPending,
		NextAttemptAt:  at,
		CreatedAt:      at,
		UpdatedAt:      at,
	}
}

// OrderEvents returns the events of an order of userID: its creation, then
// its payment.
func OrderEvents(userID string) (created, paid event.Event) {
	o, created := NewOrder(userID)
	_, paid = changed(o, orders.StatusPaid)
	return created, paid
}

func mustCreateSubscription(t *testing.T, s notifications.Store, sub notifications.Subscription) {
	t.Helper()
	if err := s.CreateSubscription(t.Context(), sub); err != nil {
		t.Fatalf("CreateSubscription %s: %v", sub.ID, err)
	}
}

func mustUpdateSubscription(t *testing.T, s notifications.Store, sub notifications.Subscription) {
	t.Helper()
	if err := s.UpdateSubscription(t.Context(), sub); err != nil {
		t.Fatalf("UpdateSubscription %s to version %d: %v", sub.ID, sub.Version, err)
	}
}

// mustRecord records e as handled with deliveries, which must be new.
func mustRecord(t *testing.T, s notifications.Store, e event.Event, deliveries ...notifications.Delivery) {
	t.Helper()
	created, err := s.RecordEvent(t.Context(), e, notifications.InboxHandled, deliveries)
	if err != nil || !created {
		t.Fatalf("RecordEvent %s = %v, %v; want true, nil", e.ID, created, err)
	}
}

// checkSubscription reports how got differs from the subscription written:
// times in UTC to the microsecond, Patterns never nil.
func checkSubscription(t *testing.T, got, written notifications.Subscription) {
	t.Helper()
	want := written
	if want.Patterns == nil {
		want.Patterns = []string{}
	}
	if got.Patterns == nil {
		t.Errorf("subscription %s: Patterns is nil, want a slice", got.ID)
	}
	checkTime(t, "subscription "+got.ID+" CreatedAt", got.CreatedAt, stored(want.CreatedAt))
	checkTime(t, "subscription "+got.ID+" UpdatedAt", got.UpdatedAt, stored(want.UpdatedAt))
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("subscription:\n got %+v\nwant %+v", got, want)
	}
}

// getSubscription returns the stored subscription id.
func getSubscription(t *testing.T, s notifications.Store, id string) notifications.Subscription {
	t.Helper()
	sub, err := s.Subscription(t.Context(), id)
	if err != nil {
		t.Fatalf("Subscription %s: %v", id, err)
	}
	return sub
}

// checkDelivery reports how got differs from want, times compared as
// stored.
func checkDelivery(t *testing.T, got, want notifications.Delivery) {
	t.Helper()
	what := "delivery " + want.ID
	checkTime(t, what+" NextAttemptAt", got.NextAttemptAt, stored(want.NextAttemptAt))
	checkTime(t, what+" CreatedAt", got.CreatedAt, stored(want.CreatedAt))
	checkTime(t, what+" UpdatedAt", got.UpdatedAt, stored(want.UpdatedAt))
	switch {
	case got.SentAt == nil && want.SentAt != nil:
		t.Errorf("%s SentAt = nil, want %s", what, stored(*want.SentAt))
	case got.SentAt != nil && want.SentAt == nil:
		t.Errorf("%s SentAt = %s, want nil", what, got.SentAt)
	case got.SentAt != nil:
		checkTime(t, what+" SentAt", *got.SentAt, stored(*want.SentAt))
	}
	got.NextAttemptAt, got.CreatedAt, got.UpdatedAt, got.SentAt = time.Time{}, time.Time{}, time.Time{}, nil
	want.NextAttemptAt, want.CreatedAt, want.UpdatedAt, want.SentAt = time.Time{}, time.Time{}, time.Time{}, nil
	if got != want {
		t.Errorf("delivery:\n got %+v\nwant %+v", got, want)
	}
}

// getDelivery returns the stored delivery id.
func getDelivery(t *testing.T, s notifications.Store, id string) notifications.Delivery {
	t.Helper()
	d, err := s.Delivery(t.Context(), id)
	if err != nil {
		t.Fatalf("Delivery %s: %v", id, err)
	}
	return d
}

// claim claims deliveries at now, for a lease of a minute.
func claim(t *testing.T, s notifications.Store, now time.Time, limit int) []notifications.Job {
	t.Helper()
	jobs, err := s.ClaimDeliveries(t.Context(), now, limit, time.Minute)
	if err != nil {
		t.Fatalf("ClaimDeliveries(%s, %d): %v", now, limit, err)
	}
	return jobs
}

// checkClaimed reports jobs that are not of the deliveries want, in order.
func checkClaimed(t *testing.T, what string, jobs []notifications.Job, want ...notifications.Delivery) {
	t.Helper()
	got := make([]string, len(jobs))
	for i, j := range jobs {
		got[i] = j.Delivery.ID
	}
	if !slices.Equal(got, deliveryIDs(want)) {
		t.Errorf("%s claimed %v, want %v", what, got, deliveryIDs(want))
	}
}

// claimed returns d as a claim at now, for a lease of a minute, leaves it.
func claimed(d notifications.Delivery, now time.Time) notifications.Delivery {
	d.Attempts++
	d.NextAttemptAt, d.UpdatedAt = now.Add(time.Minute), now
	return d
}

func deliveryIDs(list []notifications.Delivery) []string {
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	return ids
}

func subscriptionIDs(list []notifications.Subscription) []string {
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	return ids
}

// testSubscriptionRoundTrip: subscriptions come back as they were written,
// every field, times in UTC to the microsecond; an update changes every
// field but the id and the creation time (pinned: CreatedAt never changes).
func testSubscriptionRoundTrip(t *testing.T, s notifications.Store) {
	email := newSubscription("alice", "alice@example.com", "orders.order.created", "orders.order.paid")
	email.Filter = `data.order.total > 1000 && data.order.currency == "EUR"`
	hook := newSubscription("bob", "https://hooks.example.com/eventflow?tenant=7&x=%20y", "#")
	hook.Chan, hook.Scope, hook.Status = notifications.ChannelWebhook, notifications.ScopeAll, notifications.StatusPaused
	hook.WebhookSecret = "whsec_" + randomHex(24)
	mustCreateSubscription(t, s, email)
	mustCreateSubscription(t, s, hook)
	for _, sub := range []notifications.Subscription{email, hook} {
		checkSubscription(t, getSubscription(t, s, sub.ID), sub)
	}

	updated := email
	updated.UserID, updated.Address = "carol", "carol@example.org"
	updated.Chan, updated.Scope = notifications.ChannelWebhook, notifications.ScopeAll
	updated.Patterns = []string{"orders.#", "orders.order.cancelled", "payments.*.failed"}
	updated.Filter, updated.Status, updated.WebhookSecret = "", notifications.StatusUnsubscribed, "whsec_new"
	updated.Version = 2
	updated.UpdatedAt = testTime().Add(time.Minute)
	updated.CreatedAt = updated.CreatedAt.Add(time.Hour) // ignored
	mustUpdateSubscription(t, s, updated)
	updated.CreatedAt = email.CreatedAt
	checkSubscription(t, getSubscription(t, s, email.ID), updated)

	again := updated
	again.Status, again.Version, again.UpdatedAt = notifications.StatusActive, 3, testTime().Add(2*time.Minute)
	mustUpdateSubscription(t, s, again)
	checkSubscription(t, getSubscription(t, s, email.ID), again)
	checkSubscription(t, getSubscription(t, s, hook.ID), hook)
}

// testSubscriptionNotFound: an unknown id, and an id that is not a
// canonical UUID (pinned, as for orders), is ENOTFOUND for reading,
// updating and deleting, never an internal error or a version conflict.
func testSubscriptionNotFound(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	for _, id := range []string{
		newID(),
		"",
		"not-a-uuid",
		"'; DROP TABLE subscriptions; --",
		strings.ToUpper(sub.ID),
		strings.ReplaceAll(sub.ID, "-", ""),
	} {
		_, err := s.Subscription(t.Context(), id)
		checkCode(t, fmt.Sprintf("Subscription(%q)", id), err, eventflow.ENOTFOUND)
		other := sub
		other.ID, other.Version = id, 2
		err = s.UpdateSubscription(t.Context(), other)
		checkCode(t, fmt.Sprintf("UpdateSubscription(%q)", id), err, eventflow.ENOTFOUND)
		if errors.Is(err, notifications.ErrVersionConflict) {
			t.Errorf("UpdateSubscription(%q): %v is also ErrVersionConflict", id, err)
		}
		checkCode(t, fmt.Sprintf("DeleteSubscription(%q)", id), s.DeleteSubscription(t.Context(), id), eventflow.ENOTFOUND)
	}
	checkSubscription(t, getSubscription(t, s, sub.ID), sub)
}

// testSubscriptionLongKey: a subscription at the service's bounds (20
// patterns of 255 characters) with a long webhook URL is stored, and its
// duplicate found, though its uniqueness key is longer than a database may
// index as is.
func testSubscriptionLongKey(t *testing.T, s notifications.Store) {
	var patterns []string
	for range 20 {
		var segments []string
		for range 7 {
			segments = append(segments, "s"+randomHex(15))
		}
		p := strings.Join(segments, ".")
		patterns = append(patterns, p+"."+strings.Repeat("x", 255-len(p)-1))
	}
	slices.Sort(patterns)
	sub := newSubscription("alice", "https://hooks.example.com/"+randomHex(1000), patterns...)
	sub.Chan = notifications.ChannelWebhook
	mustCreateSubscription(t, s, sub)
	checkSubscription(t, getSubscription(t, s, sub.ID), sub)

	dup := sub
	dup.ID = newID()
	if err := s.CreateSubscription(t.Context(), dup); !errors.Is(err, notifications.ErrDuplicateSubscription) {
		t.Errorf("CreateSubscription of an equal long subscription: %v, want ErrDuplicateSubscription", err)
	}
	dup.Patterns = patterns[1:]
	mustCreateSubscription(t, s, dup)
}

// testDuplicateSubscription: another subscription of the same user, channel,
// address and patterns (in any order: pinned) is ErrDuplicateSubscription,
// on creation and on update, and changes nothing; any one of those four
// differing makes another subscription; once the first is deleted, its
// equal may be created.
func testDuplicateSubscription(t *testing.T, s notifications.Store) {
	first := newSubscription("alice", "alice@example.com", "orders.order.created", "orders.order.paid")
	mustCreateSubscription(t, s, first)
	version := subscriptionsVersion(t, s)

	same := first
	same.ID, same.Filter, same.Scope = newID(), "true", notifications.ScopeAll
	reordered := same
	reordered.ID, reordered.Patterns = newID(), []string{"orders.order.paid", "orders.order.created"}
	for _, dup := range []notifications.Subscription{same, reordered} {
		if err := s.CreateSubscription(t.Context(), dup); !errors.Is(err, notifications.ErrDuplicateSubscription) {
			t.Errorf("CreateSubscription of %v: %v, want ErrDuplicateSubscription", dup.Patterns, err)
		}
		_, err := s.Subscription(t.Context(), dup.ID)
		checkCode(t, "Subscription refused as a duplicate", err, eventflow.ENOTFOUND)
	}
	if v := subscriptionsVersion(t, s); v != version {
		t.Errorf("SubscriptionsVersion after refused creations = %d, want %d", v, version)
	}

	otherUser := newSubscription("bob", first.Address, first.Patterns...)
	otherChannel := newSubscription("alice", first.Address, first.Patterns...)
	otherChannel.Chan = notifications.ChannelWebhook
	otherAddress := newSubscription("alice", "alice@example.org", first.Patterns...)
	fewerPatterns := newSubscription("alice", first.Address, "orders.order.created")
	for _, sub := range []notifications.Subscription{otherUser, otherChannel, otherAddress, fewerPatterns} {
		mustCreateSubscription(t, s, sub)
	}

	becomesFirst := fewerPatterns
	becomesFirst.Patterns, becomesFirst.Version = []string{"orders.order.created", "orders.order.paid"}, 2
	if err := s.UpdateSubscription(t.Context(), becomesFirst); !errors.Is(err, notifications.ErrDuplicateSubscription) {
		t.Errorf("UpdateSubscription into an equal of another: %v, want ErrDuplicateSubscription", err)
	}
	checkSubscription(t, getSubscription(t, s, fewerPatterns.ID), fewerPatterns)

	if err := s.DeleteSubscription(t.Context(), first.ID); err != nil {
		t.Fatal(err)
	}
	mustCreateSubscription(t, s, same)
	mustUpdateSubscription(t, s, func() notifications.Subscription {
		// Rewriting a subscription with its own patterns is no duplicate.
		sub := same
		sub.Version, sub.Status = 2, notifications.StatusPaused
		return sub
	}())
}

// testUpdateSubscriptionStaleVersion: an update whose version is not the
// stored one plus one is ErrVersionConflict and changes nothing.
func testUpdateSubscriptionStaleVersion(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	paused := sub
	paused.Status, paused.Version = notifications.StatusPaused, 2
	mustUpdateSubscription(t, s, paused)

	stale := sub
	stale.Filter, stale.Version = "false", 2
	ahead := paused
	ahead.Filter, ahead.Version = "false", 5
	same := paused
	same.Filter = "false"
	for _, u := range []notifications.Subscription{stale, ahead, same} {
		err := s.UpdateSubscription(t.Context(), u)
		if !errors.Is(err, notifications.ErrVersionConflict) {
			t.Errorf("UpdateSubscription to version %d over version 2: %v, want ErrVersionConflict", u.Version, err)
		}
	}
	checkSubscription(t, getSubscription(t, s, sub.ID), paused)
}

// testUpdateSubscriptionRace: of writers that update the same version at
// once, exactly one wins and the others get ErrVersionConflict.
func testUpdateSubscriptionRace(t *testing.T, s notifications.Store) {
	const writers = 8
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	updates := make([]notifications.Subscription, writers)
	errs := make([]error, writers)
	for i := range updates {
		updates[i] = sub
		updates[i].Version, updates[i].Filter = 2, fmt.Sprintf("data.order.total > %d", i)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = s.UpdateSubscription(t.Context(), updates[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, notifications.ErrVersionConflict):
			t.Errorf("writer %d: %v, want nil or ErrVersionConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	checkSubscription(t, getSubscription(t, s, sub.ID), updates[winner])
}

// testDeleteSubscription: a deleted subscription is gone, a second delete is
// ENOTFOUND, and its deliveries stay, listed and claimable; a claimed
// delivery of a deleted subscription comes with the zero Subscription.
func testDeleteSubscription(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	kept := newSubscription("alice", "alice@example.org")
	mustCreateSubscription(t, s, sub)
	mustCreateSubscription(t, s, kept)
	at := testTime()
	e, _ := OrderEvents("alice")
	d, dKept := newDelivery(e, sub, at), newDelivery(e, kept, at)
	mustRecord(t, s, e, d, dKept)

	if err := s.DeleteSubscription(t.Context(), sub.ID); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	_, err := s.Subscription(t.Context(), sub.ID)
	checkCode(t, "Subscription after its deletion", err, eventflow.ENOTFOUND)
	checkCode(t, "second DeleteSubscription", s.DeleteSubscription(t.Context(), sub.ID), eventflow.ENOTFOUND)
	for _, list := range [][]notifications.Subscription{listSubscriptions(t, s, notifications.SubscriptionFilter{}), activeSubscriptions(t, s)} {
		if !slices.Equal(subscriptionIDs(list), []string{kept.ID}) {
			t.Errorf("subscriptions after a deletion: %v, want %v", subscriptionIDs(list), []string{kept.ID})
		}
	}

	checkDelivery(t, getDelivery(t, s, d.ID), d)
	checkDeliveries(t, s, notifications.DeliveryFilter{SubscriptionID: sub.ID}, d)

	jobs := claim(t, s, at, 10)
	checkClaimed(t, "a claim", jobs, d, dKept)
	if len(jobs) == 2 {
		checkDelivery(t, jobs[0].Delivery, claimed(d, at))
		checkEvent(t, jobs[0].Event, e)
		if !reflect.DeepEqual(jobs[0].Subscription, notifications.Subscription{}) {
			t.Errorf("Job.Subscription of a deleted subscription = %+v, want the zero value", jobs[0].Subscription)
		}
		checkSubscription(t, jobs[1].Subscription, kept)
	}
}

func listSubscriptions(t *testing.T, s notifications.Store, f notifications.SubscriptionFilter) []notifications.Subscription {
	t.Helper()
	list, err := s.Subscriptions(t.Context(), f)
	if err != nil {
		t.Fatalf("Subscriptions(%+v): %v", f, err)
	}
	return list
}

func activeSubscriptions(t *testing.T, s notifications.Store) []notifications.Subscription {
	t.Helper()
	list, err := s.ActiveSubscriptions(t.Context())
	if err != nil {
		t.Fatalf("ActiveSubscriptions: %v", err)
	}
	return list
}

// testSubscriptions: newest first, filtered by user, bounded by Limit (zero
// or less means no bound: pinned), paginated by the Before cursor; a Before
// that is not a UUID is EINVALID (pinned).
func testSubscriptions(t *testing.T, s notifications.Store) {
	var all, alice []notifications.Subscription // newest first
	for i := range 6 {
		user := []string{"alice", "bob"}[i%2]
		sub := newSubscription(user, fmt.Sprintf("%s+%d@example.com", user, i))
		mustCreateSubscription(t, s, sub)
		all = append([]notifications.Subscription{sub}, all...)
		if user == "alice" {
			alice = append([]notifications.Subscription{sub}, alice...)
		}
	}
	check := func(f notifications.SubscriptionFilter, want []notifications.Subscription) {
		t.Helper()
		got := listSubscriptions(t, s, f)
		if len(got) != len(want) {
			t.Errorf("Subscriptions(%+v) = %v, want %v", f, subscriptionIDs(got), subscriptionIDs(want))
			return
		}
		for i := range got {
			checkSubscription(t, got[i], want[i])
		}
	}
	check(notifications.SubscriptionFilter{}, all)
	check(notifications.SubscriptionFilter{Limit: -1}, all)
	check(notifications.SubscriptionFilter{Limit: 4}, all[:4])
	check(notifications.SubscriptionFilter{UserID: "alice"}, alice)
	check(notifications.SubscriptionFilter{UserID: "nobody"}, nil)
	check(notifications.SubscriptionFilter{Before: newID()}, all)
	check(notifications.SubscriptionFilter{Before: all[2].ID}, all[3:])
	check(notifications.SubscriptionFilter{Before: all[5].ID}, nil)
	check(notifications.SubscriptionFilter{UserID: "alice", Before: alice[0].ID, Limit: 1}, alice[1:2])

	var walked []notifications.Subscription
	f := notifications.SubscriptionFilter{UserID: "alice", Limit: 2}
	for page := 0; page <= len(alice); page++ {
		got := listSubscriptions(t, s, f)
		walked = append(walked, got...)
		if len(got) < f.Limit {
			break
		}
		f.Before = got[len(got)-1].ID
	}
	if !slices.Equal(subscriptionIDs(walked), subscriptionIDs(alice)) {
		t.Errorf("walking the pages visited %v, want %v", subscriptionIDs(walked), subscriptionIDs(alice))
	}

	for _, cursor := range []string{"not-a-cursor", strings.ToUpper(all[0].ID), "1"} {
		_, err := s.Subscriptions(t.Context(), notifications.SubscriptionFilter{Before: cursor})
		checkCode(t, fmt.Sprintf("Subscriptions(Before: %q)", cursor), err, eventflow.EINVALID)
	}
}

// testActiveSubscriptions: every user's active subscriptions, and only
// those; a subscription paused later drops out, one resumed comes back.
func testActiveSubscriptions(t *testing.T, s notifications.Store) {
	a1 := newSubscription("alice", "alice@example.com")
	a2 := newSubscription("bob", "bob@example.com")
	a2.Chan, a2.Address, a2.WebhookSecret = notifications.ChannelWebhook, "https://bob.example.com/hook", "whsec_bob"
	paused := newSubscription("carol", "carol@example.com")
	paused.Status = notifications.StatusPaused
	gone := newSubscription("dave", "dave@example.com")
	gone.Status = notifications.StatusUnsubscribed
	for _, sub := range []notifications.Subscription{a1, a2, paused, gone} {
		mustCreateSubscription(t, s, sub)
	}
	check := func(want ...notifications.Subscription) {
		t.Helper()
		got := activeSubscriptions(t, s)
		slices.SortFunc(got, func(a, b notifications.Subscription) int { return strings.Compare(a.ID, b.ID) })
		slices.SortFunc(want, func(a, b notifications.Subscription) int { return strings.Compare(a.ID, b.ID) })
		if len(got) != len(want) {
			t.Errorf("ActiveSubscriptions = %v, want %v", subscriptionIDs(got), subscriptionIDs(want))
			return
		}
		for i := range got {
			checkSubscription(t, got[i], want[i])
		}
	}
	check(a1, a2)

	a1.Status, a1.Version = notifications.StatusPaused, 2
	mustUpdateSubscription(t, s, a1)
	paused.Status, paused.Version = notifications.StatusActive, 2
	mustUpdateSubscription(t, s, paused)
	check(a2, paused)
}

func subscriptionsVersion(t *testing.T, s notifications.Store) int64 {
	t.Helper()
	v, err := s.SubscriptionsVersion(t.Context())
	if err != nil {
		t.Fatalf("SubscriptionsVersion: %v", err)
	}
	return v
}

// testSubscriptionsVersion: every change to any subscription makes the
// version grow; a refused change (pinned), a read or a delivery leaves it.
func testSubscriptionsVersion(t *testing.T, s notifications.Store) {
	last := subscriptionsVersion(t, s)
	step := func(what string, grows bool, do func() error) {
		t.Helper()
		err := do()
		if grows && err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		v := subscriptionsVersion(t, s)
		switch {
		case grows && v <= last:
			t.Errorf("SubscriptionsVersion after %s = %d, want more than %d", what, v, last)
		case !grows && v != last:
			t.Errorf("SubscriptionsVersion after %s = %d, want %d still", what, v, last)
		}
		last = v
	}
	sub := newSubscription("alice", "alice@example.com")
	other := newSubscription("bob", "bob@example.com")
	step("a creation", true, func() error { return s.CreateSubscription(t.Context(), sub) })
	step("another creation", true, func() error { return s.CreateSubscription(t.Context(), other) })
	step("a duplicate creation", false, func() error { return s.CreateSubscription(t.Context(), sub) })
	sub.Status, sub.Version = notifications.StatusPaused, 2
	step("an update", true, func() error { return s.UpdateSubscription(t.Context(), sub) })
	step("a stale update", false, func() error { return s.UpdateSubscription(t.Context(), sub) })
	step("reads", false, func() error {
		_, err := s.ActiveSubscriptions(t.Context())
		return err
	})
	e, _ := OrderEvents("bob")
	step("a recorded event", false, func() error {
		_, err := s.RecordEvent(t.Context(), e, notifications.InboxHandled, []notifications.Delivery{newDelivery(e, other, testTime())})
		return err
	})
	step("a deletion", true, func() error { return s.DeleteSubscription(t.Context(), sub.ID) })
	step("a deletion of a missing subscription", false, func() error { return s.DeleteSubscription(t.Context(), sub.ID) })
}

// checkDeliveries reports how the deliveries Deliveries(f) lists differ from
// want, in order.
func checkDeliveries(t *testing.T, s notifications.Store, f notifications.DeliveryFilter, want ...notifications.Delivery) {
	t.Helper()
	got, err := s.Deliveries(t.Context(), f)
	if err != nil {
		t.Errorf("Deliveries(%+v): %v", f, err)
		return
	}
	if len(got) != len(want) {
		t.Errorf("Deliveries(%+v) = %v, want %v", f, deliveryIDs(got), deliveryIDs(want))
		return
	}
	for i := range got {
		checkDelivery(t, got[i], want[i])
	}
}

// testRecordEvent: recording an event creates its deliveries, every field
// as given; recording it again, even with other deliveries, reports false
// and creates nothing; an event recorded as expired, without deliveries, is
// recorded all the same.
func testRecordEvent(t *testing.T, s notifications.Store) {
	s1 := newSubscription("alice", "alice@example.com")
	s2 := newSubscription("ops", "https://ops.example.com/hook")
	s2.Chan, s2.Scope = notifications.ChannelWebhook, notifications.ScopeAll
	s3 := newSubscription("auditor", "audit@example.com")
	for _, sub := range []notifications.Subscription{s1, s2, s3} {
		mustCreateSubscription(t, s, sub)
	}
	at := testTime()
	e, _ := OrderEvents("alice")
	d1, d2 := newDelivery(e, s1, at), newDelivery(e, s2, at)
	mustRecord(t, s, e, d1, d2)
	checkDelivery(t, getDelivery(t, s, d1.ID), d1)
	checkDelivery(t, getDelivery(t, s, d2.ID), d2)
	checkDeliveries(t, s, notifications.DeliveryFilter{EventID: e.ID}, d2, d1)

	d3 := newDelivery(e, s3, at)
	for _, again := range [][]notifications.Delivery{{d3}, {d1, d2}, nil} {
		created, err := s.RecordEvent(t.Context(), e, notifications.InboxHandled, again)
		if err != nil || created {
			t.Errorf("RecordEvent of a recorded event with %d deliveries = %v, %v; want false, nil", len(again), created, err)
		}
	}
	_, err := s.Delivery(t.Context(), d3.ID)
	checkCode(t, "Delivery offered with a redelivered event", err, eventflow.ENOTFOUND)
	checkDeliveries(t, s, notifications.DeliveryFilter{EventID: e.ID}, d2, d1)

	expired, _ := OrderEvents("alice")
	for i, want := range []bool{true, false} {
		created, err := s.RecordEvent(t.Context(), expired, notifications.InboxExpired, nil)
		if err != nil || created != want {
			t.Errorf("RecordEvent of an expired event, time %d = %v, %v; want %v, nil", i+1, created, err, want)
		}
	}
	// An event first recorded as expired stays so: a redelivery in time
	// notifies nobody either.
	late := newDelivery(expired, s1, at)
	if created, err := s.RecordEvent(t.Context(), expired, notifications.InboxHandled, []notifications.Delivery{late}); err != nil || created {
		t.Errorf("RecordEvent of an event recorded as expired = %v, %v; want false, nil", created, err)
	}
	checkDeliveries(t, s, notifications.DeliveryFilter{EventID: expired.ID})
}

// testRecordEventIsAtomic: when a delivery cannot be created (here: two of
// one event to one subscription), nothing is, and the event is not marked
// handled, so that recording it again can succeed.
func testRecordEventIsAtomic(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	other := newSubscription("alice", "alice@example.org")
	mustCreateSubscription(t, s, sub)
	mustCreateSubscription(t, s, other)
	at := testTime()
	e, _ := OrderEvents("alice")
	good, twin, second := newDelivery(e, other, at), newDelivery(e, sub, at), newDelivery(e, sub, at)
	created, err := s.RecordEvent(t.Context(), e, notifications.InboxHandled, []notifications.Delivery{good, twin, second})
	if err == nil || created {
		t.Fatalf("RecordEvent with two deliveries to one subscription = %v, %v; want an error", created, err)
	}
	checkDeliveries(t, s, notifications.DeliveryFilter{})
	mustRecord(t, s, e, good, twin)
	checkDeliveries(t, s, notifications.DeliveryFilter{}, twin, good)
}

// testRecordEvents: a batch records each new event and its deliveries, and
// creates nothing for an event in the inbox already, nor for a second
// record of an event earlier in the same batch; an expired event is kept
// with no deliveries. The events claimed jobs carry are the ones recorded.
func testRecordEvents(t *testing.T, s notifications.Store) {
	s1 := newSubscription("alice", "alice@example.com")
	s2 := newSubscription("auditor", "audit@example.com")
	mustCreateSubscription(t, s, s1)
	mustCreateSubscription(t, s, s2)
	at := testTime()
	if created, err := s.RecordEvents(t.Context(), nil); err != nil || len(created) != 0 {
		t.Errorf("RecordEvents of nothing = %v, %v; want nothing, nil", created, err)
	}
	e1, _ := OrderEvents("alice")
	e2, _ := OrderEvents("alice")
	old, _ := OrderEvents("alice")
	expired, _ := OrderEvents("alice")
	dOld := newDelivery(old, s1, at)
	mustRecord(t, s, old, dOld)

	d1a, d1b := newDelivery(e1, s1, at), newDelivery(e1, s2, at)
	d2 := newDelivery(e2, s1, at)
	again, twice, late := newDelivery(old, s2, at), newDelivery(e1, s2, at), newDelivery(expired, s1, at)
	created, err := s.RecordEvents(t.Context(), []notifications.EventRecord{
		{Event: e2, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{d2}},
		{Event: old, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{again}},
		{Event: e1, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{d1a, d1b}},
		{Event: expired, Status: notifications.InboxExpired},
		{Event: e1, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{twice}},
	})
	if want := []bool{true, false, true, true, false}; err != nil || !slices.Equal(created, want) {
		t.Fatalf("RecordEvents = %v, %v; want %v, nil", created, err, want)
	}
	for _, d := range []notifications.Delivery{d1a, d1b, d2, dOld} {
		checkDelivery(t, getDelivery(t, s, d.ID), d)
	}
	for _, d := range []notifications.Delivery{again, twice} {
		_, err := s.Delivery(t.Context(), d.ID)
		checkCode(t, "Delivery offered with an event recorded before", err, eventflow.ENOTFOUND)
	}
	checkDeliveries(t, s, notifications.DeliveryFilter{EventID: e1.ID}, d1b, d1a)
	checkDeliveries(t, s, notifications.DeliveryFilter{EventID: old.ID}, dOld)

	// Recorded as expired, the event stays so.
	if created, err := s.RecordEvent(t.Context(), expired, notifications.InboxHandled, []notifications.Delivery{late}); err != nil || created {
		t.Errorf("RecordEvent of an event recorded as expired = %v, %v; want false, nil", created, err)
	}
	events := map[string]event.Event{e1.ID: e1, e2.ID: e2, old.ID: old}
	jobs := claim(t, s, at, 10)
	if len(jobs) != 4 {
		t.Fatalf("claimed %d jobs, want 4", len(jobs))
	}
	for _, j := range jobs {
		checkEvent(t, j.Event, events[j.Delivery.EventID])
	}
}

// testRecordEventsIsAtomic: when one delivery of a batch cannot be created,
// no event of the batch is recorded, so that recording them again can
// succeed.
func testRecordEventsIsAtomic(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	at := testTime()
	good, _ := OrderEvents("alice")
	bad, _ := OrderEvents("alice")
	dGood, twin, second := newDelivery(good, sub, at), newDelivery(bad, sub, at), newDelivery(bad, sub, at)
	created, err := s.RecordEvents(t.Context(), []notifications.EventRecord{
		{Event: good, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{dGood}},
		{Event: bad, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{twin, second}},
	})
	if err == nil {
		t.Fatalf("RecordEvents with two deliveries of one event to one subscription = %v, nil; want an error", created)
	}
	checkDeliveries(t, s, notifications.DeliveryFilter{})
	created, err = s.RecordEvents(t.Context(), []notifications.EventRecord{
		{Event: good, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{dGood}},
		{Event: bad, Status: notifications.InboxHandled, Deliveries: []notifications.Delivery{twin}},
	})
	if err != nil || !slices.Equal(created, []bool{true, true}) {
		t.Fatalf("RecordEvents after a failed batch = %v, %v; want [true true], nil", created, err)
	}
	checkDeliveries(t, s, notifications.DeliveryFilter{}, twin, dGood)
}

// testRecordEventKeepsTheEvent: the event a claimed job carries is the
// event recorded, every attribute, its time in UTC to the microsecond, its
// data byte for byte (pinned: spacing, member order, a \u0000 escape and
// all), an empty trace parent included.
func testRecordEventKeepsTheEvent(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	at := testTime()
	e, _ := OrderEvents("alice")
	_, paid := OrderEvents("alice") // another order: its delivery does not wait for e's
	paid.TraceParent = ""
	paid.Data = []byte(`{"z":1,  "a" : {"note":"nul \u0000 and \u00e9 and é","n":1.50,"big":12345678901234567890},"list":[ ]}`)
	odd := event.Event{
		ID:      "not-a-uuid: any CloudEvents id",
		Source:  "urn:example:elsewhere",
		Type:    "billing.invoice.issued",
		Subject: "",
		Time:    testTime().Add(-time.Hour),
		Data:    []byte(`{}`),
	}
	written := []event.Event{e, paid, odd}
	for _, ev := range written {
		mustRecord(t, s, ev, newDelivery(ev, sub, at))
	}
	jobs := claim(t, s, at, 10)
	if len(jobs) != len(written) {
		t.Fatalf("claimed %d jobs, want %d", len(jobs), len(written))
	}
	for i, j := range jobs {
		checkEvent(t, j.Event, written[i])
		if !bytes.Equal(j.Event.Data, written[i].Data) {
			t.Errorf("event %s data:\n got %s\nwant %s (byte for byte)", written[i].ID, j.Event.Data, written[i].Data)
		}
		checkSubscription(t, j.Subscription, sub)
	}
}

// testClaimDue: a claim takes the pending deliveries due at now (pinned: due
// at next_attempt_at itself), oldest first, up to limit, counts an attempt
// for each and hides it for the lease; after the lease it is claimed again.
// A limit of zero or less claims nothing, and a lease under a microsecond
// is an error (both pinned).
func testClaimDue(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	base := testTime()
	var ds []notifications.Delivery
	var events []event.Event
	for i := range 4 {
		e, _ := OrderEvents("alice") // one order each: no delivery waits for another
		due := base
		if i == 2 {
			due = base.Add(time.Minute)
		}
		d := newDelivery(e, sub, due)
		mustRecord(t, s, e, d)
		ds, events = append(ds, d), append(events, e)
	}
	d1, d2, later, d4 := ds[0], ds[1], ds[2], ds[3]

	checkClaimed(t, "a claim before anything is due", claim(t, s, base.Add(-time.Microsecond), 10))
	for _, limit := range []int{0, -1} {
		jobs, err := s.ClaimDeliveries(t.Context(), base, limit, time.Minute)
		if err != nil || len(jobs) != 0 {
			t.Errorf("ClaimDeliveries with limit %d = %d jobs, %v; want none", limit, len(jobs), err)
		}
	}
	for _, lease := range []time.Duration{0, -time.Second, time.Nanosecond} {
		if _, err := s.ClaimDeliveries(t.Context(), base, 10, lease); err == nil {
			t.Errorf("ClaimDeliveries with a lease of %s succeeded", lease)
		}
	}

	jobs := claim(t, s, base, 2)
	checkClaimed(t, "a claim of 2", jobs, d1, d2)
	for i, j := range jobs {
		checkDelivery(t, j.Delivery, claimed(ds[i], base))
		checkDelivery(t, getDelivery(t, s, ds[i].ID), claimed(ds[i], base))
		checkEvent(t, j.Event, events[i])
		checkSubscription(t, j.Subscription, sub)
	}
	checkClaimed(t, "the next claim", claim(t, s, base, 10), d4)
	checkClaimed(t, "a claim within the leases", claim(t, s, base.Add(time.Minute-time.Microsecond), 10))

	jobs = claim(t, s, base.Add(time.Minute), 10)
	checkClaimed(t, "a claim once the leases ended", jobs, d1, d2, later, d4)
	for i, j := range jobs {
		want := claimed(ds[i], base.Add(time.Minute))
		if want.ID != later.ID {
			want.Attempts = 2
		}
		checkDelivery(t, j.Delivery, want)
	}
}

// testClaimInOrderPerSubject: a delivery is not claimed while an earlier
// delivery of the same subscription and subject is pending, whether claimed,
// waiting to be retried or due; once that one is sent or dead, it is. The
// deliveries of another subject or another subscription do not wait.
func testClaimInOrderPerSubject(t *testing.T, s notifications.Store) {
	a := newSubscription("alice", "alice@example.com")
	b := newSubscription("alice", "https://alice.example.com/hook")
	b.Chan = notifications.ChannelWebhook
	mustCreateSubscription(t, s, a)
	mustCreateSubscription(t, s, b)
	base := testTime()
	xCreated, xPaid := OrderEvents("alice")
	yCreated, _ := OrderEvents("alice")
	aX1, bX1 := newDelivery(xCreated, a, base), newDelivery(xCreated, b, base)
	aX2, bX2 := newDelivery(xPaid, a, base), newDelivery(xPaid, b, base)
	aY1 := newDelivery(yCreated, a, base)
	mustRecord(t, s, xCreated, aX1, bX1)
	mustRecord(t, s, xPaid, aX2, bX2)
	mustRecord(t, s, yCreated, aY1)

	const lease = time.Minute
	at := func(n int) time.Time { return base.Add(time.Duration(n) * lease) }
	checkClaimed(t, "the first claim", claim(t, s, at(0), 10), aX1, bX1, aY1)
	checkClaimed(t, "a claim after the leases", claim(t, s, at(1), 10), aX1, bX1, aY1)

	if err := s.MarkFailed(t.Context(), aX1.ID, "try later", at(60), false); err != nil {
		t.Fatal(err)
	}
	checkClaimed(t, "a claim while the first is to be retried", claim(t, s, at(2), 10), bX1, aY1)

	if err := s.MarkSent(t.Context(), bX1.ID, at(2)); err != nil {
		t.Fatal(err)
	}
	checkClaimed(t, "a claim after one was sent", claim(t, s, at(3), 10), bX2, aY1)

	if err := s.MarkFailed(t.Context(), aX1.ID, "gave up", at(60), true); err != nil {
		t.Fatal(err)
	}
	checkClaimed(t, "a claim after one went dead", claim(t, s, at(4), 10), aX2, bX2, aY1)
}

// testPendingSubjects: a subscription and subject with a delivery pending
// (due, claimed, or waiting for a retry) is reported; one whose deliveries
// are all sent or dead, or that has none, is not; other subscriptions of
// the same subject and other subjects of the same subscription are apart.
func testPendingSubjects(t *testing.T, s notifications.Store) {
	a := newSubscription("alice", "alice@example.com")
	b := newSubscription("alice", "alice+b@example.com")
	mustCreateSubscription(t, s, a)
	mustCreateSubscription(t, s, b)
	at := testTime()
	x1, x2 := OrderEvents("alice")
	y1, _ := OrderEvents("alice")
	z1, _ := OrderEvents("alice")
	aX1, aY1, bY1, aZ1 := newDelivery(x1, a, at), newDelivery(y1, a, at), newDelivery(y1, b, at), newDelivery(z1, a, at)
	mustRecord(t, s, x1, aX1)
	mustRecord(t, s, y1, aY1, bY1)
	mustRecord(t, s, z1, aZ1)
	key := func(sub notifications.Subscription, e event.Event) notifications.SubjectKey {
		return notifications.SubjectKey{SubscriptionID: sub.ID, Subject: e.Subject}
	}
	all := []notifications.SubjectKey{key(a, x1), key(a, y1), key(b, y1), key(a, z1), key(b, x1)}
	check := func(when string, want ...notifications.SubjectKey) {
		t.Helper()
		got, err := s.PendingSubjects(t.Context(), all)
		if err != nil {
			t.Fatalf("%s: PendingSubjects: %v", when, err)
		}
		less := func(p, q notifications.SubjectKey) int {
			return strings.Compare(p.SubscriptionID+" "+p.Subject, q.SubscriptionID+" "+q.Subject)
		}
		slices.SortFunc(got, less)
		slices.SortFunc(want, less)
		if !slices.Equal(got, want) {
			t.Errorf("%s: PendingSubjects = %v, want %v", when, got, want)
		}
	}
	check("all due", key(a, x1), key(a, y1), key(b, y1), key(a, z1))
	claim(t, s, at, 10)
	check("all claimed", key(a, x1), key(a, y1), key(b, y1), key(a, z1))
	if err := s.MarkSent(t.Context(), aX1.ID, at); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(t.Context(), aY1.ID, "gave up", at, true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(t.Context(), aZ1.ID, "try later", at.Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	check("one sent, one dead, one to be retried", key(b, y1), key(a, z1))
	mustRecord(t, s, x2, newDelivery(x2, a, at))
	check("a later event of a sent one", key(a, x1), key(b, y1), key(a, z1))
	if got, err := s.PendingSubjects(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("PendingSubjects(nil) = %v, %v; want nothing", got, err)
	}
}

// testClaimConcurrently: workers claiming at once, and marking what they
// claimed sent, claim every delivery exactly once, each subscription's
// deliveries of one subject in order and never two of them at once.
func testClaimConcurrently(t *testing.T, s notifications.Store) {
	const (
		workers       = 4
		subscriptions = 4
		ordersCount   = 8
		eventsEach    = 3
	)
	var subs []notifications.Subscription
	for i := range subscriptions {
		sub := newSubscription("alice", fmt.Sprintf("alice+%d@example.com", i))
		mustCreateSubscription(t, s, sub)
		subs = append(subs, sub)
	}
	base := testTime()
	type key struct{ subscription, subject string }
	queue := map[key][]string{} // delivery ids of each key in creation order
	total := 0
	for range ordersCount {
		o, e := NewOrder("alice")
		for i := range eventsEach {
			if i > 0 {
				o, e = changed(o, orders.StatusPaid)
			}
			var ds []notifications.Delivery
			for _, sub := range subs {
				d := newDelivery(e, sub, base)
				ds = append(ds, d)
				k := key{sub.ID, e.Subject}
				queue[k] = append(queue[k], d.ID)
				total++
			}
			mustRecord(t, s, e, ds...)
		}
	}

	var (
		mu       sync.Mutex
		seen     = map[string]bool{}
		inFlight = map[key]string{}
		done     int
	)
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				finished := done == total
				mu.Unlock()
				if finished || t.Failed() {
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("worker %d: %d of %d deliveries sent after a minute", w, done, total)
					return
				}
				jobs, err := s.ClaimDeliveries(t.Context(), base, 5, time.Hour)
				if err != nil {
					t.Errorf("worker %d: ClaimDeliveries: %v", w, err)
					return
				}
				if len(jobs) == 0 {
					time.Sleep(time.Millisecond) // the next ones wait for others' sends
					continue
				}
				mu.Lock()
				for _, j := range jobs {
					d := j.Delivery
					k := key{d.SubscriptionID, d.Subject}
					switch {
					case seen[d.ID]:
						t.Errorf("worker %d claimed %s a second time", w, d.ID)
					case inFlight[k] != "":
						t.Errorf("worker %d claimed %s while %s of the same subscription and subject was out", w, d.ID, inFlight[k])
					case len(queue[k]) == 0 || queue[k][0] != d.ID:
						t.Errorf("worker %d claimed %s out of order: next of its subscription and subject is %v", w, d.ID, queue[k])
					default:
						queue[k] = queue[k][1:]
					}
					seen[d.ID], inFlight[k] = true, d.ID
				}
				mu.Unlock()
				for _, j := range jobs {
					// Out of flight before it is marked sent: the next of
					// its kind cannot be claimed before that commits.
					mu.Lock()
					delete(inFlight, key{j.Delivery.SubscriptionID, j.Delivery.Subject})
					mu.Unlock()
					if err := s.MarkSent(t.Context(), j.Delivery.ID, base); err != nil {
						t.Errorf("worker %d: MarkSent: %v", w, err)
						return
					}
					mu.Lock()
					done++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != total {
		t.Errorf("claimed %d deliveries, want %d", len(seen), total)
	}
	counts, err := s.DeliveryCounts(t.Context())
	if err != nil || counts[notifications.DeliveryPending] != 0 {
		t.Errorf("DeliveryCounts = %v, %v; want none pending after all %d were sent", counts, err, total)
	}
}

// testMarkSentAndFailed: a failed attempt is retried at the time given, or
// is dead; a send records the time and clears the error; the send of a
// delivery gone dead meanwhile is recorded (pinned: it went out), and a late
// failure of a delivery sent meanwhile changes nothing (pinned: a worker
// whose lease ran out does not undo another's send). A missing delivery is
// ENOTFOUND.
func testMarkSentAndFailed(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	base := testTime()
	e1, _ := OrderEvents("alice")
	e2, _ := OrderEvents("alice")
	d1, d2 := newDelivery(e1, sub, base), newDelivery(e2, sub, base)
	mustRecord(t, s, e1, d1)
	mustRecord(t, s, e2, d2)
	checkClaimed(t, "the first claim", claim(t, s, base, 10), d1, d2)

	retryAt := base.Add(5 * time.Minute)
	for _, d := range []notifications.Delivery{d1, d2} {
		if err := s.MarkFailed(t.Context(), d.ID, "451 4.3.0 try again later", retryAt, false); err != nil {
			t.Fatalf("MarkFailed: %v", err)
		}
	}
	got := getDelivery(t, s, d1.ID)
	if got.Status != notifications.DeliveryPending || got.Attempts != 1 || got.LastError != "451 4.3.0 try again later" {
		t.Errorf("after a temporary failure: status %s, attempts %d, last error %q; want pending, 1, the error", got.Status, got.Attempts, got.LastError)
	}
	checkTime(t, "NextAttemptAt after a temporary failure", got.NextAttemptAt, stored(retryAt))
	checkClaimed(t, "a claim before the retry is due", claim(t, s, retryAt.Add(-time.Microsecond), 10))
	jobs := claim(t, s, retryAt, 10)
	checkClaimed(t, "a claim when the retry is due", jobs, d1, d2)
	if len(jobs) == 2 && jobs[0].Delivery.Attempts != 2 {
		t.Errorf("Attempts of a second claim = %d, want 2", jobs[0].Delivery.Attempts)
	}

	if err := s.MarkFailed(t.Context(), d1.ID, "550 5.1.1 no such user", retryAt, true); err != nil {
		t.Fatalf("MarkFailed dead: %v", err)
	}
	got = getDelivery(t, s, d1.ID)
	if got.Status != notifications.DeliveryDead || got.Attempts != 2 || got.LastError != "550 5.1.1 no such user" || got.SentAt != nil {
		t.Errorf("a dead delivery: %+v; want dead after 2 attempts, with its error", got)
	}
	sentAt := retryAt.Add(time.Second)
	if err := s.MarkSent(t.Context(), d2.ID, sentAt); err != nil {
		t.Fatalf("MarkSent: %v", err)
	}
	want := d2
	want.Status, want.Attempts, want.SentAt = notifications.DeliverySent, 2, &sentAt
	want.NextAttemptAt, want.UpdatedAt = retryAt.Add(time.Minute), sentAt
	checkDelivery(t, getDelivery(t, s, d2.ID), want)
	checkClaimed(t, "a claim once every delivery is sent or dead", claim(t, s, base.Add(24*time.Hour), 10))

	if err := s.MarkFailed(t.Context(), d2.ID, "late", retryAt, false); err != nil {
		t.Errorf("MarkFailed of a sent delivery: %v", err)
	}
	if err := s.MarkFailed(t.Context(), d2.ID, "late", retryAt, true); err != nil {
		t.Errorf("MarkFailed dead of a sent delivery: %v", err)
	}
	checkDelivery(t, getDelivery(t, s, d2.ID), want)

	if err := s.MarkSent(t.Context(), d1.ID, sentAt); err != nil {
		t.Errorf("MarkSent of a dead delivery: %v", err)
	}
	if got := getDelivery(t, s, d1.ID); got.Status != notifications.DeliverySent || got.LastError != "" || got.SentAt == nil {
		t.Errorf("a dead delivery marked sent: %+v; want sent, with no error", got)
	}

	for _, id := range []string{newID(), "not-a-uuid"} {
		checkCode(t, "MarkSent of a missing delivery", s.MarkSent(t.Context(), id, base), eventflow.ENOTFOUND)
		checkCode(t, "MarkFailed of a missing delivery", s.MarkFailed(t.Context(), id, "x", base, false), eventflow.ENOTFOUND)
	}
}

// testMarkSentBatch: each delivery of the batch is sent at its own time,
// whatever its status, its last error cleared; ids of no delivery are
// skipped; the deliveries not in the batch are left as they were.
func testMarkSentBatch(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	base := testTime()
	var ds []notifications.Delivery
	for range 3 {
		e, _ := OrderEvents("alice")
		d := newDelivery(e, sub, base)
		mustRecord(t, s, e, d)
		ds = append(ds, d)
	}
	checkClaimed(t, "the first claim", claim(t, s, base, 10), ds...)
	if err := s.MarkFailed(t.Context(), ds[1].ID, "gave up", base, true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSentBatch(t.Context(), nil); err != nil {
		t.Errorf("MarkSentBatch of nothing: %v", err)
	}
	at0, at1 := base.Add(time.Second), base.Add(2*time.Second)
	err := s.MarkSentBatch(t.Context(), []notifications.SentMark{
		{ID: ds[0].ID, At: at0}, {ID: newID(), At: at0}, {ID: "not-a-uuid", At: at0}, {ID: ds[1].ID, At: at1},
	})
	if err != nil {
		t.Fatalf("MarkSentBatch: %v", err)
	}
	for i, at := range []time.Time{at0, at1} {
		want := claimed(ds[i], base)
		want.Status, want.SentAt, want.UpdatedAt = notifications.DeliverySent, &at, at
		if i == 1 {
			want.NextAttemptAt = base // as the dead delivery's MarkFailed left it
		}
		checkDelivery(t, getDelivery(t, s, ds[i].ID), want)
	}
	checkDelivery(t, getDelivery(t, s, ds[2].ID), claimed(ds[2], base))
}

// testRetryDelivery: a dead delivery is made pending again, due at now,
// with no attempts and (pinned) no last error, and is claimed again; a
// pending or sent delivery is ErrNotDead and unchanged; a missing one is
// ENOTFOUND.
func testRetryDelivery(t *testing.T, s notifications.Store) {
	sub := newSubscription("alice", "alice@example.com")
	mustCreateSubscription(t, s, sub)
	base := testTime()
	e1, _ := OrderEvents("alice")
	e2, _ := OrderEvents("alice")
	dead, sent := newDelivery(e1, sub, base), newDelivery(e2, sub, base)
	mustRecord(t, s, e1, dead)
	mustRecord(t, s, e2, sent)
	claim(t, s, base, 10)
	if err := s.MarkFailed(t.Context(), dead.ID, "550 no such user", base.Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(t.Context(), sent.ID, base); err != nil {
		t.Fatal(err)
	}

	now := base.Add(2 * time.Hour)
	got, err := s.RetryDelivery(t.Context(), dead.ID, now)
	if err != nil {
		t.Fatalf("RetryDelivery of a dead delivery: %v", err)
	}
	want := dead
	want.NextAttemptAt, want.UpdatedAt = now, now
	checkDelivery(t, got, want)
	checkDelivery(t, getDelivery(t, s, dead.ID), want)
	checkClaimed(t, "a claim after the retry", claim(t, s, now, 10), dead)

	for _, id := range []string{dead.ID, sent.ID} {
		before := getDelivery(t, s, id)
		if _, err := s.RetryDelivery(t.Context(), id, now); !errors.Is(err, notifications.ErrNotDead) {
			t.Errorf("RetryDelivery of a %s delivery: %v, want ErrNotDead", before.Status, err)
		}
		checkDelivery(t, getDelivery(t, s, id), before)
	}
	for _, id := range []string{newID(), "not-a-uuid", strings.ToUpper(dead.ID)} {
		_, err := s.RetryDelivery(t.Context(), id, now)
		checkCode(t, fmt.Sprintf("RetryDelivery(%q)", id), err, eventflow.ENOTFOUND)
		if errors.Is(err, notifications.ErrNotDead) {
			t.Errorf("RetryDelivery(%q): %v is also ErrNotDead", id, err)
		}
	}
}

// testDeliveries: newest first, filtered by event, subscription, user and
// status, alone or together, bounded by Limit (zero or less means no bound:
// pinned) and paginated by the Before cursor; a Before or a SubscriptionID
// that is not a UUID is EINVALID (pinned); Delivery of a missing id is
// ENOTFOUND.
func testDeliveries(t *testing.T, s notifications.Store) {
	alice := newSubscription("alice", "alice@example.com")
	bob := newSubscription("bob", "bob@example.com")
	mustCreateSubscription(t, s, alice)
	mustCreateSubscription(t, s, bob)
	at := testTime()
	e1, e2 := OrderEvents("alice")
	e3, _ := OrderEvents("bob")
	var all []notifications.Delivery // newest first
	record := func(e event.Event, subs ...notifications.Subscription) []notifications.Delivery {
		var ds []notifications.Delivery
		for _, sub := range subs {
			d := newDelivery(e, sub, at)
			ds = append(ds, d)
			all = append([]notifications.Delivery{d}, all...)
		}
		mustRecord(t, s, e, ds...)
		return ds
	}
	r1 := record(e1, alice, bob)
	r2 := record(e2, alice)
	r3 := record(e3, bob, alice)
	// all: r3[1] r3[0] r2[0] r1[1] r1[0]

	claim(t, s, at, 10)
	if err := s.MarkSent(t.Context(), r1[0].ID, at); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(t.Context(), r3[0].ID, "gone", at, true); err != nil {
		t.Fatal(err)
	}
	for i := range all {
		all[i] = getDelivery(t, s, all[i].ID)
	}
	byID := func(ids ...string) []notifications.Delivery {
		var list []notifications.Delivery
		for _, d := range all {
			if slices.Contains(ids, d.ID) {
				list = append(list, d)
			}
		}
		return list
	}
	type F = notifications.DeliveryFilter
	checkDeliveries(t, s, F{}, all...)
	checkDeliveries(t, s, F{Limit: -1}, all...)
	checkDeliveries(t, s, F{Limit: 2}, all[:2]...)
	checkDeliveries(t, s, F{EventID: e1.ID}, byID(r1[0].ID, r1[1].ID)...)
	checkDeliveries(t, s, F{EventID: newID()})
	checkDeliveries(t, s, F{SubscriptionID: alice.ID}, byID(r1[0].ID, r2[0].ID, r3[1].ID)...)
	checkDeliveries(t, s, F{SubscriptionID: newID()})
	checkDeliveries(t, s, F{UserID: "bob"}, byID(r1[1].ID, r3[0].ID)...)
	checkDeliveries(t, s, F{Status: notifications.DeliveryPending}, byID(r1[1].ID, r2[0].ID, r3[1].ID)...)
	checkDeliveries(t, s, F{Status: notifications.DeliverySent}, byID(r1[0].ID)...)
	checkDeliveries(t, s, F{Status: notifications.DeliveryDead, UserID: "bob"}, byID(r3[0].ID)...)
	checkDeliveries(t, s, F{Status: notifications.DeliveryDead, UserID: "alice"})
	checkDeliveries(t, s, F{SubscriptionID: alice.ID, EventID: e2.ID, UserID: "alice", Status: notifications.DeliveryPending}, r2[0])
	checkDeliveries(t, s, F{Before: all[1].ID}, all[2:]...)
	checkDeliveries(t, s, F{Before: all[4].ID})
	checkDeliveries(t, s, F{Before: newID(), SubscriptionID: alice.ID, Limit: 1}, byID(r3[1].ID)...)

	var walked []notifications.Delivery
	f := F{Limit: 2}
	for page := 0; page <= len(all); page++ {
		got, err := s.Deliveries(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		walked = append(walked, got...)
		if len(got) < f.Limit {
			break
		}
		f.Before = got[len(got)-1].ID
	}
	if !slices.Equal(deliveryIDs(walked), deliveryIDs(all)) {
		t.Errorf("walking the pages visited %v, want %v", deliveryIDs(walked), deliveryIDs(all))
	}

	for _, f := range []F{{Before: "not-a-cursor"}, {Before: strings.ToUpper(all[0].ID)}, {SubscriptionID: "not-a-uuid"}, {Status: "sent' OR 'a' = 'a"}, {Status: "Dead"}} {
		_, err := s.Deliveries(t.Context(), f)
		checkCode(t, fmt.Sprintf("Deliveries(%+v)", f), err, eventflow.EINVALID)
	}
	for _, id := range []string{newID(), "", "not-a-uuid", strings.ToUpper(all[0].ID)} {
		_, err := s.Delivery(t.Context(), id)
		checkCode(t, fmt.Sprintf("Delivery(%q)", id), err, eventflow.ENOTFOUND)
	}
}

// testDeliveryCounts: the pending and the dead deliveries are counted, zero
// included (pinned: a gauge of each goes back to zero); the sent ones are
// not (counting the activity log would cost more at every scrape).
func testDeliveryCounts(t *testing.T, s notifications.Store) {
	check := func(pending, dead int64) {
		t.Helper()
		got, err := s.DeliveryCounts(t.Context())
		want := map[notifications.DeliveryStatus]int64{
			notifications.DeliveryPending: pending,
			notifications.DeliveryDead:    dead,
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("DeliveryCounts = %v, %v; want %v", got, err, want)
		}
	}
	check(0, 0)
	at := testTime()
	var ds []notifications.Delivery
	for i := range 5 {
		sub := newSubscription("alice", fmt.Sprintf("alice+%d@example.com", i))
		mustCreateSubscription(t, s, sub)
		e, _ := OrderEvents("alice")
		d := newDelivery(e, sub, at)
		mustRecord(t, s, e, d)
		ds = append(ds, d)
	}
	check(5, 0)
	claim(t, s, at, 10)
	if err := s.MarkSent(t.Context(), ds[0].ID, at); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(t.Context(), ds[1].ID, "dead", at, true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(t.Context(), ds[2].ID, "later", at, false); err != nil {
		t.Fatal(err)
	}
	check(3, 1)
}

// testSecret: the first value stored under a name is the one every caller
// gets, however many ask at once; names are independent; any bytes do.
func testSecret(t *testing.T, s notifications.Store) {
	secret := func(name string, value []byte) []byte {
		t.Helper()
		got, err := s.Secret(t.Context(), name, value)
		if err != nil {
			t.Fatalf("Secret(%q): %v", name, err)
		}
		return got
	}
	first := []byte("\x00\xff first secret \x00")
	if got := secret("unsubscribe", first); !bytes.Equal(got, first) {
		t.Errorf("Secret of a new name = %q, want %q", got, first)
	}
	if got := secret("unsubscribe", []byte("second")); !bytes.Equal(got, first) {
		t.Errorf("Secret of a known name = %q, want the first value %q", got, first)
	}
	if got := secret("other", []byte("other")); string(got) != "other" {
		t.Errorf("Secret of another name = %q, want %q", got, "other")
	}

	const callers = 8
	got := make([][]byte, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			v, err := s.Secret(t.Context(), "race", []byte(fmt.Sprintf("value %d", i)))
			if err != nil {
				t.Errorf("caller %d: Secret: %v", i, err)
			}
			got[i] = v
		})
	}
	close(start)
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) || !bytes.HasPrefix(got[0], []byte("value ")) {
			t.Fatalf("concurrent callers of Secret got %q, want one of their values, the same for all", got)
		}
	}
}
