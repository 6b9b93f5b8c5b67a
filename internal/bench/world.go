package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eventflow/eventflow/internal/chaos"
)

// Stack is what a benchmark runs eventflow on.
type Stack string

const (
	// Real is PostgreSQL and Apache Kafka, as scripts/services.sh runs them.
	Real Stack = "real"
	// Embedded is eventflow's defaults: SQLite and the embedded broker in
	// the data folder.
	Embedded Stack = "embedded"
)

// world is one stage's own database, topics, consumer group and eventflow
// processes, so that no stage sees another's data or pays for its backlog.
type world struct {
	cfg   *Config
	stage string
	dir   string // logs, and the data folder on the embedded stack

	dbURL     string   // real: the stage's fresh database
	dataDir   string   // embedded: the stage's data folder
	brokers   []string // real: the cluster; embedded: set once eventflow runs
	kafkaPort int      // embedded: the port of the embedded broker

	topic, deadLetters, group string
	extra                     []string // more EVENTFLOW_* settings of this stage

	procs *chaos.Cluster
	drop  func() error
}

// newWorld makes the stage's database (or data folder) and names its topics.
func newWorld(ctx context.Context, cfg *Config, stage string) (*world, error) {
	// Topic names follow eventflow's <domain>.<entity>.<kind> rule.
	id := fmt.Sprintf("%s-%d", stage, time.Now().UnixNano()%1_000_000_000)
	w := &world{cfg: cfg, stage: stage, dir: filepath.Join(cfg.Dir, string(cfg.Stack), stage),
		topic: "bench.orders." + id, deadLetters: "bench.dead-letters." + id, group: "bench-" + id}
	if err := os.RemoveAll(w.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	switch cfg.Stack {
	case Real:
		url, drop, err := cfg.Services.FreshDatabase(ctx, "bench_"+stage)
		if err != nil {
			return nil, err
		}
		w.dbURL, w.drop, w.brokers = url, drop, cfg.Services.Brokers
	case Embedded:
		w.dataDir = filepath.Join(w.dir, "data")
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		w.kafkaPort = port
		w.brokers = []string{"127.0.0.1:" + strconv.Itoa(port)}
	default:
		return nil, fmt.Errorf("unknown stack %q", cfg.Stack)
	}
	w.procs = chaos.NewCluster(cfg.Bin, w.env(), w.dir, func(string, string) []string { return nil }, cfg.logf)
	return w, nil
}

// env is the settings of every eventflow process of the stage: none of the
// harness's own EVENTFLOW_* variables, the stage's database and topics, and
// eventflow's defaults for everything that shapes its speed, unless the
// stage or the command line says otherwise.
func (w *world) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTFLOW_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"EVENTFLOW_HTTP_ADDR=127.0.0.1:0",
		"EVENTFLOW_ORDERS_TOPIC="+w.topic,
		"EVENTFLOW_DEAD_LETTER_TOPIC="+w.deadLetters,
		"EVENTFLOW_NOTIFIER_GROUP="+w.group,
		"EVENTFLOW_DELIVERY_GUARANTEE="+w.cfg.Guarantee,
		"EVENTFLOW_ALLOW_SCOPE_ALL=true",
		"EVENTFLOW_LOG_LEVEL=warn",
		"EVENTFLOW_MAIL_FROM=eventflow <notifications@bench.eventflow.localhost>",
	)
	switch w.cfg.Stack {
	case Real:
		env = append(env,
			"EVENTFLOW_DATABASE_URL="+w.dbURL,
			"EVENTFLOW_KAFKA_BROKERS="+strings.Join(w.brokers, ","),
			"EVENTFLOW_RELAY_TRANSACTIONAL_ID=bench-"+w.group+"-relay",
			"EVENTFLOW_DATA_DIR="+filepath.Join(w.dir, "data"))
	case Embedded:
		env = append(env,
			"EVENTFLOW_DATA_DIR="+w.dataDir,
			"EVENTFLOW_EMBEDDED_KAFKA_PORT="+strconv.Itoa(w.kafkaPort))
	}
	if w.cfg.Profile != "" {
		env = append(env, "EVENTFLOW_PPROF=true")
	}
	env = append(env, w.cfg.Settings...)
	return append(env, w.extra...)
}

// set adds settings to the processes started from now on.
func (w *world) set(kv ...string) {
	w.extra = append(w.extra, kv...)
	w.procs = chaos.NewCluster(w.cfg.Bin, w.env(), w.dir, func(string, string) []string { return nil }, w.cfg.logf)
}

// migrate creates the schema with eventflow's own command, so the raw
// baselines write to exactly the tables eventflow uses.
func (w *world) migrate(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, w.cfg.Bin, "migrate", "up")
	cmd.Env = w.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("eventflow migrate up: %w: %s", err, out)
	}
	return nil
}

// start runs eventflow with roles and waits until it listens.
func (w *world) start(ctx context.Context, name, roles string) (*chaos.Proc, error) {
	p, err := w.procs.Start(ctx, name, roles)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, p.BaseURL, time.Minute); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// close stops the stage's processes and drops its database, unless the
// command line asked to keep them.
func (w *world) close() {
	w.procs.StopAll()
	if w.drop != nil && !w.cfg.Keep {
		if err := w.drop(); err != nil {
			w.cfg.logf("%v", err)
		}
	}
	if !w.cfg.Keep && w.dataDir != "" {
		os.RemoveAll(w.dataDir)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// sqlitePath is where eventflow keeps its embedded database in dataDir.
func sqlitePath(dataDir string) string { return filepath.Join(dataDir, "eventflow.db") }
