package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// With max requests in flight, one more is answered 503 with Retry-After at
// once, not queued; the operational routes still answer; a place freed is
// a place taken.
func TestLimitConcurrency(t *testing.T) {
	const max = 3
	release := make(chan struct{})
	entered := make(chan struct{}, max)
	reg := prometheus.NewRegistry()
	h := limitConcurrency(max, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusOK)
	}))

	var wg sync.WaitGroup
	for range max {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/slow", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("a request within the limit: %d", rec.Code)
			}
		})
	}
	for range max {
		<-entered
	}

	done := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/orders", nil))
		done <- rec
	}()
	var rec *httptest.ResponseRecorder
	select {
	case rec = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the request over the limit waited instead of being shed")
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || p.Status != http.StatusServiceUnavailable ||
		rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s while full: %d", path, rec.Code)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz while full: %d; only /healthz and /metrics bypass the limit", rec.Code)
	}
	if got := metricValue(t, reg, "eventflow_http_requests_in_flight"); got != max {
		t.Errorf("in flight = %v; want %d", got, max)
	}

	close(release)
	wg.Wait()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/orders", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("after the slow requests ended: %d", rec.Code)
	}
	if got := metricValue(t, reg, "eventflow_http_requests_shed_total"); got != 2 {
		t.Errorf("shed = %v; want 2", got)
	}
}

// metricValue is the value of the one gauge or counter named name in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
