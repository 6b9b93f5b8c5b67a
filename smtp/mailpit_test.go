package smtp_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/internal/mailpittest"
	"github.com/eventflow/eventflow/internal/testenv"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

// mailpit returns the SMTP URL and the HTTP API base URL of the Mailpit the
// full test tier runs (scripts/services.sh start mailpit). Without them the
// test is skipped, or fails when testenv.Strict.
func mailpit(t *testing.T) (smtpURL, apiURL string) {
	t.Helper()
	smtpURL, apiURL = os.Getenv("EVENTFLOW_TEST_SMTP_URL"), os.Getenv("EVENTFLOW_TEST_MAILPIT_URL")
	if smtpURL != "" && apiURL != "" {
		return smtpURL, strings.TrimRight(apiURL, "/")
	}
	msg := "EVENTFLOW_TEST_SMTP_URL and EVENTFLOW_TEST_MAILPIT_URL are not both set, so the tests " +
		`against Mailpit cannot run; start it with scripts/services.sh start mailpit and eval "$(scripts/services.sh env)"`
	if testenv.Strict() {
		t.Fatal(msg + " (required: CI=true or EVENTFLOW_TEST_FULL=1)")
	}
	t.Skip(msg)
	return "", ""
}

// mailpitMessage is the part of Mailpit's GET /api/v1/message/{ID} the
// tests read.
type mailpitMessage struct {
	ID        string
	MessageID string
	From      mailpitAddress
	To        []mailpitAddress
	Subject   string
	Text      string
	HTML      string
	// Username is the SMTP AUTH user the message came in with.
	Username string
	// ListUnsubscribe is Mailpit's own check of the RFC 2369/8058 headers.
	ListUnsubscribe struct {
		Header, HeaderPost, Errors string
		Links                      []string
	}
}

