package bench

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Machine is what a run ran on: figures mean nothing without it.
type Machine struct {
	Host     string  `json:"host"`
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gib"`
	Kernel   string  `json:"kernel"`
	Go       string  `json:"go"`
	Commit   string  `json:"eventflow_commit,omitempty"`
	Postgres string  `json:"postgresql,omitempty"`
	Kafka    string  `json:"kafka,omitempty"`
}

func describeMachine(ctx context.Context, cfg *Config) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Kafka: cfg.KafkaVersion}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	m.MemoryGB = round(procMeminfo("MemTotal") / (1024 * 1024))
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if cfg.Stack == Real {
		if conn, err := pgx.Connect(ctx, cfg.Services.PostgresURL); err == nil {
			conn.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres)
			conn.Close(ctx)
		}
	} else {
		m.Kafka = "embedded (kfake)"
		m.Postgres = ""
	}
	return m
}

// procMeminfo reads a kB figure from /proc/meminfo.
func procMeminfo(field string) float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return statusField(string(b), field)
}
