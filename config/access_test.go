package config

import (
	"bytes"
	"strings"
	"testing"
)

// With access control off, the API is served on loopback only; a process
// without the API roles serves only open routes and may listen anywhere.
func TestNoKeysMeansLoopbackOnly(t *testing.T) {
	for _, c := range []struct {
		addr, roles, keys string
		ok                bool
	}{
		{"127.0.0.1:8080", "all", "", true},
		{"127.0.0.2:8080", "all", "", true},
		{"[::1]:8080", "all", "", true},
		{"localhost:8080", "all", "", true},
		{"0.0.0.0:8080", "all", "", false},
		{":8080", "all", "", false},
		{"[::]:8080", "all", "", false},
		{"10.1.2.3:8080", "orders-api", "", false},
		{"eventflow.internal:8080", "notifications-api", "", false},
		{"0.0.0.0:8080", "relay,notifier", "", true},
		{"0.0.0.0:8080", "all", "k|" + strings.Repeat("0", 64) + "|u|orders:read", true},
	} {
		_, err := Parse("t", nil, env(map[string]string{
			"EVENTFLOW_HTTP_ADDR": c.addr, "EVENTFLOW_ROLES": c.roles, "EVENTFLOW_API_KEYS": c.keys,
		}), &bytes.Buffer{})
		if c.ok && err != nil {
			t.Errorf("%s, roles %s, keys %t: %v", c.addr, c.roles, c.keys != "", err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "not a loopback address")) {
			t.Errorf("%s, roles %s, no keys: err = %v; want refused", c.addr, c.roles, err)
		}
	}
}

// EVENTFLOW_ALLOW_SCOPE_ALL is the no-keys setting; with keys, admin keys
// decide, and a setting that would do nothing is refused.
func TestAllowScopeAllIsForNoKeysOnly(t *testing.T) {
	_, err := Parse("t", nil, env(map[string]string{
		"EVENTFLOW_ALLOW_SCOPE_ALL": "true",
		"EVENTFLOW_API_KEYS":        "k|" + strings.Repeat("0", 64) + "|u|orders:read",
	}), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--allow-scope-all") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse("t", nil, env(map[string]string{"EVENTFLOW_ALLOW_SCOPE_ALL": "true"}), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
}

func TestHelpShowsNoKeyHashes(t *testing.T) {
	var out bytes.Buffer
	hash := strings.Repeat("ab", 32)
	Parse("t", []string{"--help"}, env(map[string]string{"EVENTFLOW_API_KEYS": "k|" + hash + "|u|orders:read"}), &out)
	if strings.Contains(out.String(), hash) || !strings.Contains(out.String(), "EVENTFLOW_API_KEYS") {
		t.Fatalf("--help:\n%s", out.String())
	}
}
