// Package config holds every eventflow setting in one place. Each setting is
// a flag (--http-addr) and an environment variable (EVENTFLOW_HTTP_ADDR); a
// flag wins over the variable, and the variable over the default.
package config

import (
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is eventflow's configuration.
type Config struct {
	// Roles to run: all, or a subset of orders-api, relay,
	// notifications-api, notifier.
	Roles []string

	HTTPAddr string
	// PublicURL is where clients reach the API; empty means the address the
	// server listens on (see serve).
	PublicURL string
	DataDir   string
	// DatabaseURL is a postgres:// URL; empty means embedded SQLite in DataDir.
	DatabaseURL string
	// KafkaBrokers lists an Apache Kafka cluster; empty means the embedded broker.
	KafkaBrokers      []string
	EmbeddedKafkaPort int
	// EmbeddedKafkaKeepRecords is how many consumed records each partition
	// of the embedded broker keeps (see kafka.EmbeddedConfig.KeepRecords);
	// 0 or less: all, within the topic retention.
	EmbeddedKafkaKeepRecords int64
	// MemoryLimit is the Go runtime's soft memory limit: "auto", "off" or
	// a size (see MemoryLimitBytes).
	MemoryLimit    string
	MigrateOnStart bool

	// DeliveryGuarantee is at-most-once, at-least-once or exactly-once.
	DeliveryGuarantee string
	OrdersTopic       Topic
	ApplyTopics       bool

	RelayBatchSize       int
	RelayPollInterval    time.Duration
	RelayLeaseTTL        time.Duration
	RelayTransactionalID string
	ProducerLinger       time.Duration

	// SMTPURL is smtp:// or smtps:// of a mail server; empty means a
	// Maildir in DataDir.
	SMTPURL             string
	MailFrom            string
	SMTPTimeout         time.Duration
	NotifierGroup       string
	DeadLetterTopic     string
	EventTTL            time.Duration
	DeliveryWorkers     int
	DeliveryMaxAttempt  int
	DeliveryMaxAge      time.Duration
	DeliveryBackoff     time.Duration
	DeliveryMaxBackoff  time.Duration
	DeliveryPoll        time.Duration
	DeliveryLease       time.Duration
	AllowScopeAll       bool
	Pprof               bool
	WebhookAllowPrivate bool
	WebhookTimeout      time.Duration
	UnsubscribeSecret   string

	// APIKeys lists the API keys by hash (see package apikey); empty turns
	// access control off, which is allowed only on a loopback address.
	APIKeys string

	IdempotencyTTL    time.Duration
	MaxBodyBytes      int64
	MaxConcurrent     int
	ShutdownTimeout   time.Duration
	LogLevel          string
	LogFormat         string
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// Topic is a topic's settings, applied at start and by `eventflow topics apply`.
type Topic struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	MinInsyncReplicas int
	Retention         time.Duration
}

// Roles eventflow can run.
const (
	RoleOrdersAPI        = "orders-api"
	RoleRelay            = "relay"
	RoleNotificationsAPI = "notifications-api"
	RoleNotifier         = "notifier"
)

var knownRoles = []string{RoleOrdersAPI, RoleRelay, RoleNotificationsAPI, RoleNotifier}

// Has reports whether the configuration runs role.
func (c Config) Has(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// EmbeddedDatabase reports whether storage is the embedded SQLite file.
func (c Config) EmbeddedDatabase() bool { return c.DatabaseURL == "" }

// EmbeddedKafka reports whether the broker is the embedded one.
func (c Config) EmbeddedKafka() bool { return len(c.KafkaBrokers) == 0 }

// EmbeddedMail reports whether mail goes to the Maildir.
func (c Config) EmbeddedMail() bool { return c.SMTPURL == "" }

// MaildirPath is where mail goes on embedded defaults.
func (c Config) MaildirPath() string { return filepath.Join(c.DataDir, "maildir") }

// SQLitePath is the embedded database file.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, "eventflow.db") }

// KafkaDataDir is where the embedded broker keeps its data.
func (c Config) KafkaDataDir() string { return filepath.Join(c.DataDir, "kafka") }

// DefaultEmbeddedKafkaKeepRecords is how many consumed records each
// partition of the embedded broker keeps: with 6 partitions the last
// 60,000 order events, some 15 MB of disk and 2 MB of index in memory.
const DefaultEmbeddedKafkaKeepRecords = 10_000

// autoMemoryLimit is the soft memory limit on embedded defaults, where the
// database and the broker share this process. It is soft: the garbage
// collector works harder as the heap nears it, and the process may still go
// above it rather than stall.
const autoMemoryLimit = 80 << 20

// MemoryLimitBytes is the soft memory limit to give the Go runtime, and
// whether to set one. "auto" sets autoMemoryLimit when both the database
// and the broker are embedded (a laptop; with external engines the
// operator sizes the process); "off" sets none; otherwise a size: a number
// of bytes with an optional KiB, MiB or GiB suffix.
func (c Config) MemoryLimitBytes() (int64, bool, error) {
	switch v := strings.TrimSpace(c.MemoryLimit); v {
	case "auto", "":
		return autoMemoryLimit, c.EmbeddedDatabase() && c.EmbeddedKafka(), nil
	case "off":
		return 0, false, nil
	default:
		mult := int64(1)
		for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
			if n, ok := strings.CutSuffix(v, suffix); ok {
				v, mult = n, m
				break
			}
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 1 || n > math.MaxInt64/mult {
			return 0, false, fmt.Errorf("--memory-limit %q: want auto, off, or a size like 256MiB", c.MemoryLimit)
		}
		return n * mult, true, nil
	}
}

// Parse reads the configuration from args (flags) and getenv (EVENTFLOW_*
// variables). Usage, with every setting and its default, goes to usage on
// --help, and Parse then returns flag.ErrHelp.
func Parse(name string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var (
		c       Config
		roles   string
		brokers string
	)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usage)
	s := settings{fs: fs, getenv: getenv}

	s.str(&roles, "roles", "all", "roles to run: all, or a comma-separated list of orders-api, relay, notifications-api, notifier")
	s.str(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address the HTTP API listens on")
	s.str(&c.PublicURL, "public-url", "", "URL clients reach the HTTP API at (default http://<http-addr>)")
	s.str(&c.DataDir, "data-dir", "./data", "folder for the embedded database and broker")
	s.str(&c.DatabaseURL, "database-url", "", "postgres:// URL of PostgreSQL (default: embedded SQLite in the data folder)")
	s.str(&brokers, "kafka-brokers", "", "host:port,... of an Apache Kafka cluster (default: embedded broker)")
	s.int(&c.EmbeddedKafkaPort, "embedded-kafka-port", 9092, "port of the embedded broker on 127.0.0.1 (0 picks a free one)")
	s.int64(&c.EmbeddedKafkaKeepRecords, "embedded-kafka-keep-records", DefaultEmbeddedKafkaKeepRecords,
		"records the embedded broker keeps per partition once every consumer group has read them; older ones are deleted (0: keep all within --topic-retention)")
	s.str(&c.MemoryLimit, "memory-limit", "auto",
		"soft memory limit of the Go runtime: auto (a limit on embedded defaults only), off, or a size like 256MiB; GOMEMLIMIT wins")
	s.bool(&c.MigrateOnStart, "migrate", true, "apply database migrations at start")
	s.str(&c.DeliveryGuarantee, "delivery-guarantee", "exactly-once", "at-most-once, at-least-once or exactly-once")
	s.str(&c.OrdersTopic.Name, "orders-topic", "orders.order.events", "topic of order events")
	s.int(&c.OrdersTopic.Partitions, "topic-partitions", 6, "partitions of each topic created")
	s.int(&c.OrdersTopic.ReplicationFactor, "topic-replication-factor", 1, "replicas of each topic created (3 on a three-broker cluster)")
	s.int(&c.OrdersTopic.MinInsyncReplicas, "topic-min-insync-replicas", 1, "min.insync.replicas of each topic (2 with replication factor 3)")
	s.duration(&c.OrdersTopic.Retention, "topic-retention", 7*24*time.Hour, "retention.ms of each topic")
	s.bool(&c.ApplyTopics, "apply-topics", true, "create or update topics at start")
	s.int(&c.RelayBatchSize, "relay-batch-size", 5000, "outbox records published per batch (one Kafka transaction under exactly-once)")
	s.duration(&c.RelayPollInterval, "relay-poll-interval", time.Second, "how often the relay polls when no commit woke it")
	s.duration(&c.RelayLeaseTTL, "relay-lease-ttl", 10*time.Second, "how soon a standby relay takes over from a dead one")
	s.str(&c.RelayTransactionalID, "relay-transactional-id", "eventflow-relay", "Kafka transactional.id of the relay (exactly-once)")
	s.duration(&c.ProducerLinger, "producer-linger", 0, "how long the producer waits to fill a batch")
	s.str(&c.SMTPURL, "smtp-url", "", "smtp://user:pass@host:port or smtps://… of the mail server (default: a Maildir in the data folder)")
	s.str(&c.MailFrom, "mail-from", "eventflow <notifications@eventflow.localhost>", "sender of notification emails")
	s.duration(&c.SMTPTimeout, "smtp-timeout", 30*time.Second, "time allowed for one SMTP exchange")
	s.str(&c.NotifierGroup, "notifier-group", "eventflow-notifier", "Kafka consumer group of the notifiers")
	s.str(&c.DeadLetterTopic, "dead-letter-topic", "notifications.notifier.dead-letter", "topic for events the notifier cannot handle")
	s.duration(&c.EventTTL, "event-ttl", 24*time.Hour, "events older than this notify nobody (0 keeps all)")
	s.int(&c.DeliveryWorkers, "delivery-workers", 16, "notifications sent at once")
	s.int(&c.DeliveryMaxAttempt, "delivery-max-attempts", 12, "attempts before a delivery is dead")
	s.duration(&c.DeliveryMaxAge, "delivery-max-age", 24*time.Hour, "age after which a failing delivery is dead")
	s.duration(&c.DeliveryBackoff, "delivery-backoff", 2*time.Second, "first retry delay; doubles per attempt, with jitter")
	s.duration(&c.DeliveryMaxBackoff, "delivery-max-backoff", 10*time.Minute, "longest retry delay")
	s.duration(&c.DeliveryPoll, "delivery-poll-interval", 500*time.Millisecond, "how often delivery workers look for due retries")
	s.duration(&c.DeliveryLease, "delivery-lease", 2*time.Minute, "how long a claimed delivery is hidden from other workers")
	s.bool(&c.AllowScopeAll, "allow-scope-all", false, "without API keys: let subscriptions ask for every user's orders (with keys, admin keys may)")
	s.str(&c.APIKeys, "api-keys", "", "API keys: name|sha256-hex|user-id|scope,scope;... (eventflow apikey new makes one; default: none, access control off, loopback only)")
	s.bool(&c.WebhookAllowPrivate, "webhook-allow-private", false, "allow webhooks to loopback and private addresses, and plain http on loopback")
	s.duration(&c.WebhookTimeout, "webhook-timeout", 10*time.Second, "time allowed for one webhook call")
	s.str(&c.UnsubscribeSecret, "unsubscribe-secret", "", "key that signs unsubscribe links (default: a random key kept in the database)")
	s.duration(&c.IdempotencyTTL, "idempotency-ttl", 24*time.Hour, "how long an Idempotency-Key is remembered")
	s.int64(&c.MaxBodyBytes, "http-max-body-bytes", 1<<20, "largest request body accepted")
	s.int(&c.MaxConcurrent, "http-max-concurrent", 256, "requests handled at once; more are answered 503 with Retry-After")
	s.bool(&c.Pprof, "pprof", false, "serve Go's CPU, heap and allocation profiles under /debug/pprof/ (admin key when keys are set); for benchmarking")
	s.duration(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long shutdown waits for in-flight work")
	s.duration(&c.ReadHeaderTimeout, "http-read-header-timeout", 5*time.Second, "time allowed to read request headers")
	s.duration(&c.ReadTimeout, "http-read-timeout", 30*time.Second, "time allowed to read a whole request")
	s.duration(&c.WriteTimeout, "http-write-timeout", 30*time.Second, "time allowed to write a response")
	s.duration(&c.IdleTimeout, "http-idle-timeout", 2*time.Minute, "how long an idle keep-alive connection stays open")
	s.str(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	s.str(&c.LogFormat, "log-format", "text", "text or json")

	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage: %s [flags]\n\nEvery flag can also be set by the environment variable shown.\n\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if err := s.applyEnv(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.Roles = splitList(roles)
	c.KafkaBrokers = splitList(brokers)
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	return c, nil
}

func (c *Config) validate() error {
	if len(c.Roles) == 1 && c.Roles[0] == "all" {
		c.Roles = append([]string(nil), knownRoles...)
	}
	for _, r := range c.Roles {
		if !slices.Contains(knownRoles, r) {
			return fmt.Errorf("--roles: unknown role %q (known: all, %s)", r, strings.Join(knownRoles, ", "))
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("--http-addr %q: %w", c.HTTPAddr, err)
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return fmt.Errorf("--database-url must be a postgres:// URL")
	}
	switch c.DeliveryGuarantee {
	case "at-most-once", "at-least-once", "exactly-once":
	default:
		return fmt.Errorf("--delivery-guarantee %q: want at-most-once, at-least-once or exactly-once", c.DeliveryGuarantee)
	}
	switch {
	case c.OrdersTopic.Partitions < 1:
		return fmt.Errorf("--topic-partitions must be at least 1")
	case c.OrdersTopic.ReplicationFactor < 1:
		return fmt.Errorf("--topic-replication-factor must be at least 1")
	case c.OrdersTopic.MinInsyncReplicas < 1 || c.OrdersTopic.MinInsyncReplicas > c.OrdersTopic.ReplicationFactor:
		return fmt.Errorf("--topic-min-insync-replicas must be between 1 and the replication factor")
	case c.RelayBatchSize < 1:
		return fmt.Errorf("--relay-batch-size must be at least 1")
	case c.SMTPURL != "" && !strings.HasPrefix(c.SMTPURL, "smtp://") && !strings.HasPrefix(c.SMTPURL, "smtps://"):
		return fmt.Errorf("--smtp-url must be an smtp:// or smtps:// URL")
	case c.DeliveryWorkers < 1:
		return fmt.Errorf("--delivery-workers must be at least 1")
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("--http-max-body-bytes must be at least 1")
	case c.MaxConcurrent < 1:
		return fmt.Errorf("--http-max-concurrent must be at least 1")
	}
	if _, _, err := c.MemoryLimitBytes(); err != nil {
		return err
	}
	return c.validateAccess()
}

// validateAccess refuses to serve the API to the network with access
// control off. A process without the API roles serves only the open
// routes (health, metrics), so it may listen anywhere.
func (c *Config) validateAccess() error {
	servesAPI := c.Has(RoleOrdersAPI) || c.Has(RoleNotificationsAPI)
	switch {
	case c.APIKeys == "" && servesAPI && !loopback(c.HTTPAddr):
		return fmt.Errorf("--http-addr %s is not a loopback address and no API keys are set (EVENTFLOW_API_KEYS): "+
			"refusing to serve the API to the network with access control off; set keys (eventflow apikey new) or listen on 127.0.0.1", c.HTTPAddr)
	case c.APIKeys != "" && c.AllowScopeAll:
		return fmt.Errorf("--allow-scope-all applies only without API keys; with keys, admin keys may subscribe to every user's orders and others may not: unset it")
	}
	return nil
}

// loopback reports whether addr (host:port) listens on loopback only: an IP
// address of the loopback range, or localhost. An empty host is every
// interface; another name may resolve to anything.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// settings registers flags, each with its EVENTFLOW_* variable. The
// variables are applied after the command line is parsed, to the flags it
// did not set, through the flags' own parsers. So a flag wins over its
// variable, and --help shows the built-in defaults, never a value from the
// environment (which may hold a password).
type settings struct {
	fs     *flag.FlagSet
	getenv func(string) string
}

// EnvName is the environment variable of a flag: EVENTFLOW_ and the flag's
// name in upper case with underscores.
func EnvName(flagName string) string {
	return "EVENTFLOW_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (s settings) usage(name, help string) string { return help + " (" + EnvName(name) + ")" }

func (s settings) str(p *string, name, def, help string) {
	s.fs.StringVar(p, name, def, s.usage(name, help))
}

func (s settings) bool(p *bool, name string, def bool, help string) {
	s.fs.BoolVar(p, name, def, s.usage(name, help))
}

func (s settings) int(p *int, name string, def int, help string) {
	s.fs.IntVar(p, name, def, s.usage(name, help))
}

func (s settings) int64(p *int64, name string, def int64, help string) {
	s.fs.Int64Var(p, name, def, s.usage(name, help))
}

func (s settings) duration(p *time.Duration, name string, def time.Duration, help string) {
	s.fs.DurationVar(p, name, def, s.usage(name, help))
}

// applyEnv sets every flag the command line left alone from its variable,
// when that is set. An invalid value is an error naming the variable but not
// its value, which may be a secret.
func (s settings) applyEnv() error {
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []string
	s.fs.VisitAll(func(f *flag.Flag) {
		v := s.getenv(EnvName(f.Name))
		if given[f.Name] || v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", EnvName(f.Name), err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
