package notifications

import (
	"context"
	"errors"
	"time"
)

// Email is a rendered notification email.
type Email struct {
	From    string
	To      string
	Subject string
	Text    string
	HTML    string
	// MessageID is derived from the delivery, without angle brackets
	// ("<delivery id>@<domain>"), so a retry carries the same one and a
	// receiving system can drop the duplicate.
	MessageID string
	// Headers are extra headers: List-Unsubscribe, List-Unsubscribe-Post,
	// and the event's identity (X-Eventflow-Event-Id …).
	Headers map[string]string
}

// EmailSender sends emails: the smtp package to a mail server, the maildir
// package to a folder.
type EmailSender interface {
	SendEmail(ctx context.Context, m Email) error
}

// WebhookCall is a notification to a webhook: a POST of the CloudEvent in
// structured JSON mode, signed as Standard Webhooks prescribe.
type WebhookCall struct {
	URL string
	// ID is the webhook-id header: the delivery id, the same on every retry,
	// so the receiver can deduplicate.
	ID string
	// Timestamp is the webhook-timestamp header.
	Timestamp time.Time
	// Body is the CloudEvent as application/cloudevents+json.
	Body []byte
	// Secret is the subscription's signing secret, "whsec_" + base64.
	Secret string
}

// WebhookSender calls webhooks.
type WebhookSender interface {
	CallWebhook(ctx context.Context, c WebhookCall) error
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that retrying cannot fix: an SMTP 5xx
// reply, an HTTP 4xx answer. Senders use it; the delivery then goes dead at
// once instead of being retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
