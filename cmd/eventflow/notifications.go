package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/eventflow/eventflow/config"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/httpapi"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/maildir"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
	"github.com/eventflow/eventflow/webhook"
)

// notificationsSetup is what the notifications roles need from serve.
type notificationsSetup struct {
	cfg      config.Config
	store    notifications.Store
	schemas  *event.Schemas
	brokers  []string
	registry *prometheus.Registry
	log      *slog.Logger
}

// notificationParts is what setUpNotifications made: work to run in the
// background until shutdown, and what to close after it stopped.
type notificationParts struct {
	background []func(context.Context)
	closers    []func()
}

// setUpNotifications wires the notifications-api and notifier roles that
// cfg asks for: the API into apiCfg; the consumer and the delivery workers
// as background work. It starts nothing itself.
func setUpNotifications(ctx context.Context, s notificationsSetup, apiCfg *httpapi.Config) (notificationParts, error) {
	cfg := s.cfg
	var parts notificationParts
	key := []byte(cfg.UnsubscribeSecret)
	if len(key) == 0 {
		random := make([]byte, 32)
		rand.Read(random)
		var err error
		if key, err = s.store.Secret(ctx, "unsubscribe", random); err != nil {
			return parts, fmt.Errorf("unsubscribe secret: %w", err)
		}
	}
	tokens := notifications.NewTokens(key)
	filters, err := notifications.NewFilters()
	if err != nil {
		return parts, err
	}
	matcher := notifications.NewMatcher(s.store, filters, time.Second, s.log)

	if cfg.Has(config.RoleNotificationsAPI) {
		apiCfg.Notifications = notifications.NewService(s.store, filters, tokens, notifications.ServiceConfig{
			// With API keys, admin keys may widen a subscription's scope;
			// without, every caller is an admin and the setting decides.
			AllowScopeAll:      cfg.AllowScopeAll || cfg.APIKeys != "",
			ValidateWebhookURL: func(u string) error { return webhook.ValidateURL(u, cfg.WebhookAllowPrivate) },
			NewWebhookSecret:   webhook.NewSecret,
			OnChange:           matcher.Invalidate,
		})
	}
	if !cfg.Has(config.RoleNotifier) {
		return parts, nil
	}

	var email notifications.EmailSender
	if cfg.EmbeddedMail() {
		md, err := maildir.New(cfg.MaildirPath())
		if err != nil {
			return parts, err
		}
		email = md
	} else {
		// One SMTP connection per worker, so that no send waits for a
		// connection longer than its own timeout.
		sender, err := smtp.New(smtp.Config{URL: cfg.SMTPURL, Timeout: cfg.SMTPTimeout, PoolSize: cfg.DeliveryWorkers, Logger: s.log})
		if err != nil {
			return parts, err
		}
		parts.closers = append(parts.closers, func() { sender.Close() })
		apiCfg.Checks = append(apiCfg.Checks, httpapi.Check{Name: "mail", Check: sender.Ping})
		email = sender
	}
	renderer, err := notifications.NewRenderer(cfg.MailFrom, cfg.PublicURL, tokens)
	if err != nil {
		return parts, err
	}
	worker := notifications.NewWorker(s.store, renderer, email,
		webhook.New(webhook.Config{Timeout: cfg.WebhookTimeout, AllowPrivate: cfg.WebhookAllowPrivate}),
		s.registry, notifications.WorkerConfig{
			Concurrency:  cfg.DeliveryWorkers,
			PollInterval: cfg.DeliveryPoll,
			Lease:        cfg.DeliveryLease,
			MaxAttempts:  cfg.DeliveryMaxAttempt,
			MaxAge:       cfg.DeliveryMaxAge,
			BaseBackoff:  cfg.DeliveryBackoff,
			MaxBackoff:   cfg.DeliveryMaxBackoff,
			Logger:       s.log,
		})
	notifier := notifications.NewNotifier(s.store, matcher, s.registry, notifications.NotifierConfig{
		EventTTL: cfg.EventTTL,
		Recorded: worker.Wake,
		Workers:  worker,
		Logger:   s.log,
	})
	consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{
		Brokers:         s.brokers,
		Group:           cfg.NotifierGroup,
		Topics:          []string{cfg.OrdersTopic.Name},
		DeadLetterTopic: cfg.DeadLetterTopic,
		Validate:        s.schemas.Validate,
		Handle:          notifier.HandleEvent,
		HandleBatch:     notifier.HandleEvents,
		Hooks:           []kgo.Hook{kprom.NewMetrics("eventflow_kafka", kprom.Subsystem("consumer"), kprom.Registerer(s.registry), kprom.Gatherer(s.registry))},
		Registerer:      s.registry,
		Logger:          s.log,
	})
	if err != nil {
		return parts, err
	}
	s.registry.MustRegister(notifications.NewDeliveryCollector(s.store))
	parts.background = append(parts.background,
		func(ctx context.Context) {
			if err := consumer.Run(ctx); err != nil {
				s.log.Error("consumer stopped", "err", err)
			}
		},
		func(ctx context.Context) {
			if err := worker.Run(ctx); err != nil {
				s.log.Error("delivery workers stopped", "err", err)
			}
		})
	return parts, nil
}
