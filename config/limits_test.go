package config

import (
	"bytes"
	"testing"
	"time"
)

// The HTTP server's limits and timeouts are settings with safe defaults; a
// limit of no requests at all is refused.
func TestHTTPLimits(t *testing.T) {
	c, err := Parse("t", nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConcurrent != 256 || c.MaxBodyBytes != 1<<20 || c.ReadHeaderTimeout != 5*time.Second ||
		c.ReadTimeout != 30*time.Second || c.WriteTimeout != 30*time.Second || c.IdleTimeout != 2*time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = Parse("t", nil, env(map[string]string{
		"EVENTFLOW_HTTP_MAX_CONCURRENT":      "8",
		"EVENTFLOW_HTTP_READ_HEADER_TIMEOUT": "500ms",
	}), &bytes.Buffer{})
	if err != nil || c.MaxConcurrent != 8 || c.ReadHeaderTimeout != 500*time.Millisecond {
		t.Fatalf("%+v, %v", c, err)
	}
	for _, v := range []string{"0", "-1", "many"} {
		if _, err := Parse("t", nil, env(map[string]string{"EVENTFLOW_HTTP_MAX_CONCURRENT": v}), &bytes.Buffer{}); err == nil {
			t.Errorf("EVENTFLOW_HTTP_MAX_CONCURRENT=%s accepted", v)
		}
	}
}
