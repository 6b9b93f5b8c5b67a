package chaos

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/kafka"
)

// world is a small run: two orders of u0, and the subscription all-u0.
type world struct {
	ev     Evidence
	events map[string]event.Event // by "order/seq"
}

func newWorld(t *testing.T) *world {
	w := &world{events: map[string]event.Event{}}
	w.ev = Evidence{
		Guarantee: "exactly-once",
		Orders: []CommittedOrder{
			{ID: "0190c0de-0000-7000-8000-000000000001", User: "u0", Currency: "EUR", Status: "shipped", Total: 100, Version: 3},
			{ID: "0190c0de-0000-7000-8000-000000000002", User: "u1", Currency: "USD", Status: "cancelled", Total: 9000, Version: 2},
		},
		MarkFailed: map[string]bool{},
		Settled:    true,
	}
	for _, s := range Subscriptions() {
		s.Address = s.Name + ".test@chaos.test"
		w.ev.Subs = append(w.ev.Subs, s)
	}
	for _, o := range w.ev.Orders {
		types, err := eventTypes(o.Status, o.Version)
		if err != nil {
			t.Fatal(err)
		}
		for i, typ := range types {
			seq := int64(i + 1)
			data, _ := json.Marshal(map[string]any{"id": o.ID, "user_id": o.User, "currency": o.Currency, "total": o.Total})
			w.events[fmt.Sprintf("%s/%d", o.ID, seq)] = event.Event{
				ID: fmt.Sprintf("e-%s-%d", o.ID[len(o.ID)-1:], seq), Source: "/eventflow/orders", Type: typ, Subject: o.ID,
				Time: time.Now(), DataSchema: "http://x/v1", Sequence: seq, Data: data,
			}
		}
	}
	return w
}

func (w *world) publish(order string, seqs ...int64) {
	for _, s := range seqs {
		e := w.events[fmt.Sprintf("%s/%d", order, s)]
		r := kafka.EncodeRecord("t", e)
		r.Partition = int32(order[len(order)-1] - '0')
		r.Offset = int64(len(w.ev.Records))
		w.ev.Records = append(w.ev.Records, r)
	}
}

// mail records the sink accepting the notification of order/seq to sub.
func (w *world) mail(order string, seq int64, sub, messageID, instance, reply string) {
	e := w.events[fmt.Sprintf("%s/%d", order, seq)]
	w.ev.Emails = append(w.ev.Emails, Accepted{
		N: len(w.ev.Emails) + 1, MessageID: messageID + "@x", To: []string{sub + ".test@chaos.test"}, Instance: instance,
		EventID: e.ID, EventType: e.Type, DeliveryID: messageID, At: time.Now(), Reply: reply,
	})
}

// dropMail removes the emails of order/seq.
func (w *world) dropMail(order string, seq int64) {
	id := w.events[fmt.Sprintf("%s/%d", order, seq)].ID
	var kept []Accepted
	for _, a := range w.ev.Emails {
		if a.EventID != id {
			kept = append(kept, a)
		}
	}
	w.ev.Emails = kept
}

// mailAll sends every expected notification once.
func (w *world) mailAll() {
	for _, o := range w.ev.Orders {
		for seq := int64(1); seq <= o.Version; seq++ {
			e := w.events[fmt.Sprintf("%s/%d", o.ID, seq)]
			ce := CommittedEvent{OrderID: o.ID, Type: e.Type, User: o.User, Currency: o.Currency, Seq: seq, Total: o.Total}
			for _, s := range w.ev.Subs {
				if s.Wants(ce) {
					w.mail(o.ID, seq, s.Name, fmt.Sprintf("d-%s-%d-%s", o.ID[len(o.ID)-1:], seq, s.Name), "notifier-1.i1", ReplySent)
				}
			}
		}
	}
}

const (
	o1 = "0190c0de-0000-7000-8000-000000000001"
	o2 = "0190c0de-0000-7000-8000-000000000002"
)

func failing(r *Result) []string {
	var out []string
	for _, inv := range r.Invariants {
		if !inv.OK && !inv.Expected {
			out = append(out, inv.Name)
		}
	}
	return out
}

func TestCheckPasses(t *testing.T) {
	w := newWorld(t)
	w.publish(o1, 1, 2, 3)
	w.publish(o2, 1, 2)
	w.publish(o1, 2) // a relay redelivery
	w.mailAll()
	r := Check(w.ev)
	if f := failing(r); len(f) > 0 {
		t.Fatalf("failed %v; samples %v", f, r.Samples)
	}
	// u0: all-u0 and lifecycle-u0 (created) ; u1: all-u1, big-u1 (x2), auditor (USD cancelled)
	if r.Kafka.Committed != 5 || r.Kafka.Duplicated != 1 || r.Mail.Expected != 3+1+2+2+1 || r.Mail.Lost != 0 {
		t.Fatalf("figures %+v %+v", r.Kafka, r.Mail)
	}
}

