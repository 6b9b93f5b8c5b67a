package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/kafka"
)

// CommittedOrder is an order as the database has it at the end of a run.
type CommittedOrder struct {
	ID, User, Currency, Status string
	Total, Version             int64
}

// CommittedEvent is an event that must exist because its change committed:
// an order at version v has had events 1..v, of types its lifecycle fixes.
type CommittedEvent struct {
	OrderID, Type, User, Currency string
	Seq, Total                    int64
}

// eventTypes returns the types of the events 1..version of an order that
// is now in status: the lifecycle has one path to each (status, version).
func eventTypes(status string, version int64) ([]string, error) {
	const p = "orders.order."
	path := map[string][]string{
		"created":   {"created"},
		"paid":      {"created", "paid"},
		"shipped":   {"created", "paid", "shipped"},
		"delivered": {"created", "paid", "shipped", "delivered"},
	}
	var steps []string
	switch {
	case status == "cancelled" && version == 2:
		steps = []string{"created", "cancelled"}
	case status == "cancelled" && version == 3:
		steps = []string{"created", "paid", "cancelled"}
	default:
		steps = path[status]
		if int64(len(steps)) != version {
			return nil, fmt.Errorf("status %q at version %d is no path of the lifecycle", status, version)
		}
	}
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = p + s
	}
	return out, nil
}

// Evidence is what the checker reads besides the orders table and the topic.
type Evidence struct {
	Guarantee string
	Orders    []CommittedOrder
	// Records are the orders topic read with read_committed, in partition
	// and offset order.
	Records []*kgo.Record
	// Injected counts copies of records the driver produced again; Poison
	// the poison records it produced (keys starting PoisonPrefix).
	Injected, Poison int
	DeadLetters      []*kgo.Record
	Emails           []Accepted
	Subs             []*SubSpec
	Kills            []Kill
	// MarkFailed holds the deliveries a notifier logged as sent but not
	// recorded (the database failed it): they are sent again.
	MarkFailed map[string]bool
	// Dead and Pending count deliveries in the database by status.
	Dead, Pending int
	// Crashed lists processes that exited without the driver ending them.
	Crashed []string
	// Settled is false when the system did not settle in time.
	Settled bool
}

// PoisonPrefix starts the key of every poison record the driver produces.
const PoisonPrefix = "chaos-poison-"

// KafkaFigures are the topic's counts against what committed.
type KafkaFigures struct {
	Committed   int // events that must exist
	Records     int // records read (read_committed), poison excluded
	Unique      int // distinct committed events among them
	Lost        int // committed, not in the topic
	Duplicated  int // records beyond the first of their event, injected copies excluded
	Injected    int
	Reordered   int // events first seen after a later event of their order
	Phantom     int // events in the topic that never committed, or that differ from what committed
	Undecodable int // records that are neither events nor the driver's poison
	Misplaced   int // events keyed other than by order id, or orders split over partitions
	Poison      int
}

// MailFigures are the emails against what the committed events call for.
type MailFigures struct {
	Expected int
	// Delivered counts expected notifications that arrived at least once.
	Delivered int
	Lost      int
	// LostWithEvent is the part of Lost whose event is in Kafka: the notifier's fault, not the relay's.
	LostWithEvent int
	Accepted      int // messages the SMTP sink accepted
	Duplicated    int
	// Explained splits Duplicated by cause.
	Explained       map[string]int
	Unexplained     int
	SplitMessageIDs int // events notified to one subscription under several Message-IDs
	Unwanted        int // emails to a subscription that must not hear of the event
	Unknown         int // emails to no known subscription, or of no known event
	Reordered       int // first copies out of sequence per subscription and order
	Dead, Pending   int
	// DeadLettersPoison counts the poison records in the dead-letter topic,
	// DLQCopies the second copies of them (a notifier killed after setting
	// one aside, before committing, sets it aside again), DLQBad the dead
	// letters that are not poison.
	DeadLettersPoison, DLQCopies, DLQBad int
	// Latency is from an event's time to the sink accepting the first copy
	// of a notification of it: p50, p99 and the longest.
	Latency [3]time.Duration
}

// Invariant is one checked property.
type Invariant struct {
	Name   string
	OK     bool
	Detail string
	// Expected marks a failure the guarantee allows (at-most-once losing
	// events): reported, not failed.
	Expected bool
}

// Result is one run's verdict.
type Result struct {
	Kafka      KafkaFigures
	Mail       MailFigures
	Invariants []Invariant
	// Samples hold a few examples per problem, for the report.
	Samples map[string][]string
}

