package config

import (
	"bytes"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		vars  map[string]string
		limit int64
		set   bool
	}{
		// auto: a limit only when both engines are embedded
		{nil, autoMemoryLimit, true},
		{map[string]string{"EVENTFLOW_KAFKA_BROKERS": "k:9092"}, autoMemoryLimit, false},
		{map[string]string{"EVENTFLOW_DATABASE_URL": "postgres://db/x"}, autoMemoryLimit, false},
		{map[string]string{"EVENTFLOW_MEMORY_LIMIT": "off"}, 0, false},
		{map[string]string{"EVENTFLOW_MEMORY_LIMIT": "256MiB", "EVENTFLOW_KAFKA_BROKERS": "k:9092"}, 256 << 20, true},
		{map[string]string{"EVENTFLOW_MEMORY_LIMIT": "2GiB"}, 2 << 30, true},
		{map[string]string{"EVENTFLOW_MEMORY_LIMIT": "512KiB"}, 512 << 10, true},
		{map[string]string{"EVENTFLOW_MEMORY_LIMIT": "100000000"}, 100000000, true},
	} {
		c, err := Parse("t", nil, env(tc.vars), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", tc.vars, err)
		}
		limit, set, err := c.MemoryLimitBytes()
		if err != nil || limit != tc.limit || set != tc.set {
			t.Errorf("%v: MemoryLimitBytes() = %d, %v, %v; want %d, %v", tc.vars, limit, set, err, tc.limit, tc.set)
		}
	}
	for _, bad := range []string{"lots", "0", "-5MiB", "12MB", "9999999999GiB"} {
		if _, err := Parse("t", nil, env(map[string]string{"EVENTFLOW_MEMORY_LIMIT": bad}), &bytes.Buffer{}); err == nil {
			t.Errorf("--memory-limit %q accepted", bad)
		}
	}
	c, _ := Parse("t", nil, env(nil), &bytes.Buffer{})
	if c.EmbeddedKafkaKeepRecords != DefaultEmbeddedKafkaKeepRecords {
		t.Errorf("embedded kafka keep records = %d, want the default %d", c.EmbeddedKafkaKeepRecords, DefaultEmbeddedKafkaKeepRecords)
	}
}
