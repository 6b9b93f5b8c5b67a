package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// embeddedTier is forEachTier's embedded tier alone, for tests of the HTTP
// server, which does not depend on the engines behind it.
func embeddedTier(t *testing.T) tier {
	return tier{name: "embedded", env: map[string]string{
		"EVENTFLOW_DATA_DIR":            t.TempDir(),
		"EVENTFLOW_EMBEDDED_KAFKA_PORT": "0",
	}}
}

// slowTimeouts are the server timeouts the slow-client tests run with,
// small so that the tests take seconds.
var slowTimeouts = map[string]string{
	"EVENTFLOW_HTTP_READ_HEADER_TIMEOUT": "500ms",
	"EVENTFLOW_HTTP_READ_TIMEOUT":        "1s",
	"EVENTFLOW_HTTP_WRITE_TIMEOUT":       "1s",
	"EVENTFLOW_HTTP_IDLE_TIMEOUT":        "1s",
}

// cutAfter reports how long after start the server closed conn, reading
// and discarding what it sends; it gives up after limit.
func cutAfter(conn net.Conn, start time.Time, limit time.Duration) (time.Duration, error) {
	conn.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0, fmt.Errorf("still open after %v", limit)
	}
	return time.Since(start), nil // EOF or a reset: the server closed it
}

// trickle writes s one byte every interval until stop closes or a write
// fails.
func trickle(conn net.Conn, s string, interval time.Duration, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		if _, err := conn.Write([]byte{s[i%len(s)]}); err != nil {
			return
		}
	}
}

