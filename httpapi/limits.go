package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxConcurrent is how many requests the API handles at once when
// Config.MaxConcurrent is not set.
const DefaultMaxConcurrent = 256

// shedRetryAfter is the Retry-After of a request shed for overload, in
// seconds: long enough for in-flight requests to finish, short enough that
// a client's retry is no punishment.
const shedRetryAfter = 1

// limitConcurrency lets at most max requests into next at once. One more is
// answered at once with 503 and Retry-After: queueing it would only hold
// its connection and memory while the requests ahead of it hold the
// database, and the client can retry elsewhere or later. Requests held by
// slow clients count too, until the server's read and write timeouts cut
// them, which bounds how long they can hold a place.
//
// GET /healthz and GET /metrics are never shed, so that probes and scrapes
// still see a server that is busy rather than one that is dead.
func limitConcurrency(max int, reg prometheus.Registerer, next http.Handler) http.Handler {
	if max <= 0 {
		max = DefaultMaxConcurrent
	}
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eventflow_http_requests_in_flight",
		Help: "HTTP requests being handled, but for /healthz and /metrics.",
	})
	shed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventflow_http_requests_shed_total",
		Help: "HTTP requests answered 503 because EVENTFLOW_HTTP_MAX_CONCURRENT requests were in flight.",
	})
	if reg != nil {
		reg.MustRegister(inFlight, shed)
	}
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/metrics") {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			shed.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(shedRetryAfter))
			writeStatusProblem(w, r, http.StatusServiceUnavailable,
				"the server is handling "+strconv.Itoa(max)+" requests; retry after "+strconv.Itoa(shedRetryAfter)+"s")
			return
		}
		inFlight.Inc()
		defer func() {
			inFlight.Dec()
			<-slots
		}()
		next.ServeHTTP(w, r)
	})
}