type mailpitAddress struct{ Name, Address string }

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// findMessage polls Mailpit's search until the message with the Message-ID
// arrives, and returns it in full. Other tests share the Mailpit, so it
// searches by Message-ID rather than emptying the box.
func findMessage(t *testing.T, api, messageID string) mailpitMessage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	query := url.Values{"query": {`message-id:"` + messageID + `"`}}.Encode()
	for {
		var list struct {
			Messages []struct{ ID, MessageID string }
		}
		getJSON(t, api+"/api/v1/search?"+query, &list)
		for _, m := range list.Messages {
			if m.MessageID == messageID {
				var full mailpitMessage
				getJSON(t, api+"/api/v1/message/"+url.PathEscape(m.ID), &full)
				return full
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s not in Mailpit after 10s", messageID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func uniqueEmail() notifications.Email {
	id := rand.Text()
	return notifications.Email{
		From:      "Eventflow <noreply@eventflow.test>",
		To:        "Ann Buyer <ann@example.test>",
		Subject:   "Заказ создан: ünïcode subject " + id,
		Text:      "Your order was created.\nTotal: 12.50 EUR\n",
		HTML:      "<p>Your order was <b>created</b>.</p><p>Total: 12.50&nbsp;EUR</p>",
		MessageID: "delivery-" + id + "@eventflow.test",
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://eventflow.test/unsubscribe/" + id + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"X-Eventflow-Event-Id":  "evt-" + id,
		},
	}
}

func checkMailpitMessage(t *testing.T, api string, e notifications.Email, user string) {
	t.Helper()
	got := findMessage(t, api, e.MessageID)
	if got.Username != user {
		t.Errorf("SMTP AUTH user = %q, want %q", got.Username, user)
	}
	if lu := got.ListUnsubscribe; lu.Errors != "" || lu.HeaderPost != "List-Unsubscribe=One-Click" || len(lu.Links) != 1 {
		t.Errorf("Mailpit's List-Unsubscribe check: %+v", lu)
	}
	if got.From.Address != "noreply@eventflow.test" || got.From.Name != "Eventflow" {
		t.Errorf("From = %+v", got.From)
	}
	if len(got.To) != 1 || got.To[0].Address != "ann@example.test" || got.To[0].Name != "Ann Buyer" {
		t.Errorf("To = %+v", got.To)
	}
	if got.Subject != e.Subject {
		t.Errorf("Subject = %q, want %q", got.Subject, e.Subject)
	}
	if norm(got.Text) != norm(e.Text) {
		t.Errorf("Text = %q, want %q", got.Text, e.Text)
	}
	if norm(got.HTML) != norm(e.HTML) {
		t.Errorf("HTML = %q, want %q", got.HTML, e.HTML)
	}
	var headers map[string][]string
	getJSON(t, api+"/api/v1/message/"+url.PathEscape(got.ID)+"/headers", &headers)
	for name, want := range map[string]string{
		"Message-Id":            "<" + e.MessageID + ">",
		"List-Unsubscribe":      e.Headers["List-Unsubscribe"],
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"X-Eventflow-Event-Id":  e.Headers["X-Eventflow-Event-Id"],
	} {
		if v := headerValues(headers, name); len(v) != 1 || v[0] != want {
			t.Errorf("header %s = %q, want [%q]", name, v, want)
		}
	}
}

// headerValues looks a header up in Mailpit's map case-insensitively.
func headerValues(h map[string][]string, name string) []string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

func norm(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")) }

func TestMailpitDelivery(t *testing.T) {
	smtpURL, api := mailpit(t)
	s := newSender(t, smtp.Config{URL: smtpURL})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	e := uniqueEmail()
	if err := s.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	checkMailpitMessage(t, api, e, "")
}

func TestMailpitAuth(t *testing.T) {
	smtpURL, api := mailpit(t)
	u, err := url.Parse(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	// Mailpit runs with --smtp-auth-accept-any: any credentials pass, but
	// AUTH must be spoken correctly.
	u.User = url.UserPassword("eventflow", "s3cret:with@chars")
	s := newSender(t, smtp.Config{URL: u.String()})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("ping with AUTH: %v", err)
	}
	e := uniqueEmail()
	if err := s.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	checkMailpitMessage(t, api, e, "eventflow")
}

func TestMailpitConcurrentSends(t *testing.T) {
	smtpURL, api := mailpit(t)
	s := newSender(t, smtp.Config{URL: smtpURL, PoolSize: 3})
	emails := make([]notifications.Email, 12)
	errs := make(chan error, len(emails))
	for i := range emails {
		emails[i] = uniqueEmail()
		emails[i].Subject = fmt.Sprintf("concurrent %d %s", i, emails[i].MessageID)
	}
	for _, e := range emails {
		go func() { errs <- s.SendEmail(t.Context(), e) }()
	}
	for range emails {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range emails {
		if got := findMessage(t, api, e.MessageID); got.Subject != e.Subject {
			t.Errorf("Subject = %q, want %q", got.Subject, e.Subject)
		}
	}
}

// A private Mailpit with chaos triggers answers MAIL FROM with a scripted
// code, and is stopped and restarted under the Sender's pooled connection:
// the classification and the reconnection against a real server.
func TestMailpitFailures(t *testing.T) {
	mp := mailpittest.Start(t)
	s := newSender(t, smtp.Config{URL: mp.SMTPURL, Timeout: 5 * time.Second})
	send := func() error {
		e := uniqueEmail()
		return s.SendEmail(t.Context(), e)
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}

	mp.SetChaos(t, 451, 100)
	if err := send(); err == nil || notifications.IsPermanent(err) || !strings.Contains(err.Error(), "451") {
		t.Errorf("451 from Mailpit: got %v, want a temporary error", err)
	}
	mp.SetChaos(t, 550, 100)
	if err := send(); !notifications.IsPermanent(err) || !strings.Contains(err.Error(), "550") {
		t.Errorf("550 from Mailpit: got %v, want a permanent error", err)
	}
	mp.SetChaos(t, 0, 0)
	if err := send(); err != nil {
		t.Fatalf("after chaos: %v", err)
	}

	mp.Stop()
	if err := send(); err == nil || notifications.IsPermanent(err) {
		t.Errorf("server down: got %v, want a temporary error", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("ping succeeded with the server down")
	}
	mp.Restart(t)
	if err := send(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	var list struct{ Messages []struct{ ID string } }
	getJSON(t, mp.APIURL+"/api/v1/messages", &list)
	if len(list.Messages) != 3 {
		t.Errorf("Mailpit holds %d messages, want the 3 accepted", len(list.Messages))
	}
}