// Slow clients cannot exhaust the server: hundreds of connections sending
// their headers a byte at a time (slowloris), clients sending a body a byte
// at a time, and clients that pipeline requests and never read the answers
// are each cut at the server's timeouts, and while they hang a normal
// request still succeeds at once.
func TestSlowClientsCannotExhaustServer(t *testing.T) {
	a := startApp(t, embeddedTier(t), slowTimeouts)
	host := strings.TrimPrefix(a.baseURL, "http://")
	const (
		slowloris  = 200
		slowBodies = 20
		nonReaders = 20
		pipelined  = 2000
		limit      = 6 * time.Second // far above every timeout: a connection open this long was not cut
	)
	stop := make(chan struct{})
	defer close(stop)
	type result struct {
		kind  string
		after time.Duration
		err   error
	}
	results := make(chan result, slowloris+slowBodies+nonReaders)
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	for range slowloris {
		conn := dial()
		start := time.Now()
		go trickle(conn, "GET /v1/orders HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 50*time.Millisecond, stop)
		go func() {
			after, err := cutAfter(conn, start, limit)
			results <- result{"slowloris", after, err}
		}()
	}
	for range slowBodies {
		conn := dial()
		start := time.Now()
		fmt.Fprintf(conn, "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
		go trickle(conn, `{"user_id":"slow","comment":"`+strings.Repeat("z", 64), 50*time.Millisecond, stop)
		go func() {
			after, err := cutAfter(conn, start, limit)
			results <- result{"slow body", after, err}
		}()
	}
	var nonReaderConns []net.Conn
	for range nonReaders {
		conn := dial()
		conn.(*net.TCPConn).SetReadBuffer(4096)
		nonReaderConns = append(nonReaderConns, conn)
		go func() {
			conn.SetWriteDeadline(time.Now().Add(limit))
			conn.Write([]byte(strings.Repeat("GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n", pipelined)))
		}()
	}

	// While they hang: normal requests, each on a new connection.
	time.Sleep(300 * time.Millisecond)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var (
		slowest  time.Duration
		inFlight int // the most requests in flight seen before a normal one
	)
	for i := range 10 {
		inFlight = max(inFlight, requestsInFlight(t, a))
		start := time.Now()
		var (
			res *http.Response
			err error
		)
		if i%2 == 0 {
			res, err = client.Get(a.baseURL + "/v1/orders")
		} else {
			res, err = client.Post(a.baseURL+"/v1/orders", "application/json", strings.NewReader(`{"user_id":"normal","currency":"EUR","total":100}`))
		}
		if err != nil {
			t.Fatalf("a normal request while slow clients hang: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode >= 300 {
			t.Fatalf("a normal request while slow clients hang: %d", res.StatusCode)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Errorf("the slowest normal request took %v while slow clients hung", slowest)
	}
	// The slow bodies and the clients that never read were inside handlers,
	// each holding a place (the slowloris connections never got that far),
	// and yet there was room for the normal requests.
	if inFlight < slowBodies || inFlight > slowBodies+nonReaders {
		t.Errorf("%d requests in flight while the slow clients hang; want the %d slow bodies and up to %d that never read", inFlight, slowBodies, nonReaders)
	}

	// The clients that never read: by now past the write timeout, the
	// server has given up on them and closed their connections; reading
	// finds the end, not a server still writing.
	time.Sleep(2500 * time.Millisecond)
	var drained int64
	for _, conn := range nonReaderConns {
		start := time.Now()
		conn.SetReadDeadline(start.Add(3 * time.Second))
		n, err := io.Copy(io.Discard, conn)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			results <- result{"never reads", 0, fmt.Errorf("still being written to after the write timeout (%d bytes read)", n)}
		case n >= int64(pipelined*len(openAPIBody(t, a))):
			results <- result{"never reads", 0, fmt.Errorf("got all %d responses", pipelined)}
		default:
			drained += n
			results <- result{"never reads", time.Since(start), nil}
		}
	}

	timeouts := map[string][2]time.Duration{ // when each kind must be cut: not before, not after
		"slowloris":   {400 * time.Millisecond, 2 * time.Second},
		"slow body":   {900 * time.Millisecond, 2500 * time.Millisecond},
		"never reads": {0, 3 * time.Second},
	}
	cuts := map[string][]time.Duration{}
	for range slowloris + slowBodies + nonReaders {
		r := <-results
		if r.err != nil {
			t.Errorf("%s: %v", r.kind, r.err)
			continue
		}
		if w := timeouts[r.kind]; r.after < w[0] || r.after > w[1] {
			t.Errorf("%s: cut after %v; want between %v and %v", r.kind, r.after, w[0], w[1])
		}
		cuts[r.kind] = append(cuts[r.kind], r.after)
	}
	for _, kind := range []string{"slowloris", "slow body"} {
		t.Logf("%d %s connections cut, the last after %v", len(cuts[kind]), kind, maxDuration(cuts[kind]).Round(time.Millisecond))
	}
	t.Logf("%d connections that never read closed by the server: %d kB of the %d MB of responses asked for were left to read",
		len(cuts["never reads"]), drained>>10, int64(nonReaders*pipelined*len(openAPIBody(t, a)))>>20)
	t.Logf("slowest of 10 normal requests meanwhile: %v, with %d slow requests in flight", slowest.Round(time.Millisecond), inFlight)

	// An idle keep-alive connection is closed at the idle timeout.
	conn := dial()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	io.Copy(io.Discard, res.Body)
	start := time.Now()
	conn.SetReadDeadline(start.Add(limit))
	br.ReadByte() // returns when the server closes the connection
	if idle := time.Since(start); idle < 900*time.Millisecond || idle > 2500*time.Millisecond {
		t.Errorf("idle connection closed after %v; want about 1s", idle)
	}
}

// requestsInFlight reads eventflow_http_requests_in_flight from /metrics,
// which is never shed nor counted.
func requestsInFlight(t *testing.T, a *app) int {
	t.Helper()
	const name = "\neventflow_http_requests_in_flight "
	metrics := string(a.do(t, "GET", "/metrics", nil).body)
	i := strings.Index(metrics, name)
	if i < 0 {
		t.Fatalf("/metrics lacks%s", name)
	}
	var n int
	fmt.Sscan(metrics[i+len(name):], &n)
	return n
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// Over EVENTFLOW_HTTP_MAX_CONCURRENT requests in flight, one more is
// answered 503 with Retry-After at once, not queued; health and metrics
// still answer; when the requests in flight end, requests are served again.
func TestOverloadIsShed(t *testing.T) {
	const max = 4
	a := startApp(t, embeddedTier(t), withEnv(slowTimeouts, "EVENTFLOW_HTTP_MAX_CONCURRENT", fmt.Sprint(max)))
	host := strings.TrimPrefix(a.baseURL, "http://")
	stop := make(chan struct{})
	defer close(stop)

	// max requests that hold their places: bodies sent a byte at a time.
	var wg sync.WaitGroup
	for range max {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
		go trickle(conn, `{"user_id":"slow"`, 50*time.Millisecond, stop)
		wg.Go(func() { cutAfter(conn, time.Now(), 10*time.Second) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(a.do(t, "GET", "/metrics", nil).body), fmt.Sprintf("eventflow_http_requests_in_flight %d", max)) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow requests never all got in")
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	r := a.do(t, "GET", "/v1/orders", nil)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("the shed request took %v; it must be answered at once", took)
	}
	expectProblem(t, r, http.StatusServiceUnavailable, "")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	expectProblem(t, a.do(t, "POST", "/v1/orders", `{"user_id":"x","currency":"EUR","total":1}`), http.StatusServiceUnavailable, "")
	if r := a.do(t, "GET", "/healthz", nil); r.status != 200 {
		t.Errorf("healthz while full: %d", r.status)
	}

	wg.Wait() // the read timeout cut the slow ones
	if r := a.do(t, "GET", "/v1/orders", nil); r.status != 200 {
		t.Fatalf("after the slow requests were cut: %d %s", r.status, r.body)
	}
	if r := a.do(t, "GET", "/v1/orders?user_id=x", nil); strings.Contains(string(r.body), `"user_id":"x"`) {
		t.Errorf("a shed request was stored: %s", r.body)
	}
	if m := string(a.do(t, "GET", "/metrics", nil).body); !strings.Contains(m, "eventflow_http_requests_shed_total 2") {
		t.Errorf("metrics do not count the 2 shed requests")
	}
}

func openAPIBody(t *testing.T, a *app) []byte {
	t.Helper()
	return a.do(t, "GET", "/openapi.json", nil).body
}
