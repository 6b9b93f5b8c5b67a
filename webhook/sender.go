// Package webhook calls subscribers' webhooks: a POST of the CloudEvent,
// signed as the Standard Webhooks specification prescribes, so receivers
// can check it with that specification's libraries or with Verify. It
// implements notifications.WebhookSender and tells the delivery workers
// which failures are worth retrying.
//
// Because the URLs come from users, the Sender refuses to connect to
// loopback, private, link-local and other non-public addresses unless told
// otherwise: a webhook must not become a way into the network eventflow
// runs in.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/eventflow/eventflow/notifications"
)

// DefaultTimeout bounds a call when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Config configures a Sender.
type Config struct {
	// Timeout bounds each call: connecting, sending, and the answer's
	// status line and headers; DefaultTimeout when zero.
	Timeout time.Duration
	// AllowPrivate lets calls reach loopback, private, link-local and other
	// non-public addresses: for tests, and for deployments whose webhooks
	// are internal services.
	AllowPrivate bool
	// Client, when set, makes the calls. It is copied, never changed:
	// redirects are never followed, and when its Transport is nil or an
	// *http.Transport, a clone of it gets the address guard (and loses any
	// proxy and custom dialer, which would bypass the guard). Any other
	// RoundTripper is used as it is, so it must guard addresses itself.
	Client *http.Client
}

// Sender is a notifications.WebhookSender. It is safe for concurrent use.
type Sender struct {
	client  *http.Client
	timeout time.Duration
}

var _ notifications.WebhookSender = (*Sender)(nil)

// New returns a Sender configured by cfg.
func New(cfg Config) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	var client http.Client
	if cfg.Client != nil {
		client = *cfg.Client
	}
	switch t := client.Transport.(type) {
	case nil:
		client.Transport = newTransport(cfg.AllowPrivate)
	case *http.Transport:
		if !cfg.AllowPrivate {
			t = t.Clone()
			t.Proxy, t.DialTLSContext, t.DialTLS, t.Dial = nil, nil, nil, nil //nolint:staticcheck // Dial too, or it would be used
			t.DialContext = guardedDialer().DialContext
			client.Transport = t
		}
	}
	// A redirect is answered as it is: following it would send the signed
	// event somewhere the subscriber did not register.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{client: &client, timeout: cfg.Timeout}
}

func guardedDialer() *net.Dialer {
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: guardDial}
}

func newTransport(allowPrivate bool) *http.Transport {
	d := guardedDialer()
	if allowPrivate {
		d.Control = nil
	}
	return &http.Transport{
		// No proxy from the environment: the guard checks the address
		// dialled, which would be the proxy's.
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// CallWebhook POSTs c.Body to c.URL with the Standard Webhooks headers
// (webhook-id c.ID, webhook-timestamp c.Timestamp or now when zero,
// webhook-signature), Content-Type application/cloudevents+json and
// User-Agent eventflow. Redirects are not followed.
//
// A 2xx answer is success. The error is notifications.Permanent for answers
// that a retry will not change (3xx, and 4xx but 408 and 429), for a bad
// URL, ID or secret, and for a target address that is not allowed; it is
// temporary for 408, 429, 5xx, network errors and timeouts.
func (s *Sender) CallWebhook(ctx context.Context, c notifications.WebhookCall) error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return notifications.Permanent(fmt.Errorf("webhook url %q: want http(s)://host/… without user info", c.URL))
	}
	if err := checkID(c.ID); err != nil {
		return notifications.Permanent(err)
	}
	ts := c.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	sig, err := Sign(c.Secret, c.ID, ts, c.Body)
	if err != nil {
		return notifications.Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(c.Body))
	if err != nil {
		return notifications.Permanent(fmt.Errorf("webhook request: %w", err))
	}
	req.Header.Set(HeaderID, c.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "eventflow")

	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, errForbiddenAddress) {
			return notifications.Permanent(fmt.Errorf("call webhook: %w", err))
		}
		return fmt.Errorf("call webhook: %w", err)
	}
	// Read a little of the answer so the connection can be reused; a
	// receiver that streams more is not waited for.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return classify(resp)
}

// classify maps an answer to success, a temporary or a permanent error.
func classify(resp *http.Response) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err := fmt.Errorf("webhook answered %s", resp.Status)
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return err
	case code >= 300 && code < 400:
		if loc := resp.Header.Get("Location"); loc != "" {
			err = fmt.Errorf("webhook answered %s to %q; redirects are not followed, register the final URL", resp.Status, loc)
		}
		return notifications.Permanent(err)
	}
	return notifications.Permanent(err)
}

// checkID refuses a webhook-id that could not be sent as a header value
// unchanged, which receivers need to recompute the signature.
func checkID(id string) error {
	if id == "" {
		return errors.New("webhook id: empty")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("webhook id %q: want printable ASCII without spaces", id)
		}
	}
	return nil
}
