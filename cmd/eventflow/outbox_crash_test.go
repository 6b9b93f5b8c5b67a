package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/kafka"
	"github.com/eventflow/eventflow/kafka/kafkatest"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// eventflowBinary builds the eventflow command once per test run.
func eventflowBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eventflow-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "eventflow")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// process is eventflow running as an OS process of its own.
type process struct {
	cmd     *exec.Cmd
	baseURL string
}

// startProcess runs the eventflow binary with env and waits until it
// listens.
func startProcess(t *testing.T, env map[string]string) *process {
	t.Helper()
	cmd := exec.Command(eventflowBinary(t), "serve")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("eventflow (%s) exited before listening", env["EVENTFLOW_ROLES"])
	}
	m := listeningLine.FindStringSubmatch(lines.Text())
	if m == nil {
		t.Fatalf("unexpected first line %q", lines.Text())
	}
	p.baseURL = m[1]
	go func() {
		for lines.Scan() {
		}
	}()
	return p
}

// kill ends the process with SIGKILL: no shutdown, no flush, no lease release.
func (p *process) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// The outbox under a crash: two relays run as processes of their own (one
// publishes, one stands by), and one of them is SIGKILLed again and again
// while orders are created and changed. Every committed change is in Kafka,
// in order per order, none missing.
func TestRelayKilledMidStreamLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	forEachTier(t, func(t *testing.T, tr tier) {
		env := map[string]string{
			"EVENTFLOW_ORDERS_TOPIC":        kafkatest.TopicName(t),
			"EVENTFLOW_HTTP_ADDR":           "127.0.0.1:0",
			"EVENTFLOW_LOG_LEVEL":           "warn",
			"EVENTFLOW_RELAY_POLL_INTERVAL": "100ms",
			"EVENTFLOW_RELAY_LEASE_TTL":     "1s",
			"EVENTFLOW_RELAY_BATCH_SIZE":    "50",
		}
		for k, v := range tr.env {
			env[k] = v
		}
		brokers := tr.brokers
		if tr.name == "embedded" {
			// Both processes need one broker: start it here, outside them.
			brokers = kafkatest.Embedded(t)
			env["EVENTFLOW_KAFKA_BROKERS"] = strings.Join(brokers, ",")
		}
		apiEnv := withEnv(env, "EVENTFLOW_ROLES", "orders-api")
		relayEnv := withEnv(env, "EVENTFLOW_ROLES", "relay")
		api := startProcess(t, apiEnv)
		relay := startProcess(t, relayEnv)
		standby := startProcess(t, relayEnv)
		defer standby.kill()

		// Writers: each creates orders and pays some, ships some, cancels
		// some, and remembers how many events each order must have.
		var (
			mu       sync.Mutex
			expected = map[string]int64{}
			wg       sync.WaitGroup
			stop     atomic.Bool
		)
		for w := range 4 {
			wg.Go(func() {
				client := &http.Client{Timeout: 10 * time.Second}
				for i := 0; !stop.Load() && i < 150; i++ {
					id, ok := postOrder(client, api.baseURL, fmt.Sprintf("user-%d", w))
					if !ok {
						t.Errorf("create failed")
						return
					}
					version := int64(1)
					for _, s := range []string{"paid", "shipped", "delivered"}[:i%4] {
						if !postStatus(client, api.baseURL, id, s) {
							t.Errorf("status %s failed", s)
							return
						}
						version++
					}
					mu.Lock()
					expected[id] = version
					mu.Unlock()
				}
			})
		}
		// The crashes: kill the first relay three times while the writers
		// run; whichever of the two holds the lease, the other takes over.
		for range 3 {
			time.Sleep(700 * time.Millisecond)
			relay.kill()
			relay = startProcess(t, relayEnv)
		}
		wg.Wait()

		var want int64
		for _, v := range expected {
			want += v
		}
		// Read all there is, duplicates included, until every expected
		// event is there (counting distinct events: with duplicates, the
		// count of records reaches the count of events before the last
		// relay has published the last batch).
		var records []*kgo.Record
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			records = consumeAll(t, brokers, env["EVENTFLOW_ORDERS_TOPIC"])
			if distinctEvents(t, records) >= int(want) || time.Now().After(deadline) {
				break
			}
		}

		seen := map[string]bool{}
		last := map[string]int64{}
		duplicates := 0
		for _, rec := range records {
			e, err := kafka.DecodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			if seen[e.ID] {
				duplicates++
				continue
			}
			seen[e.ID] = true
			if string(rec.Key) != e.Subject {
				t.Fatalf("event %s keyed %q", e.ID, rec.Key)
			}
			if e.Sequence != last[e.Subject]+1 {
				t.Fatalf("order %s: event %d after %d: out of order or missing", e.Subject, e.Sequence, last[e.Subject])
			}
			last[e.Subject] = e.Sequence
		}
		for id, v := range expected {
			if last[id] != v {
				t.Errorf("order %s: %d of %d events in Kafka", id, last[id], v)
			}
		}
		t.Logf("%s: %d orders, %d events committed, %d records read, %d duplicates (at-least-once redelivery after a kill), 0 lost",
			tr.name, len(expected), want, len(records), duplicates)
	})
}

// distinctEvents counts the distinct event ids among records.
func distinctEvents(t *testing.T, records []*kgo.Record) int {
	t.Helper()
	ids := map[string]bool{}
	for _, rec := range records {
		e, err := kafka.DecodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		ids[e.ID] = true
	}
	return len(ids)
}

func withEnv(env map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for key, val := range env {
		if key != k {
			out[key] = val
		}
	}
	return out
}

func postOrder(c *http.Client, base, user string) (string, bool) {
	body := `{"user_id":"` + user + `","currency":"EUR","total":1999}`
	res, err := c.Post(base+"/v1/orders", "application/json", strings.NewReader(body))
	if err != nil {
		return "", false
	}
	defer res.Body.Close()
	var o orderJSON
	if res.StatusCode != 201 || decodeJSON(res, &o) != nil {
		return "", false
	}
	return o.ID, true
}

func postStatus(c *http.Client, base, id, status string) bool {
	res, err := c.Post(base+"/v1/orders/"+id+"/status", "application/json", strings.NewReader(`{"status":"`+status+`"}`))
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == 200
}
