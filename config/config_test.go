package config

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestFlagBeatsVariableBeatsDefault(t *testing.T) {
	c, err := Parse("t", []string{"--relay-batch-size", "7"}, env(map[string]string{
		"EVENTFLOW_RELAY_BATCH_SIZE": "9",
		"EVENTFLOW_HTTP_ADDR":        "127.0.0.1:9999",
		"EVENTFLOW_ROLES":            "relay, orders-api",
		"EVENTFLOW_KAFKA_BROKERS":    "a:1,b:2",
		"EVENTFLOW_EVENT_TTL":        "90s",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.RelayBatchSize != 7 || c.HTTPAddr != "127.0.0.1:9999" || c.EventTTL != 90*time.Second ||
		strings.Join(c.Roles, ",") != "relay,orders-api" || strings.Join(c.KafkaBrokers, ",") != "a:1,b:2" {
		t.Fatalf("config = %+v", c)
	}
	if c.OrdersTopic.Partitions != 6 || c.DeliveryGuarantee != "exactly-once" || !c.EmbeddedDatabase() || c.EmbeddedKafka() {
		t.Fatalf("defaults = %+v", c)
	}
	all, _ := Parse("t", nil, env(nil), &bytes.Buffer{})
	if len(all.Roles) != 4 || !all.Has(RoleNotifier) {
		t.Fatalf("all roles = %v", all.Roles)
	}
}

// --help must never print a value taken from the environment: the database
// and SMTP URLs carry passwords.
func TestHelpShowsNoSecrets(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse("t", []string{"--help"}, env(map[string]string{
		"EVENTFLOW_DATABASE_URL":       "postgres://u:hunter2@db/x",
		"EVENTFLOW_SMTP_URL":           "smtp://u:swordfish@mail:587",
		"EVENTFLOW_UNSUBSCRIBE_SECRET": "k3y-material",
	}), &out)
	if err != flag.ErrHelp {
		t.Fatalf("err = %v", err)
	}
	for _, secret := range []string{"hunter2", "swordfish", "k3y-material"} {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("--help shows %q:\n%s", secret, out.String())
		}
	}
	if !strings.Contains(out.String(), "EVENTFLOW_DATABASE_URL") {
		t.Fatal("--help does not name the variables")
	}
}

func TestInvalidSettingsAreRefused(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"bad duration":  {"EVENTFLOW_EVENT_TTL": "soon"},
		"bad number":    {"EVENTFLOW_TOPIC_PARTITIONS": "six"},
		"unknown role":  {"EVENTFLOW_ROLES": "orders-api,billing"},
		"bad guarantee": {"EVENTFLOW_DELIVERY_GUARANTEE": "maybe-once"},
		"not postgres":  {"EVENTFLOW_DATABASE_URL": "mysql://u:hunter2@db/x"},
		"min ISR > RF":  {"EVENTFLOW_TOPIC_MIN_INSYNC_REPLICAS": "2"},
		"bad smtp url":  {"EVENTFLOW_SMTP_URL": "http://mail"},
	} {
		_, err := Parse("t", nil, env(vars), &bytes.Buffer{})
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}
