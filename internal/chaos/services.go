package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventflow/eventflow/internal/backoff"
)

// Services are the real PostgreSQL and Apache Kafka that scripts/services.sh
// runs on loopback, and what the driver does to them: SIGKILL and restart
// the broker, restart PostgreSQL in immediate mode (a crash: no checkpoint,
// every connection cut, recovery on start).
type Services struct {
	// PostgresURL is a server URL from EVENTFLOW_TEST_POSTGRES_URL.
	PostgresURL string
	// Brokers is from EVENTFLOW_TEST_KAFKA_BROKERS.
	Brokers []string
	// Script is scripts/services.sh.
	Script string
	// StateDir is EVENTFLOW_SERVICES_DIR (/tmp/eventflow-services): the pid
	// and data of the services.
	StateDir string
	// PGBin holds pg_ctl (EVENTFLOW_PG_BIN, /usr/lib/postgresql/15/bin).
	PGBin string
}

// ServicesFromEnv reads the settings scripts/services.sh prints and uses.
func ServicesFromEnv(getenv func(string) string) (Services, error) {
	s := Services{
		PostgresURL: getenv("EVENTFLOW_TEST_POSTGRES_URL"),
		Script:      "scripts/services.sh",
		StateDir:    getenv("EVENTFLOW_SERVICES_DIR"),
		PGBin:       getenv("EVENTFLOW_PG_BIN"),
	}
	for _, b := range strings.Split(getenv("EVENTFLOW_TEST_KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			s.Brokers = append(s.Brokers, b)
		}
	}
	if s.PostgresURL == "" || len(s.Brokers) == 0 {
		return s, errors.New(`EVENTFLOW_TEST_POSTGRES_URL and EVENTFLOW_TEST_KAFKA_BROKERS are not set: ` +
			`start the services with scripts/services.sh start and eval "$(scripts/services.sh env)"`)
	}
	if s.StateDir == "" {
		s.StateDir = "/tmp/eventflow-services"
	}
	if s.PGBin == "" {
		s.PGBin = "/usr/lib/postgresql/15/bin"
	}
	return s, nil
}

// FreshDatabase creates an empty database for one run and returns its URL
// and a function that drops it.
func (s Services) FreshDatabase(ctx context.Context, prefix string) (string, func() error, error) {
	u, err := url.Parse(s.PostgresURL)
	if err != nil {
		return "", nil, fmt.Errorf("EVENTFLOW_TEST_POSTGRES_URL: %w", err)
	}
	var rnd [5]byte
	rand.Read(rnd[:])
	name := prefix + "_" + hex.EncodeToString(rnd[:])
	conn, err := pgx.Connect(ctx, s.PostgresURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		var err error
		for range 10 {
			if err = dropDatabase(s.PostgresURL, name); err == nil {
				return nil
			}
			time.Sleep(2 * time.Second)
		}
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

func dropDatabase(serverURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

// kafkaPidFile is where scripts/services.sh keeps the broker's pid.
func (s Services) kafkaPidFile() string { return filepath.Join(s.StateDir, "kafka", "kafka.pid") }

// KillKafka SIGKILLs the broker (the java process in the pid file) and
// waits until it is gone.
func (s Services) KillKafka() (int, error) {
	raw, err := os.ReadFile(s.kafkaPidFile())
	if err != nil {
		return 0, fmt.Errorf("kafka pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0, fmt.Errorf("kafka pid file %s: %w", s.kafkaPidFile(), err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte("kafka.Kafka")) {
		return 0, fmt.Errorf("pid %d in %s is not a running broker", pid, s.kafkaPidFile())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill broker %d: %w", pid, err)
	}
	for range 200 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return pid, nil
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); bytes.Contains(st, []byte(") Z ")) {
			return pid, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return pid, fmt.Errorf("broker %d still there 10 s after SIGKILL", pid)
}

// StartKafka runs `scripts/services.sh start kafka`, which starts the
// broker unless it runs and waits until it answers.
// Someone else sharing the services may start it at the same moment (the
// loser of that race exits at start); so it tries three times.
func (s Services) StartKafka(ctx context.Context) error {
	var err error
	for range 3 {
		if err = s.script(ctx, 3*time.Minute, "start", "kafka"); err == nil || ctx.Err() != nil {
			return err
		}
		backoff.Sleep(ctx, 3*time.Second)
	}
	return err
}

func (s Services) script(ctx context.Context, timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Script, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", s.Script, strings.Join(args, " "), err, lastLines(out, 3))
	}
	return nil
}

// RestartPostgres restarts the PostgreSQL of scripts/services.sh with
// `pg_ctl restart -m immediate`: the server quits without a checkpoint,
// as after a crash, and recovers from its WAL when it starts again.
func (s Services) RestartPostgres(ctx context.Context) error {
	dir := filepath.Join(s.StateDir, "postgres")
	args := []string{filepath.Join(s.PGBin, "pg_ctl"), "restart", "-D", filepath.Join(dir, "data"),
		"-m", "immediate", "-w", "-t", "120", "-l", filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root; services.sh runs it as postgres.
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl restart: %w: %s", err, lastLines(out, 3))
	}
	return nil
}

// lastLines is the last n lines of out, on one line.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
