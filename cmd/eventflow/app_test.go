package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/internal/chaos"
	"github.com/eventflow/eventflow/internal/testenv"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

// tier is the set of engines an end-to-end test runs on.
type tier struct {
	name string
	// env configures eventflow for the tier; a test adds its own settings.
	env map[string]string
	// brokers is where the test reads the topics from.
	brokers []string
}

// forEachTier runs fn on the embedded engines (SQLite and the in-process
// broker, both inside eventflow) and on the real ones (PostgreSQL and Apache
// Kafka), which skip, or fail in the full suite, when they are not set up.
func forEachTier(t *testing.T, fn func(t *testing.T, tr tier)) {
	t.Run("embedded", func(t *testing.T) {
		fn(t, tier{name: "embedded", env: map[string]string{
			"EVENTFLOW_DATA_DIR":            t.TempDir(),
			"EVENTFLOW_EMBEDDED_KAFKA_PORT": "0",
		}})
	})
	t.Run("real", func(t *testing.T) {
		brokers := kafkatest.RequireReal(t)
		dbURL := testenv.FreshPostgres(t)
		fn(t, tier{name: "real", brokers: brokers, env: map[string]string{
			"EVENTFLOW_DATA_DIR":      t.TempDir(),
			"EVENTFLOW_DATABASE_URL":  dbURL,
			"EVENTFLOW_KAFKA_BROKERS": strings.Join(brokers, ","),
		}})
	})
}

// app is eventflow running in-process for a test.
type app struct {
	baseURL string
	brokers []string
	topic   string
	stop    func()
}

var listeningLine = regexp.MustCompile(`^eventflow listening on (http://\S+) \(kafka: (\S+)\)`)

// startApp runs eventflow with the tier's settings plus env, on a free port
// and a topic of the test's own, and stops it when the test ends.
func startApp(t *testing.T, tr tier, env map[string]string) *app {
	t.Helper()
	return startAppLogging(t, tr, env, testWriter{t})
}

// startAppLogging is startApp with eventflow's log going to stderr.
func startAppLogging(t *testing.T, tr tier, env map[string]string, stderr io.Writer) *app {
	t.Helper()
	vars := map[string]string{
		"EVENTFLOW_HTTP_ADDR":           "127.0.0.1:0",
		"EVENTFLOW_ORDERS_TOPIC":        kafkatest.TopicName(t),
		"EVENTFLOW_RELAY_POLL_INTERVAL": "200ms",
		"EVENTFLOW_LOG_LEVEL":           "warn",
	}
	for k, v := range tr.env {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, stdoutW, stderr)
		stdoutW.CloseWithError(fmt.Errorf("eventflow exited: %v", err))
		done <- err
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	m := listeningLine.FindStringSubmatch(line)
	if err != nil || m == nil {
		cancel()
		t.Fatalf("eventflow did not start: %q, %v", line, err)
	}
	go io.Copy(io.Discard, stdoutR)
	a := &app{baseURL: m[1], brokers: strings.Split(m[2], ","), topic: vars["EVENTFLOW_ORDERS_TOPIC"]}
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("eventflow stopped with: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("eventflow did not stop within 30s")
			}
		})
	}
	t.Cleanup(a.stop)
	return a
}

// testWriter sends eventflow's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// response is an HTTP response read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
}

// do sends a request to the app; body is JSON-encoded unless it is a string
// or []byte, which are sent as they are.
func (a *app) do(t *testing.T, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: raw}
}

// consumeAll reads every record of topic (read_committed) up to the end
// offsets it finds first. Ending at those offsets, rather than at the first
// poll that brings nothing, keeps a reader slow to start on a busy machine
// from reporting an empty topic.
func consumeAll(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	recs, err := chaos.ReadTopic(t.Context(), brokers, topic, true)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// kafkaRecords waits for n records in the app's topic and returns them.
func kafkaRecords(t *testing.T, a *app, n int) []*kgo.Record {
	t.Helper()
	return kafkatest.Consume(t, a.brokers, a.topic, n, 30*time.Second)
}

func decodeJSON(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }
