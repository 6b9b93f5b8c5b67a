package webhook_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/webhook"
)

const testBody = `{"specversion":"1.0","type":"orders.order.created","id":"e1"}`

// receiver is a webhook receiver as a subscriber would write one: it
// verifies each request with webhook.Verify and answers with status.
type receiver struct {
	secret string
	status atomic.Int32

	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
	verified []error
}

func newReceiver(t *testing.T, secret string, status int) (*receiver, *httptest.Server) {
	t.Helper()
	rc := &receiver{secret: secret}
	rc.status.Store(int32(status))
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := webhook.Verify(rc.secret, r.Header, body, time.Minute)
	rc.mu.Lock()
	rc.requests = append(rc.requests, r)
	rc.bodies = append(rc.bodies, string(body))
	rc.verified = append(rc.verified, err)
	rc.mu.Unlock()
	status := int(rc.status.Load())
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func call(url, secret string) notifications.WebhookCall {
	return notifications.WebhookCall{
		URL: url, ID: "delivery-1", Timestamp: time.Now(), Body: []byte(testBody), Secret: secret,
	}
}

func TestCallWebhookSignsRequest(t *testing.T) {
	secret := newSecret(t)
	rc, srv := newReceiver(t, secret, http.StatusOK)
	s := webhook.New(webhook.Config{AllowPrivate: true})
	c := call(srv.URL+"/hooks/orders?x=1", secret)
	if err := s.CallWebhook(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if rc.count() != 1 {
		t.Fatalf("%d requests, want 1", rc.count())
	}
	r := rc.requests[0]
	if err := rc.verified[0]; err != nil {
		t.Errorf("receiver could not verify: %v", err)
	}
	for name, want := range map[string]string{
		"webhook-id":        "delivery-1",
		"webhook-timestamp": strconv.FormatInt(c.Timestamp.Unix(), 10),
		"Content-Type":      "application/cloudevents+json",
		"User-Agent":        "eventflow",
	} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != "/hooks/orders" || r.URL.RawQuery != "x=1" {
		t.Errorf("request %s %s", r.Method, r.URL)
	}
	if rc.bodies[0] != testBody {
		t.Errorf("body %q", rc.bodies[0])
	}

	// With another secret the receiver must refuse.
	other := newSecret(t)
	if err := s.CallWebhook(t.Context(), call(srv.URL, other)); err != nil {
		t.Fatal(err)
	}
	if rc.verified[1] == nil {
		t.Error("receiver verified a request signed with another secret")
	}
}

func TestCallWebhookStatuses(t *testing.T) {
	secret := newSecret(t)
	rc, srv := newReceiver(t, secret, 0)
	s := webhook.New(webhook.Config{AllowPrivate: true})
	for _, tc := range []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{200, true, false}, {201, true, false}, {202, true, false}, {204, true, false},
		{500, false, false}, {502, false, false}, {503, false, false}, {504, false, false},
		{429, false, false}, {408, false, false},
		{400, false, true}, {401, false, true}, {403, false, true}, {404, false, true},
		{410, false, true}, {413, false, true}, {422, false, true},
		{301, false, true}, {302, false, true}, {307, false, true}, {308, false, true},
	} {
		rc.status.Store(int32(tc.status))
		before := rc.count()
		err := s.CallWebhook(t.Context(), call(srv.URL, secret))
		switch {
		case tc.ok && err != nil:
			t.Errorf("%d: %v, want success", tc.status, err)
		case !tc.ok && err == nil:
			t.Errorf("%d: success, want an error", tc.status)
		case !tc.ok && notifications.IsPermanent(err) != tc.permanent:
			t.Errorf("%d: %v: permanent = %v, want %v", tc.status, err, !tc.permanent, tc.permanent)
		}
		if n := rc.count() - before; n != 1 {
			t.Errorf("%d: %d requests, want 1 (redirects are not followed)", tc.status, n)
		}
	}
}

func TestCallWebhookTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client leaving only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	s := webhook.New(webhook.Config{AllowPrivate: true, Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := s.CallWebhook(t.Context(), call(srv.URL, newSecret(t)))
	if err == nil || notifications.IsPermanent(err) {
		t.Fatalf("got %v, want a temporary error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v with a 200ms timeout", d)
	}
	if !strings.Contains(err.Error(), "deadline exceeded") && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("error %q does not say timeout", err)
	}
}

func TestCallWebhookNetworkErrorIsTemporary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := webhook.New(webhook.Config{AllowPrivate: true, Timeout: time.Second})
	err = s.CallWebhook(t.Context(), call("http://"+addr+"/", newSecret(t)))
	if err == nil || notifications.IsPermanent(err) {
		t.Fatalf("got %v, want a temporary error", err)
	}
}

func TestCallWebhookRefusesNonPublicAddresses(t *testing.T) {
	secret := newSecret(t)
	rc, srv := newReceiver(t, secret, http.StatusOK)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	guarded := map[string]*webhook.Sender{
		"default client": webhook.New(webhook.Config{Timeout: 5 * time.Second}),
		// A caller's client with an *http.Transport gets the guard too.
		"custom client": webhook.New(webhook.Config{Timeout: 5 * time.Second,
			Client: &http.Client{Transport: &http.Transport{}}}),
	}
	for name, s := range guarded {
		for _, u := range []string{
			srv.URL,                          // 127.0.0.1, where a receiver does listen
			"http://localhost:" + port + "/", // a name that resolves to loopback
			"https://10.0.0.1/hook",          // private: must fail before any packet
			"http://10.0.0.1:8080/hook",      //
			"http://169.254.169.254/latest/", // cloud metadata
			"http://[::1]:" + port + "/",     // IPv6 loopback
			"http://0.0.0.0:" + port + "/",   // unspecified
			"http://192.168.1.1/",            // private
			"http://[fd00::1]/",              // unique local
			"http://[::ffff:10.0.0.1]/",      // IPv4-mapped private
			"http://224.0.0.1/",              // multicast
		} {
			start := time.Now()
			err := s.CallWebhook(t.Context(), call(u, secret))
			if !notifications.IsPermanent(err) || !strings.Contains(err.Error(), "not allowed") {
				t.Errorf("%s: %s: got %v, want a permanent refusal", name, u, err)
			}
			// The guard runs before connect(2): an unroutable 10.0.0.1 would
			// otherwise take until the timeout.
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s: %s: refused after %v; was a connection attempted?", name, u, d)
			}
		}
	}
	if n := rc.count(); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
}

func TestCallWebhookRejectsBadInput(t *testing.T) {
	secret := newSecret(t)
	rc, srv := newReceiver(t, secret, http.StatusOK)
	s := webhook.New(webhook.Config{AllowPrivate: true})
	for name, mutate := range map[string]func(*notifications.WebhookCall){
		"bad secret":     func(c *notifications.WebhookCall) { c.Secret = "whsec_not base64!" },
		"empty secret":   func(c *notifications.WebhookCall) { c.Secret = "whsec_" },
		"empty id":       func(c *notifications.WebhookCall) { c.ID = "" },
		"id with CRLF":   func(c *notifications.WebhookCall) { c.ID = "a\r\nX-Injected: 1" },
		"ftp url":        func(c *notifications.WebhookCall) { c.URL = "ftp://127.0.0.1/" },
		"user info":      func(c *notifications.WebhookCall) { c.URL = "http://u:p@" + strings.TrimPrefix(srv.URL, "http://") },
		"unparsable url": func(c *notifications.WebhookCall) { c.URL = "http://[::1" },
	} {
		c := call(srv.URL, secret)
		mutate(&c)
		if err := s.CallWebhook(t.Context(), c); !notifications.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", name, err)
		}
	}
	if n := rc.count(); n != 0 {
		t.Errorf("%d requests sent for invalid calls", n)
	}
}

func TestCallWebhookContextCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	s := webhook.New(webhook.Config{AllowPrivate: true, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.CallWebhook(ctx, call(srv.URL, newSecret(t))); err == nil || notifications.IsPermanent(err) {
		t.Fatalf("got %v, want a temporary error", err)
	}
}
