package bench

import (
	"bytes"
	"context"
	"fmt"
	netsmtp "net/smtp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

// sampleEmail is the email eventflow sends for e, rendered by its own
// templates and MIME writer: the message the raw baseline sends.
func sampleEmail(e event.Event) ([]byte, error) {
	r, err := notifications.NewRenderer("eventflow <notifications@bench.eventflow.localhost>", "http://127.0.0.1:8080",
		notifications.NewTokens([]byte("bench key, not a secret")))
	if err != nil {
		return nil, err
	}
	sub := notifications.Subscription{ID: uuid.Must(uuid.NewV7()).String(), UserID: "bench-subscriber",
		Chan: notifications.ChannelEmail, Address: "subscriber-0@bench.example", Status: notifications.StatusActive}
	job := notifications.Job{Event: e, Subscription: sub, Delivery: notifications.Delivery{
		ID: uuid.Must(uuid.NewV7()).String(), EventID: e.ID, EventType: e.Type, Subject: e.Subject,
		SubscriptionID: sub.ID, UserID: sub.UserID, Channel: sub.Chan, Address: sub.Address}}
	email, err := r.Email(job)
	if err != nil {
		return nil, err
	}
	msg, err := smtp.BuildMessage(email)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := msg.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// rawSMTP sends msg n times to the SMTP server at addr from clients
// connections kept open, each sending one message after another (MAIL,
// RCPT, DATA), and returns messages accepted per second.
func rawSMTP(ctx context.Context, addr string, msg []byte, clients, n int) (float64, error) {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			err := func() error {
				c, err := netsmtp.Dial(addr)
				if err != nil {
					return err
				}
				defer c.Quit()
				if err := c.Hello("bench.localhost"); err != nil {
					return err
				}
				for int(next.Add(1)) <= n && ctx.Err() == nil {
					if err := c.Mail("notifications@bench.eventflow.localhost"); err != nil {
						return err
					}
					if err := c.Rcpt("subscriber-0@bench.example"); err != nil {
						return err
					}
					w, err := c.Data()
					if err != nil {
						return err
					}
					if _, err := w.Write(msg); err != nil {
						return err
					}
					if err := w.Close(); err != nil {
						return err
					}
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				firstErr = cmpOr(firstErr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("send: %w", firstErr)
	}
	return float64(n) / time.Since(start).Seconds(), ctx.Err()
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