func TestCheckFindsProblems(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world)
		want  []string
	}{
		{"kafka loss", func(w *world) {
			w.publish(o1, 1, 2)
			w.publish(o2, 1, 2)
			w.mailAll()
			w.dropMail(o1, 3)
		}, []string{"kafka: every committed change", "notifications: every expected"}},
		{"kafka reorder", func(w *world) { w.publish(o1, 2, 1, 3); w.publish(o2, 1, 2); w.mailAll() }, []string{"in order per order id"}},
		{"mail loss", func(w *world) {
			w.publish(o1, 1, 2, 3)
			w.publish(o2, 1, 2)
			w.mailAll()
			w.ev.Emails = w.ev.Emails[1:]
		}, []string{"every expected notification"}},
		{"unexplained duplicate", func(w *world) {
			w.publish(o1, 1, 2, 3)
			w.publish(o2, 1, 2)
			w.mailAll()
			w.ev.Emails = append(w.ev.Emails, w.ev.Emails[0])
		}, []string{"every duplicate explained"}},
		{"two Message-IDs", func(w *world) {
			w.publish(o1, 1, 2, 3)
			w.publish(o2, 1, 2)
			w.mailAll()
			w.mail(o1, 1, "all-u0", "other", "notifier-1.i1", ReplySent)
		}, []string{"every duplicate explained", "one Message-ID"}},
		{"unwanted", func(w *world) {
			w.publish(o1, 1, 2, 3)
			w.publish(o2, 1, 2)
			w.mailAll()
			w.mail(o1, 1, "paused-u2", "p", "notifier-1.i1", ReplySent)
		}, []string{"nothing to unsubscribed"}},
		{"mail reorder", func(w *world) {
			w.publish(o1, 1, 2, 3)
			w.publish(o2, 1, 2)
			w.mailAll()
			var first, second int
			for i, a := range w.ev.Emails {
				if a.To[0] == "all-u0.test@chaos.test" && a.EventType == "orders.order.created" {
					first = i
				}
				if a.To[0] == "all-u0.test@chaos.test" && a.EventType == "orders.order.paid" {
					second = i
				}
			}
			w.ev.Emails[first], w.ev.Emails[second] = w.ev.Emails[second], w.ev.Emails[first]
		}, []string{"in order per subscription"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			tc.setup(w)
			f := failing(Check(w.ev))
			ok := len(f) == len(tc.want)
			for i := 0; ok && i < len(f); i++ {
				ok = strings.Contains(f[i], tc.want[i])
			}
			if !ok {
				t.Fatalf("failed %q, want just %q", f, tc.want)
			}
		})
	}
}

func TestCheckExplainsDuplicates(t *testing.T) {
	w := newWorld(t)
	w.publish(o1, 1, 2, 3)
	w.publish(o2, 1, 2)
	w.mailAll()
	first := w.ev.Emails[0]
	// Dropped after DATA, then resent by a notifier killed as the server
	// read the end of the message, then resent after a failed mark.
	w.ev.Emails[0].Reply = ReplyDropped
	again := first
	again.N, again.Instance, again.At = 100, "notifier-2.i1", time.Now()
	w.ev.Emails = append(w.ev.Emails, again)
	w.ev.Kills = []Kill{{Instance: "notifier-2.i1", Signal: "SIGKILL", At: again.At.Add(-time.Millisecond)}}
	third := again
	third.N, third.Instance = 101, "notifier-1.i2"
	w.ev.Emails = append(w.ev.Emails, third)
	fourth := third
	fourth.N = 102
	w.ev.Emails = append(w.ev.Emails, fourth)
	w.ev.MarkFailed[third.DeliveryID] = true
	r := Check(w.ev)
	if f := failing(r); len(f) > 0 {
		t.Fatalf("failed %v: %v", f, r.Samples)
	}
	m := r.Mail
	if m.Duplicated != 3 || m.Explained[ExplainReplyLost] != 1 || m.Explained[ExplainKilled] != 1 || m.Explained[ExplainMarkFailed] != 1 {
		t.Fatalf("duplicates %+v", m)
	}
	// A kill long after the copy was accepted explains nothing: it had been
	// marked sent by then.
	w.ev.Kills[0].At = again.At.Add(time.Minute)
	w.ev.MarkFailed = map[string]bool{}
	if r := Check(w.ev); r.Mail.Unexplained != 2 {
		t.Fatalf("a late kill explained a resend: %+v", r.Mail)
	}
}

func TestCheckAtMostOnceMayLose(t *testing.T) {
	w := newWorld(t)
	w.ev.Guarantee = "at-most-once"
	w.publish(o1, 1, 3)
	w.publish(o2, 1, 2)
	w.mailAll()
	var kept []Accepted
	for _, a := range w.ev.Emails {
		if a.EventType != "orders.order.paid" || !strings.HasSuffix(a.To[0], "u0.test@chaos.test") {
			kept = append(kept, a)
		}
	}
	w.ev.Emails = kept
	r := Check(w.ev)
	if f := failing(r); len(f) > 0 || r.Kafka.Lost != 1 || r.Mail.Lost != 1 || r.Mail.LostWithEvent != 0 {
		t.Fatalf("failed %v; kafka %+v mail %+v", f, r.Kafka, r.Mail)
	}
	// A copy of an event is a failure of at-most-once.
	w.publish(o1, 1)
	if f := failing(Check(w.ev)); len(f) != 1 || !strings.Contains(f[0], "no event twice") {
		t.Fatalf("failed %v", f)
	}
}

func TestEventTypes(t *testing.T) {
	for _, tc := range []struct {
		status string
		v      int64
		want   string
	}{
		{"created", 1, "created"},
		{"delivered", 4, "created paid shipped delivered"},
		{"cancelled", 2, "created cancelled"},
		{"cancelled", 3, "created paid cancelled"},
		{"shipped", 2, ""},
		{"cancelled", 4, ""},
	} {
		got, err := eventTypes(tc.status, tc.v)
		s := strings.ReplaceAll(strings.Join(got, " "), "orders.order.", "")
		if (err != nil) != (tc.want == "") || s != tc.want {
			t.Errorf("eventTypes(%s, %d) = %q, %v; want %q", tc.status, tc.v, s, err, tc.want)
		}
	}
}
