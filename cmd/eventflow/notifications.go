package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// startNotifications wires the notifications-api and notifier roles that
// cfg asks for: the API into apiCfg, the consumer and the delivery workers
// into wg, running until workCtx ends. The returned func releases what it
// opened, after wg is done.
func startNotifications(ctx, workCtx context.Context, s notificationsSetup, wg *sync.WaitGroup, apiCfg *httpapi.Config) (func(), error) {
	cfg := s.cfg
	closers := []func(){}
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	key := []byte(cfg.UnsubscribeSecret)
	if len(key) == 0 {
		random := make([]byte, 32)
		rand.Read(random)
		var err error
		if key, err = s.store.Secret(ctx, "unsubscribe", random); err != nil {
			return cleanup, fmt.Errorf("unsubscribe secret: %w", err)
		}
	}
	tokens := notifications.NewTokens(key)
	filters, err := notifications.NewFilters()
	if err != nil {
		return cleanup, err
	}
	matcher := notifications.NewMatcher(s.store, filters, time.Second, s.log)

	if cfg.Has(config.RoleNotificationsAPI) {
		apiCfg.Notifications = notifications.NewService(s.store, filters, tokens, notifications.ServiceConfig{
			AllowScopeAll:      cfg.AllowScopeAll,
			ValidateWebhookURL: func(u string) error { return webhook.ValidateURL(u, cfg.WebhookAllowPrivate) },
			NewWebhookSecret:   webhook.NewSecret,
			OnChange:           matcher.Invalidate,
		})
	}
	if !cfg.Has(config.RoleNotifier) {
		return cleanup, nil
	}

	var email notifications.EmailSender
	if cfg.EmbeddedMail() {
		md, err := maildir.New(cfg.MaildirPath())
		if err != nil {
			return cleanup, err
		}
		email = md
	} else {
		sender, err := smtp.New(smtp.Config{URL: cfg.SMTPURL, Timeout: cfg.SMTPTimeout, Logger: s.log})
		if err != nil {
			return cleanup, err
		}
		closers = append(closers, func() { sender.Close() })
		apiCfg.Checks = append(apiCfg.Checks, httpapi.Check{Name: "mail", Check: sender.Ping})
		email = sender
	}
	renderer, err := notifications.NewRenderer(cfg.MailFrom, cfg.PublicURL, tokens)
	if err != nil {
		return cleanup, err
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
		Logger:   s.log,
	})
	consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{
		Brokers:         s.brokers,
		Group:           cfg.NotifierGroup,
		Topics:          []string{cfg.OrdersTopic.Name},
		DeadLetterTopic: cfg.DeadLetterTopic,
		Validate:        s.schemas.Validate,
		Handle:          notifier.HandleEvent,
		Registerer:      s.registry,
		Logger:          s.log,
	})
	if err != nil {
		return cleanup, err
	}
	s.registry.MustRegister(notifications.NewDeliveryCollector(s.store))
	wg.Go(func() {
		if err := consumer.Run(workCtx); err != nil {
			s.log.Error("consumer stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := worker.Run(workCtx); err != nil {
			s.log.Error("delivery workers stopped", "err", err)
		}
	})
	return cleanup, nil
}
