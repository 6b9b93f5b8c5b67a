package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

func testEmail(id string) notifications.Email {
	return notifications.Email{
		From:      "eventflow <notifications@chaos.test>",
		To:        "alice@chaos.test",
		Subject:   "hello",
		Text:      "body\n.leading dot\n",
		MessageID: id + "@chaos.test",
		Headers: map[string]string{
			"X-Eventflow-Event-Id":    "ev-" + id,
			"X-Eventflow-Event-Type":  "orders.order.created",
			"X-Eventflow-Delivery-Id": id,
		},
	}
}

func newSender(t *testing.T, sink *Sink, instance string) *smtp.Sender {
	t.Helper()
	s, err := smtp.New(smtp.Config{URL: sink.URL(instance), Timeout: 2 * time.Second, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The sink records what eventflow's own SMTP sender sends, with the sending
// instance, and each broken mode fails the send the way it should.
func TestSinkModes(t *testing.T) {
	sink, err := StartSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sender := newSender(t, sink, "notifier-1.i1")
	ctx := context.Background()

	if err := sender.SendEmail(ctx, testEmail("a1")); err != nil {
		t.Fatalf("up: %v", err)
	}
	got := sink.Messages()
	if len(got) != 1 || got[0].MessageID != "a1@chaos.test" || got[0].Instance != "notifier-1.i1" ||
		got[0].EventID != "ev-a1" || got[0].DeliveryID != "a1" || got[0].To[0] != "alice@chaos.test" || got[0].Reply != ReplySent {
		t.Fatalf("recorded %+v", got)
	}
	// The next command on the connection confirms the first 250.
	if err := sender.SendEmail(ctx, testEmail("a2")); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got := sink.Messages(); !got[0].Confirmed {
		t.Fatalf("first message not confirmed: %+v", got[0])
	}

	sink.SetMode(SinkTempFail, 0)
	for i := range 4 {
		err := sender.SendEmail(ctx, testEmail("t"))
		if err == nil || notifications.IsPermanent(err) {
			t.Fatalf("4xx attempt %d: %v; want a temporary error", i, err)
		}
	}
	if n := sink.Count(); n != 2 {
		t.Fatalf("4xx accepted messages: %d recorded, want still 2", n)
	}

	sink.SetMode(SinkDropAfterData, 0)
	if err := sender.SendEmail(ctx, testEmail("d1")); err == nil {
		t.Fatal("drop after data: the send succeeded")
	}
	got = sink.Messages()
	if len(got) != 3 || got[2].MessageID != "d1@chaos.test" || got[2].Reply != ReplyDropped {
		t.Fatalf("drop after data recorded %+v", got[len(got)-1])
	}

	sink.SetMode(SinkDown, 0)
	if err := sender.SendEmail(ctx, testEmail("x")); err == nil {
		t.Fatal("down: the send succeeded")
	}
	sink.SetMode(SinkSlow, 50*time.Millisecond)
	sink.SetHold(100 * time.Millisecond)
	w := sink.Watch()
	start := time.Now()
	if err := sender.SendEmail(ctx, testEmail("s1")); err != nil {
		t.Fatalf("slow: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("slow send took %v", d)
	}
	select {
	case a := <-w:
		if a.MessageID != "s1@chaos.test" {
			t.Fatalf("watched %+v", a)
		}
	default:
		t.Fatal("watch got nothing")
	}
	sink.Unwatch(w)
	if n := sink.Count(); n != 4 {
		t.Fatalf("%d accepted, want 4", n)
	}
}