// Failed reports whether an invariant failed that the guarantee does not allow.
func (r *Result) Failed() bool {
	for _, inv := range r.Invariants {
		if !inv.OK && !inv.Expected {
			return true
		}
	}
	return false
}

func (r *Result) sample(kind, format string, args ...any) {
	if len(r.Samples[kind]) < 5 {
		r.Samples[kind] = append(r.Samples[kind], fmt.Sprintf(format, args...))
	}
}

// Explanations of a duplicate email: why the copy before it was sent again.
const (
	ExplainReplyLost    = "the server accepted, its reply was lost (connection dropped after DATA)"
	ExplainKilled       = "the notifier was SIGKILLed after the server accepted, before marking it sent"
	ExplainMarkFailed   = "marking it sent failed (database down), so it was sent again"
	explainNoneRecorded = ""
)

type eventKey struct {
	order string
	seq   int64
}

// Check compares what arrived with what committed.
func Check(ev Evidence) *Result {
	r := &Result{Samples: map[string][]string{}}
	atMostOnce := ev.Guarantee == "at-most-once"

	// What must exist.
	expected := map[eventKey]CommittedEvent{}
	badOrders := 0
	for _, o := range ev.Orders {
		types, err := eventTypes(o.Status, o.Version)
		if err != nil {
			badOrders++
			r.sample("orders", "order %s: %v", o.ID, err)
			continue
		}
		for i, t := range types {
			expected[eventKey{o.ID, int64(i + 1)}] = CommittedEvent{OrderID: o.ID, Type: t, User: o.User, Currency: o.Currency, Seq: int64(i + 1), Total: o.Total}
		}
	}
	k := &r.Kafka
	k.Committed = len(expected)
	k.Injected = ev.Injected

	// What the topic holds.
	byID := map[string]eventKey{}
	eventTime := map[string]time.Time{}
	idOf := map[eventKey]string{}
	lastSeq := map[string]int64{}
	partitionOf := map[string]int32{}
	copies := 0
	for _, rec := range ev.Records {
		if strings.HasPrefix(string(rec.Key), PoisonPrefix) {
			k.Poison++
			continue
		}
		k.Records++
		e, err := kafka.DecodeRecord(rec)
		if err != nil {
			k.Undecodable++
			r.sample("kafka-undecodable", "partition %d offset %d: %v", rec.Partition, rec.Offset, err)
			continue
		}
		if string(rec.Key) != e.Subject {
			k.Misplaced++
			r.sample("kafka-misplaced", "event %s of order %s keyed %q", e.ID, e.Subject, rec.Key)
		}
		if p, ok := partitionOf[e.Subject]; ok && p != rec.Partition {
			k.Misplaced++
			r.sample("kafka-misplaced", "order %s in partitions %d and %d", e.Subject, p, rec.Partition)
		}
		partitionOf[e.Subject] = rec.Partition
		if _, seen := byID[e.ID]; seen {
			copies++
			continue
		}
		key := eventKey{e.Subject, e.Sequence}
		byID[e.ID] = key
		eventTime[e.ID] = e.Time
		want, ok := expected[key]
		if !ok || want.Type != e.Type {
			k.Phantom++
			r.sample("kafka-phantom", "event %s: order %s sequence %d type %s did not commit", e.ID, e.Subject, e.Sequence, e.Type)
			continue
		}
		if other, dup := idOf[key]; dup {
			k.Phantom++
			r.sample("kafka-phantom", "order %s sequence %d published as two events, %s and %s", e.Subject, e.Sequence, other, e.ID)
			continue
		}
		idOf[key] = e.ID
		k.Unique++
		if e.Sequence < lastSeq[e.Subject] {
			k.Reordered++
			r.sample("kafka-reordered", "order %s: event %d (%s) after event %d", e.Subject, e.Sequence, e.ID, lastSeq[e.Subject])
		}
		lastSeq[e.Subject] = max(lastSeq[e.Subject], e.Sequence)
	}
	k.Duplicated = max(copies-ev.Injected, 0)
	for key := range expected {
		if _, ok := idOf[key]; !ok {
			k.Lost++
			r.sample("kafka-lost", "order %s event %d (%s)", key.order, key.seq, expected[key].Type)
		}
	}

	// The emails.
	m := &r.Mail
	m.Explained = map[string]int{}
	m.Accepted = len(ev.Emails)
	m.Dead, m.Pending = ev.Dead, ev.Pending
	subByAddr := map[string]*SubSpec{}
	for _, s := range ev.Subs {
		subByAddr[strings.ToLower(s.Address)] = s
	}
	type notifKey struct {
		ev  eventKey
		sub string
	}
	wanted := map[notifKey]bool{}
	for key, e := range expected {
		for _, s := range ev.Subs {
			if s.Wants(e) {
				wanted[notifKey{key, s.Name}] = true
			}
		}
	}
	m.Expected = len(wanted)
	got := map[notifKey][]Accepted{}
	var order []notifKey
	for _, a := range ev.Emails {
		if len(a.To) != 1 {
			m.Unknown++
			r.sample("mail-unknown", "message %s to %v", a.MessageID, a.To)
			continue
		}
		s := subByAddr[a.To[0]]
		key, known := byID[a.EventID]
		if s == nil || !known {
			m.Unknown++
			r.sample("mail-unknown", "message %s to %s of event %q: no such subscription or event", a.MessageID, a.To[0], a.EventID)
			continue
		}
		nk := notifKey{key, s.Name}
		if !wanted[nk] {
			m.Unwanted++
			r.sample("mail-unwanted", "%s (%s) got %s of order %s, which it must not hear of", s.Name, s.State, a.EventType, key.order)
			continue
		}
		if len(got[nk]) == 0 {
			order = append(order, nk)
		}
		got[nk] = append(got[nk], a)
	}
	killedAt := map[string][]Kill{}
	for _, kl := range ev.Kills {
		if kl.Signal == "SIGKILL" {
			killedAt[kl.Instance] = append(killedAt[kl.Instance], kl)
		}
	}
	lastPerSubOrder := map[string]int64{}
	var latencies []time.Duration
	for _, nk := range order {
		list := got[nk]
		if t, ok := eventTime[list[0].EventID]; ok {
			latencies = append(latencies, list[0].At.Sub(t))
		}
		ids := map[string]bool{}
		for _, a := range list {
			ids[a.MessageID] = true
		}
		if len(ids) > 1 {
			m.SplitMessageIDs++
			r.sample("mail-split", "order %s event %d to %s under %d Message-IDs", nk.ev.order, nk.ev.seq, nk.sub, len(ids))
		}
		for i := 1; i < len(list); i++ {
			m.Duplicated++
			why := explain(list[i-1], killedAt, ev.MarkFailed)
			if why == explainNoneRecorded {
				m.Unexplained++
				p := list[i-1]
				r.sample("mail-unexplained", "%s sent twice to %s by %s and %s: first copy #%d reply %s confirmed %v",
					p.MessageID, nk.sub, p.Instance, list[i].Instance, p.N, p.Reply, p.Confirmed)
				continue
			}
			m.Explained[why]++
		}
		so := nk.sub + "/" + nk.ev.order
		if nk.ev.seq < lastPerSubOrder[so] {
			m.Reordered++
			r.sample("mail-reordered", "%s heard of order %s event %d after event %d", nk.sub, nk.ev.order, nk.ev.seq, lastPerSubOrder[so])
		}
		lastPerSubOrder[so] = max(lastPerSubOrder[so], nk.ev.seq)
	}
	if n := len(latencies); n > 0 {
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		m.Latency = [3]time.Duration{latencies[n/2], latencies[n*99/100], latencies[n-1]}
	}
	for nk := range wanted {
		if len(got[nk]) > 0 {
			m.Delivered++
			continue
		}
		m.Lost++
		if _, inKafka := idOf[nk.ev]; inKafka {
			m.LostWithEvent++
			r.sample("mail-lost", "%s never heard of order %s event %d (%s), which is in Kafka", nk.sub, nk.ev.order, nk.ev.seq, expected[nk.ev].Type)
		}
	}

	// Dead letters: exactly the poison.
	poisonSeen := map[string]bool{}
	for _, rec := range ev.DeadLetters {
		if strings.HasPrefix(string(rec.Key), PoisonPrefix) {
			if poisonSeen[string(rec.Key)] {
				m.DLQCopies++
			} else {
				poisonSeen[string(rec.Key)] = true
				m.DeadLettersPoison++
			}
		} else {
			m.DLQBad++
			r.sample("dlq", "dead letter keyed %q: not a poison record", rec.Key)
		}
	}

	add := func(name string, ok bool, expectedFail bool, format string, args ...any) {
		r.Invariants = append(r.Invariants, Invariant{Name: name, OK: ok, Expected: !ok && expectedFail, Detail: fmt.Sprintf(format, args...)})
	}
	add("every order in the database is a path of the lifecycle", badOrders == 0, false,
		"%d orders, %d inconsistent", len(ev.Orders), badOrders)
	add("kafka: every committed change is in the topic (none lost)", k.Lost == 0, atMostOnce,
		"%d committed, %d in the topic, %d lost%s", k.Committed, k.Unique, k.Lost, ifStr(atMostOnce && k.Lost > 0, " (at-most-once: losing is its contract)"))
	add("kafka: in order per order id (by sequence, duplicates dropped by event id)", k.Reordered == 0, false,
		"%d reordered", k.Reordered)
	add("kafka: nothing in the topic that did not commit; keyed by order id, one partition per order",
		k.Phantom == 0 && k.Misplaced == 0 && k.Undecodable == 0, false,
		"%d phantom, %d misplaced, %d undecodable (plus %d poison records injected on purpose)", k.Phantom, k.Misplaced, k.Undecodable, k.Poison)
	if atMostOnce {
		add("kafka: no event twice (at-most-once)", k.Duplicated == 0, false,
			"%d duplicated records (besides %d injected copies)", k.Duplicated, k.Injected)
	} else {
		add("kafka: duplicates are redeliveries of the same event id (allowed, deduplicated downstream)", true, false,
			"%d duplicated records by the relay, %d injected copies", k.Duplicated, k.Injected)
	}
	lostByRelay := m.Lost - m.LostWithEvent
	add("notifications: every expected notification delivered (none lost)", m.LostWithEvent == 0 && (lostByRelay == 0 || atMostOnce),
		atMostOnce && m.LostWithEvent == 0,
		"%d expected, %d delivered, %d lost (%d of them with the event in Kafka)", m.Expected, m.Delivered, m.Lost, m.LostWithEvent)
	add("notifications: every duplicate explained (same Message-ID, accepted-then-crash window only)", m.Unexplained == 0, false,
		"%d duplicates: %s; %d unexplained", m.Duplicated, explainedText(m.Explained), m.Unexplained)
	add("notifications: one Message-ID per event and subscription", m.SplitMessageIDs == 0, false,
		"%d events notified under several Message-IDs", m.SplitMessageIDs)
	add("notifications: nothing to unsubscribed, paused or non-matching subscribers", m.Unwanted == 0 && m.Unknown == 0, false,
		"%d unwanted, %d unknown", m.Unwanted, m.Unknown)
	add("notifications: in order per subscription and order", m.Reordered == 0, false, "%d reordered", m.Reordered)
	add("notifications: no delivery dead or still pending", m.Dead == 0 && m.Pending == 0, false,
		"%d dead, %d pending", m.Dead, m.Pending)
	add("dead letters: exactly the poison records", m.DLQBad == 0 && m.DeadLettersPoison == ev.Poison, false,
		"%d poison injected, %d dead-lettered (%d of them twice), %d other records dead-lettered", ev.Poison, m.DeadLettersPoison, m.DLQCopies, m.DLQBad)
	add("no eventflow process crashed", len(ev.Crashed) == 0, false, "%s", orNone(ev.Crashed))
	add("the system settled (outbox empty, every event consumed, no delivery pending)", ev.Settled, false, "%s", ifStr(ev.Settled, "yes", "not within the bound"))
	return r
}

// killWindow bounds the time from the server accepting a message to the
// notifier recording it as sent: the reply, held by the sink at most a few
// seconds, and the UPDATE. A kill later than this cannot explain a resend.
const killWindow = 20 * time.Second

// explain says why the copy a of an email was sent again, or "".
func explain(a Accepted, killed map[string][]Kill, markFailed map[string]bool) string {
	if a.Reply == ReplyDropped || a.Reply == ReplyWriteFailed {
		return ExplainReplyLost
	}
	// Killed after the server accepted, before it could mark the message
	// sent; or before the server had read the message whole: then it was
	// on its way when the process died, which never read the reply.
	for _, k := range killed[a.Instance] {
		if k.At.Sub(a.At) < killWindow {
			return ExplainKilled
		}
	}
	if markFailed[a.DeliveryID] {
		return ExplainMarkFailed
	}
	return explainNoneRecorded
}

func explainedText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d because %s", m[k], k))
	}
	return strings.Join(parts, "; ")
}

func ifStr(cond bool, s string, otherwise ...string) string {
	if cond {
		return s
	}
	if len(otherwise) > 0 {
		return otherwise[0]
	}
	return ""
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
