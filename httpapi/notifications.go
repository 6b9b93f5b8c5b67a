package httpapi

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/notifications"
)

// NotificationService is what the subscriptions, deliveries and unsubscribe
// routes need; *notifications.Service has it.
type NotificationService interface {
	CreateSubscription(ctx context.Context, caller eventflow.Caller, req notifications.CreateSubscriptionRequest) (notifications.Subscription, error)
	Subscription(ctx context.Context, caller eventflow.Caller, id string) (notifications.Subscription, error)
	Subscriptions(ctx context.Context, caller eventflow.Caller, userID, cursor string, limit int) (notifications.SubscriptionPage, error)
	UpdateSubscription(ctx context.Context, caller eventflow.Caller, id string, patch notifications.SubscriptionPatch) (notifications.Subscription, error)
	DeleteSubscription(ctx context.Context, caller eventflow.Caller, id string) error
	UnsubscribeTarget(ctx context.Context, token string) (notifications.Subscription, error)
	Unsubscribe(ctx context.Context, token string) (notifications.Subscription, error)
	Deliveries(ctx context.Context, caller eventflow.Caller, f notifications.DeliveryFilter) (notifications.DeliveryPage, error)
	Delivery(ctx context.Context, caller eventflow.Caller, id string) (notifications.Delivery, error)
	RetryDelivery(ctx context.Context, caller eventflow.Caller, id string) (notifications.Delivery, error)
}

func handleCreateSubscription(svc NotificationService, log *slog.Logger, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req notifications.CreateSubscriptionRequest
		if !decodeOrAnswer(w, r, log, maxBody, &req) {
			return
		}
		sub, err := svc.CreateSubscription(r.Context(), callerOf(r), req)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		w.Header().Set("Location", "/v1/subscriptions/"+sub.ID)
		// The webhook secret is shown here, once: the receiver needs it to
		// verify signatures, and nobody who can merely read subscriptions
		// later should be able to forge them.
		encode(w, http.StatusCreated, struct {
			notifications.Subscription
			WebhookSecret string `json:"webhook_secret,omitempty"`
		}{sub, sub.WebhookSecret})
	})
}

func handleGetSubscription(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := svc.Subscription(r.Context(), callerOf(r), r.PathValue("id"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, sub)
	})
}

func handleListSubscriptions(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, ok := queryLimit(w, r, log)
		if !ok {
			return
		}
		q := r.URL.Query()
		page, err := svc.Subscriptions(r.Context(), callerOf(r), q.Get("user_id"), q.Get("cursor"), limit)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, page)
	})
}

func handleUpdateSubscription(svc NotificationService, log *slog.Logger, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var patch notifications.SubscriptionPatch
		if !decodeOrAnswer(w, r, log, maxBody, &patch) {
			return
		}
		sub, err := svc.UpdateSubscription(r.Context(), callerOf(r), r.PathValue("id"), patch)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, sub)
	})
}

func handleDeleteSubscription(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := svc.DeleteSubscription(r.Context(), callerOf(r), r.PathValue("id")); err != nil {
			writeError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func handleListDeliveries(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, ok := queryLimit(w, r, log)
		if !ok {
			return
		}
		q := r.URL.Query()
		page, err := svc.Deliveries(r.Context(), callerOf(r), notifications.DeliveryFilter{
			EventID:        q.Get("event_id"),
			SubscriptionID: q.Get("subscription_id"),
			UserID:         q.Get("user_id"),
			Status:         notifications.DeliveryStatus(q.Get("status")),
			Before:         q.Get("cursor"),
			Limit:          limit,
		})
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, page)
	})
}

func handleGetDelivery(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := svc.Delivery(r.Context(), callerOf(r), r.PathValue("id"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, d)
	})
}

func handleRetryDelivery(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := svc.RetryDelivery(r.Context(), callerOf(r), r.PathValue("id"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusAccepted, d)
	})
}

// unsubscribePage is what GET /unsubscribe/{token} shows: a confirmation
// with a button, because a GET alone (a mail scanner following links) must
// never unsubscribe anyone.
var unsubscribePage = template.Must(template.New("unsubscribe").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body style="font-family: sans-serif;">
{{if .Done}}<p>You are unsubscribed: {{.Address}} will get no more {{.Patterns}} notifications.</p>
{{else}}<p>Stop {{.Patterns}} notifications to {{.Address}}?</p>
<form method="post"><button type="submit">Unsubscribe</button></form>{{end}}
</body></html>
`))

type unsubscribeView struct {
	Done     bool
	Address  string
	Patterns string
}

func viewOf(sub notifications.Subscription, done bool) unsubscribeView {
	patterns := ""
	for i, p := range sub.Patterns {
		if i > 0 {
			patterns += ", "
		}
		patterns += p
	}
	return unsubscribeView{Done: done, Address: sub.Address, Patterns: patterns}
}

func handleUnsubscribePage(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := svc.UnsubscribeTarget(r.Context(), r.PathValue("token"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		unsubscribePage.Execute(w, viewOf(sub, sub.Status == notifications.StatusUnsubscribed))
	})
}

// handleUnsubscribe is the RFC 8058 one-click POST (the mail client sends
// "List-Unsubscribe=One-Click") and the page's button alike.
func handleUnsubscribe(svc NotificationService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := svc.Unsubscribe(r.Context(), r.PathValue("token"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		unsubscribePage.Execute(w, viewOf(sub, true))
	})
}

// queryLimit reads the limit query parameter, answering a problem when it
// is not a positive whole number.
func queryLimit(w http.ResponseWriter, r *http.Request, log *slog.Logger) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		writeError(w, r, log, eventflow.FieldError("limit", "must be a whole number from 1 to %d", eventflow.MaxPageSize))
		return 0, false
	}
	return n, true
}
