package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// client is the harness's HTTP client: keep-alive connections enough for
// every load generator goroutine.
var client = &http.Client{
	Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute},
	Timeout:   30 * time.Second,
}

// postJSON posts body and decodes a 2xx answer into out (when not nil).
func postJSON(ctx context.Context, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// createOrder creates the n-th order through the API and returns its id.
func createOrder(ctx context.Context, baseURL string, n int) (string, error) {
	var o struct {
		ID string `json:"id"`
	}
	err := postJSON(ctx, baseURL+"/v1/orders", orderBody(n), &o)
	return o.ID, err
}

// subscribe creates an email subscription of every user's orders.created
// events for address.
func subscribe(ctx context.Context, baseURL, address string) error {
	body, _ := json.Marshal(map[string]any{
		"user_id": "bench-subscriber", "channel": "email", "address": address,
		"patterns": []string{"orders.order.created"}, "scope": "all",
	})
	return postJSON(ctx, baseURL+"/v1/subscriptions", body, nil)
}

// waitReady waits until GET /readyz answers 200.
func waitReady(ctx context.Context, baseURL string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s", within)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// metric reads the sum of a metric's samples (over all its labels) from
// eventflow's /metrics.
func metric(ctx context.Context, baseURL, name string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var (
		sum   float64
		found bool
	)
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 64*1024), 1024*1024)
	for lines.Scan() {
		line := lines.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer name that starts with this one
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("metric %s: not exposed", name)
	}
	return sum, lines.Err()
}
