// Package httpapi is eventflow's HTTP API. routes.go shows its whole surface;
// each handler is a function that returns an http.Handler, given only what it
// needs.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/apikey"
	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/orders"
)

// OrderService is what the orders routes need; *orders.Service has it.
type OrderService interface {
	Create(ctx context.Context, caller eventflow.Caller, req orders.CreateRequest, idempotencyKey, traceParent string) (orders.CreateResult, error)
	Order(ctx context.Context, caller eventflow.Caller, id string) (orders.Order, error)
	List(ctx context.Context, caller eventflow.Caller, userID, cursor string, limit int) (orders.Page, error)
	ChangeStatus(ctx context.Context, caller eventflow.Caller, id string, status orders.Status, traceParent string) (orders.Order, error)
}

// Check is one readiness check: the database or the broker answering.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config is what the API is built from. Orders is nil in a process that
// does not run the orders-api role, Notifications where notifications-api
// does not run; the operational routes are always there.
type Config struct {
	Orders        OrderService
	Notifications NotificationService
	Schemas       *event.Schemas
	Checks        []Check
	Registry      *prometheus.Registry
	Logger        *slog.Logger
	MaxBodyBytes  int64
	// MaxConcurrent bounds the requests handled at once; more get 503
	// with Retry-After (see limitConcurrency). Zero is DefaultMaxConcurrent.
	MaxConcurrent int
	// Keys are the API keys the /v1 routes require; nil turns access
	// control off (serve allows that only on loopback).
	Keys *apikey.Set
	// Pprof serves Go's profiles under /debug/pprof/ (an admin key's
	// when access control is on): for measuring, off by default.
	Pprof bool
}

// NewHandler returns the API's handler with its middleware.
func NewHandler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, cfg)
	m := newHTTPMetrics(cfg.Registry)
	return recoverPanics(cfg.Logger, limitConcurrency(cfg.MaxConcurrent, cfg.Registry, instrument(mux, m, cfg.Logger)))
}

// instrument counts and times requests by route and status, answers
// unrouted requests with problem JSON, and puts a valid incoming W3C
// traceparent into the request's context.
func instrument(mux *http.ServeMux, m *httpMetrics, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h, route := mux.Handler(r)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if route == "" {
			// No route: let the mux decide between 404, 405 (with its
			// Allow header) and a redirect, and answer in problem JSON.
			route = "unrouted"
			probe := &headerCapture{header: http.Header{}}
			h.ServeHTTP(probe, r)
			if allow := probe.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			if loc := probe.header.Get("Location"); loc != "" {
				w.Header().Set("Location", loc)
			}
			detail := ""
			if probe.status == http.StatusNotFound {
				detail = "no such route; GET /openapi.json describes the API"
			}
			writeStatusProblem(rec, r, probe.status, detail)
		} else {
			if tp := r.Header.Get("traceparent"); traceParentPattern.MatchString(tp) {
				r = r.WithContext(withTraceParent(r.Context(), tp))
			}
			mux.ServeHTTP(rec, r)
		}
		status := strconv.Itoa(rec.status)
		m.requests.WithLabelValues(r.Method, route, status).Inc()
		m.duration.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
		if rec.status >= 500 {
			log.WarnContext(r.Context(), "request", "method", r.Method, "route", route, "status", rec.status, "duration", time.Since(start))
		} else {
			log.DebugContext(r.Context(), "request", "method", r.Method, "route", route, "status", rec.status, "duration", time.Since(start))
		}
	})
}

func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeStatusProblem(w, r, http.StatusInternalServerError, "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// headerCapture keeps what the mux's own 405 or redirect answer would say.
type headerCapture struct {
	header http.Header
	status int
}

func (c *headerCapture) Header() http.Header         { return c.header }
func (c *headerCapture) Write(b []byte) (int, error) { return len(b), nil }
func (c *headerCapture) WriteHeader(status int)      { c.status = status }

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventflow_http_requests_total",
			Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventflow_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// traceParentPattern is a W3C trace context traceparent of version 00.
var traceParentPattern = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

type traceParentKey struct{}

func withTraceParent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceParentKey{}, tp)
}

// traceParent is the incoming request's traceparent, carried into the
// events the request causes.
func traceParent(ctx context.Context) string {
	tp, _ := ctx.Value(traceParentKey{}).(string)
	return tp
}

// NewServer returns an http.Server with timeouts that keep slow clients from
// holding connections forever.
func NewServer(addr string, h http.Handler, readHeader, read, write, idle time.Duration) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: readHeader,
		ReadTimeout:       read,
		WriteTimeout:      write,
		IdleTimeout:       idle,
		MaxHeaderBytes:    64 << 10,
	}
}

var errServerClosed = http.ErrServerClosed

// IsServerClosed reports whether err is the normal end of Serve.
func IsServerClosed(err error) bool { return errors.Is(err, errServerClosed) }
