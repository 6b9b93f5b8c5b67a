package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/eventflow/eventflow/apikey"
	"github.com/eventflow/eventflow/config"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/httpapi"
	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/orders"
	"github.com/eventflow/eventflow/outbox"
)

// serve runs the configured roles until ctx ends, then shuts down in order:
// stop taking requests and finish those in flight; let the relay finish its
// batch, the consumer commit what it handled and the workers their sends;
// flush the producer; close the broker and the database.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse("eventflow serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	started := time.Now()
	keepSmall := ownsProcess && limitMemory(cfg, log)
	keys, err := apikey.Parse(cfg.APIKeys)
	if err != nil {
		return fmt.Errorf("config: --api-keys (EVENTFLOW_API_KEYS): %w", err)
	}
	logAccessControl(log, cfg, keys)

	store, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if cfg.MigrateOnStart {
		if err := store.Migrate(ctx); err != nil {
			return err
		}
	}

	brk, err := startBroker(cfg, log)
	if err != nil {
		return err
	}
	defer brk.Close()
	if cfg.ApplyTopics {
		if err := applyTopics(ctx, brk.Brokers, cfg, io.Discard); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}

	schemas, err := event.LoadSchemas(orders.Schemas())
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	kafkaMetrics := kprom.NewMetrics("eventflow_kafka", kprom.Registerer(reg), kprom.Gatherer(reg))

	apiCfg := httpapi.Config{
		Schemas:       schemas,
		Registry:      reg,
		Logger:        log,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		MaxConcurrent: cfg.MaxConcurrent,
		Checks:        []httpapi.Check{{Name: "database", Check: store.Ping}},
		Keys:          keys,
		Pprof:         cfg.Pprof,
	}
	// The parts are all set up before any background work starts, so a
	// failing step leaves nothing running on what the deferred calls close.
	var (
		background []func(context.Context)
		closers    []func()
	)
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	if cfg.Has(config.RoleOrdersAPI) {
		svc := orders.NewService(store.Orders, orders.ServiceConfig{
			SchemaBaseURL:  cfg.PublicURL,
			IdempotencyTTL: cfg.IdempotencyTTL,
		})
		apiCfg.Orders = svc
		background = append(background, func(ctx context.Context) { purgeIdempotencyKeys(ctx, svc, log) })
	}
	if cfg.Has(config.RoleRelay) {
		guarantee, err := kafka.ParseGuarantee(cfg.DeliveryGuarantee)
		if err != nil {
			return err
		}
		// Only exactly-once produces in transactions; the publisher refuses
		// a transactional id under the other guarantees, and the setting
		// has a default, so it is passed only when it applies.
		var txnID string
		if guarantee == kafka.ExactlyOnce {
			txnID = cfg.RelayTransactionalID
		}
		publisher, err := kafka.NewPublisher(kafka.PublisherConfig{
			Brokers:         brk.Brokers,
			Guarantee:       guarantee,
			TransactionalID: txnID,
			Route:           func(string) string { return cfg.OrdersTopic.Name },
			Linger:          cfg.ProducerLinger,
			Hooks:           []kgo.Hook{kafkaMetrics},
			Logger:          log,
			ClientID:        "eventflow-relay",
		})
		if err != nil {
			return err
		}
		closers = append(closers, publisher.Close)
		apiCfg.Checks = append(apiCfg.Checks, httpapi.Check{Name: "broker", Check: publisher.Ping})
		relay := outbox.NewRelay(store.Outbox, publisher, outbox.RelayConfig{
			BatchSize:           cfg.RelayBatchSize,
			PollInterval:        cfg.RelayPollInterval,
			Holder:              relayHolder(),
			LeaseTTL:            cfg.RelayLeaseTTL,
			DeleteBeforePublish: guarantee == kafka.AtMostOnce,
			Logger:              log,
			Metrics:             outbox.NewRelayMetrics(reg, store.Outbox),
		})
		background = append(background, func(ctx context.Context) {
			if err := relay.Run(ctx); err != nil {
				log.Error("relay stopped", "err", err)
			}
		})
	} else {
		brokerCheck, closeCheck, err := brokerPing(brk.Brokers)
		if err != nil {
			return err
		}
		closers = append(closers, closeCheck)
		apiCfg.Checks = append(apiCfg.Checks, httpapi.Check{Name: "broker", Check: brokerCheck})
	}

	if cfg.Has(config.RoleNotificationsAPI) || cfg.Has(config.RoleNotifier) {
		parts, err := setUpNotifications(ctx, notificationsSetup{
			cfg: cfg, store: store.Notifications, schemas: schemas, brokers: brk.Brokers, registry: reg, log: log,
		}, &apiCfg)
		closers = append(closers, parts.closers...)
		if err != nil {
			return err
		}
		background = append(background, parts.background...)
	}

	// Background work runs on a context of its own, ended only after the
	// HTTP server has drained, so that in-flight requests still find it.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	if keepSmall {
		background = append(background, releaseIdleMemory)
	}
	var wg sync.WaitGroup
	for _, run := range background {
		wg.Go(func() { run(workCtx) })
	}

	srv := httpapi.NewServer(cfg.HTTPAddr, httpapi.NewHandler(apiCfg),
		cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	log.Info("eventflow is ready",
		"roles", cfg.Roles,
		"http", "http://"+ln.Addr().String(),
		"database", store.Description,
		"kafka", brk.Description,
		"mail", mailDescription(cfg),
		"delivery_guarantee", cfg.DeliveryGuarantee,
		"topic", cfg.OrdersTopic.Name,
		"startup", time.Since(started).Round(time.Millisecond))
	fmt.Fprintf(stdout, "eventflow listening on http://%s (kafka: %s)\n", ln.Addr(), strings.Join(brk.Brokers, ","))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !httpapi.IsServerClosed(err) {
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		return errors.New("shutdown timed out waiting for the relay, the consumer or the delivery workers")
	}
	log.Info("stopped")
	return nil
}

// relayHolder names this process in the relay lease.
func relayHolder() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// brokerPing is the readiness check of a process that does not produce.
func brokerPing(brokers []string) (func(context.Context) error, func(), error) {
	client, err := kafka.NewClient(brokers)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) error { return kafka.Ping(ctx, client) }, client.Close, nil
}

// purgeIdempotencyKeys deletes expired idempotency keys every few minutes.
func purgeIdempotencyKeys(ctx context.Context, svc *orders.Service, log *slog.Logger) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := svc.PurgeIdempotencyKeys(ctx); err != nil {
				log.Warn("purge idempotency keys", "err", err)
			} else if n > 0 {
				log.Debug("purged idempotency keys", "count", n)
			}
		}
	}
}

// mailDescription says where notification emails go, for the startup log.
func mailDescription(cfg config.Config) string {
	if !cfg.Has(config.RoleNotifier) {
		return "not sent by this process"
	}
	if cfg.EmbeddedMail() {
		return "Maildir at " + cfg.MaildirPath()
	}
	return "SMTP at " + redactURL(cfg.SMTPURL)
}
