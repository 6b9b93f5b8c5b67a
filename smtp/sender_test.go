package smtp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

func testEmail(n int) notifications.Email {
	return notifications.Email{
		From:      "Eventflow <noreply@eventflow.test>",
		To:        fmt.Sprintf("user%d@example.test", n),
		Subject:   fmt.Sprintf("Заказ №%d создан", n),
		Text:      fmt.Sprintf("Order %d was created.\n", n),
		HTML:      fmt.Sprintf("<p>Order <b>%d</b> was created.</p>", n),
		MessageID: fmt.Sprintf("delivery-%d@eventflow.test", n),
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://eventflow.test/unsubscribe/tok>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"X-Eventflow-Event-Id":  fmt.Sprintf("evt-%d", n),
		},
	}
}

func newSender(t *testing.T, cfg smtp.Config) *smtp.Sender {
	t.Helper()
	s, err := smtp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sendErrorCode is the SMTP error reply (4xx or 5xx) the sender met, 0 for
// none.
func sendErrorCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 400 && te.Code < 600 {
		return te.Code
	}
	return 0
}

func TestSendReusesOneConnection(t *testing.T) {
	srv := newFakeServer(t, nil)
	s := newSender(t, smtp.Config{URL: srv.url("", "")})
	const n = 5
	for i := range n {
		if err := s.SendEmail(t.Context(), testEmail(i)); err != nil {
			t.Fatalf("email %d: %v", i, err)
		}
	}
	conns, msgs := srv.stats()
	if conns != 1 || len(msgs) != n {
		t.Fatalf("got %d messages over %d connections, want %d over 1", len(msgs), conns, n)
	}
	if got := srv.count("AUTH"); got != 0 {
		t.Errorf("AUTH sent %d times without user info in the URL", got)
	}
	if got := srv.count("RSET"); got != 0 {
		t.Errorf("RSET sent %d times after successful sends", got)
	}
}

func TestSendMessageFormat(t *testing.T) {
	srv := newFakeServer(t, nil)
	s := newSender(t, smtp.Config{URL: srv.url("", "")})
	e := testEmail(7)
	e.Text = "Line one\nLine two with ünïcode and a long line " + strings.Repeat("x", 120) + "\n"
	if err := s.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	_, msgs := srv.stats()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m, err := mail.ReadMessage(strings.NewReader(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"From", m.Header.Get("From"), `"Eventflow" <noreply@eventflow.test>`},
		{"To", m.Header.Get("To"), "<user7@example.test>"},
		{"Subject", subject, e.Subject},
		{"Message-ID", m.Header.Get("Message-ID"), "<delivery-7@eventflow.test>"},
		{"List-Unsubscribe", m.Header.Get("List-Unsubscribe"), e.Headers["List-Unsubscribe"]},
		{"List-Unsubscribe-Post", m.Header.Get("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click"},
		{"X-Eventflow-Event-Id", m.Header.Get("X-Eventflow-Event-Id"), "evt-7"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if strings.Contains(m.Header.Get("Subject"), "Заказ") {
		t.Errorf("Subject not RFC 2047-encoded: %q", m.Header.Get("Subject"))
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	var order []string
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // undoes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = strings.ReplaceAll(string(body), "\r\n", "\n")
		order = append(order, ct)
	}
	if strings.Join(order, ",") != "text/plain,text/html" {
		t.Errorf("parts %v, want text/plain then text/html", order)
	}
	if parts["text/plain"] != e.Text {
		t.Errorf("text part %q, want %q", parts["text/plain"], e.Text)
	}
	if parts["text/html"] != e.HTML {
		t.Errorf("html part %q, want %q", parts["text/html"], e.HTML)
	}
	for line := range strings.SplitSeq(msgs[0], "\n") { // ReadDotBytes turned CRLF into LF
		if len(line) > 998 {
			t.Errorf("line of %d octets exceeds RFC 5322's limit: %.200q", len(line), line)
		}
	}
}

func TestSendTemporaryReplies(t *testing.T) {
	for _, tc := range []struct {
		verb, reply string
		code        int
		conns       int // after the failed send and one more
	}{
		{"RCPT", "451 4.3.0 try again later", 451, 1},
		{"RCPT", "450 4.2.0 mailbox busy", 450, 1},
		{"RCPT", "452 4.2.2 mailbox full", 452, 1},
		{"MAIL", "451 4.3.0 local error", 451, 1},
		{"END", "451 4.3.0 queue full", 451, 1},
		// 421 means the server is closing the session: redial.
		{"MAIL", "CLOSE 421 4.3.2 shutting down", 421, 2},
	} {
		t.Run(tc.verb+" "+tc.reply[strings.LastIndex(tc.reply, " ")+1:], func(t *testing.T) {
			srv := newFakeServer(t, func(verb string, n int) string {
				if verb == tc.verb && n == 1 {
					return tc.reply
				}
				return ""
			})
			s := newSender(t, smtp.Config{URL: srv.url("", "")})
			err := s.SendEmail(t.Context(), testEmail(1))
			if err == nil {
				t.Fatal("first send succeeded, want a temporary error")
			}
			if notifications.IsPermanent(err) {
				t.Errorf("%v: permanent, want temporary", err)
			}
			if got := sendErrorCode(err); got != tc.code {
				t.Errorf("reply code %d, want %d (%v)", got, tc.code, err)
			}
			if err := s.SendEmail(t.Context(), testEmail(1)); err != nil {
				t.Fatalf("retry: %v", err)
			}
			conns, msgs := srv.stats()
			if conns != tc.conns {
				t.Errorf("%d connections, want %d", conns, tc.conns)
			}
			if want := 1; tc.verb == "END" {
				want = 2 // the first data reached the server before the 451
				if len(msgs) != want {
					t.Errorf("%d messages received, want %d", len(msgs), want)
				}
			} else if len(msgs) != want {
				t.Errorf("%d messages received, want %d", len(msgs), want)
			}
		})
	}
}

func TestSendPermanentReplies(t *testing.T) {
	for _, tc := range []struct {
		verb, reply string
		code        int
	}{
		{"RCPT", "550 5.1.1 mailbox unavailable", 550},
		{"RCPT", "553 5.1.3 bad recipient address syntax", 553},
		{"MAIL", "550 5.7.1 sender rejected", 550},
		{"DATA", "554 5.5.1 no valid recipients", 554},
		{"END", "554 5.7.1 message rejected as spam", 554},
		{"END", "552 5.3.4 message too big", 552},
	} {
		t.Run(tc.verb+" "+tc.reply[:3], func(t *testing.T) {
			srv := newFakeServer(t, func(verb string, n int) string {
				if verb == tc.verb && n == 1 {
					return tc.reply
				}
				return ""
			})
			s := newSender(t, smtp.Config{URL: srv.url("", "")})
			err := s.SendEmail(t.Context(), testEmail(1))
			if !notifications.IsPermanent(err) {
				t.Fatalf("%v: want a permanent error", err)
			}
			if got := sendErrorCode(err); got != tc.code {
				t.Errorf("reply code %d, want %d", got, tc.code)
			}
			// The session survives a rejected message.
			if err := s.SendEmail(t.Context(), testEmail(2)); err != nil {
				t.Fatalf("next send: %v", err)
			}
			if conns, _ := srv.stats(); conns != 1 {
				t.Errorf("%d connections, want 1", conns)
			}
		})
	}
}

func TestSendAuthFailureIsTemporary(t *testing.T) {
	srv := newFakeServer(t, nil, func(s *fakeServer) { s.user, s.pass = "eventflow", "right" })
	s := newSender(t, smtp.Config{URL: srv.url("eventflow:wrong", "")})
	err := s.SendEmail(t.Context(), testEmail(1))
	if err == nil || notifications.IsPermanent(err) {
		t.Fatalf("got %v, want a temporary error: bad credentials are the operator's to fix", err)
	}
	if !strings.Contains(err.Error(), "535") {
		t.Errorf("error %q does not carry the 535 reply", err)
	}
}

func TestSendAuth(t *testing.T) {
	srv := newFakeServer(t, nil, func(s *fakeServer) { s.user, s.pass = "eventflow", "p@ss:w/rd" })
	s := newSender(t, smtp.Config{URL: srv.url("eventflow:p%40ss%3Aw%2Frd", "starttls=none")})
	for i := range 3 {
		if err := s.SendEmail(t.Context(), testEmail(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.count("AUTH"); got != 1 {
		t.Errorf("AUTH sent %d times, want once for the one connection", got)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestSendDropAfterData(t *testing.T) {
	srv := newFakeServer(t, func(verb string, n int) string {
		if verb == "END" && n == 1 {
			return "DROP"
		}
		return ""
	})
	s := newSender(t, smtp.Config{URL: srv.url("", "")})
	err := s.SendEmail(t.Context(), testEmail(1))
	if err == nil || notifications.IsPermanent(err) {
		t.Fatalf("got %v, want a temporary error", err)
	}
	if err := s.SendEmail(t.Context(), testEmail(1)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	conns, msgs := srv.stats()
	if conns != 2 || len(msgs) != 2 {
		t.Fatalf("%d messages over %d connections, want 2 over 2", len(msgs), conns)
	}
	if !sameMessageID(msgs[0], msgs[1]) {
		t.Error("the retry carries another Message-ID")
	}
}

func sameMessageID(a, b string) bool {
	ma, err1 := mail.ReadMessage(strings.NewReader(a))
	mb, err2 := mail.ReadMessage(strings.NewReader(b))
	return err1 == nil && err2 == nil && ma.Header.Get("Message-Id") == mb.Header.Get("Message-Id")
}

func TestSendRedialsWhenServerClosedIdleConnection(t *testing.T) {
	srv := newFakeServer(t, func(verb string, n int) string {
		if verb == "END" && n == 1 {
			return "CLOSE 250 2.0.0 queued"
		}
		return ""
	})
	s := newSender(t, smtp.Config{URL: srv.url("", "")})
	for i := range 3 {
		if err := s.SendEmail(t.Context(), testEmail(i)); err != nil {
			t.Fatalf("email %d: %v", i, err)
		}
	}
	conns, msgs := srv.stats()
	if conns != 2 || len(msgs) != 3 {
		t.Errorf("%d messages over %d connections, want 3 over 2", len(msgs), conns)
	}
}

func TestSendTimeout(t *testing.T) {
	srv := newFakeServer(t, func(verb string, n int) string {
		if verb == "END" && n == 1 {
			return "HANG"
		}
		return ""
	})
	s := newSender(t, smtp.Config{URL: srv.url("", ""), Timeout: 300 * time.Millisecond})
	start := time.Now()
	err := s.SendEmail(t.Context(), testEmail(1))
	if err == nil || notifications.IsPermanent(err) {
		t.Fatalf("got %v, want a temporary error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("send returned after %v with a 300ms timeout", d)
	}
	var ne net.Error
	if !strings.Contains(err.Error(), "timeout") && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("error %q does not say timeout", err)
	}
	// The hung connection is not reused.
	if err := s.SendEmail(t.Context(), testEmail(2)); err != nil {
		t.Fatalf("next send: %v", err)
	}
	if conns, _ := srv.stats(); conns != 2 {
		t.Errorf("%d connections, want 2", conns)
	}
}

func TestSendContextCancel(t *testing.T) {
	srv := newFakeServer(t, func(verb string, n int) string {
		if verb == "END" {
			return "HANG"
		}
		return ""
	})
	s := newSender(t, smtp.Config{URL: srv.url("", ""), Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.SendEmail(ctx, testEmail(1))
	if err == nil || notifications.IsPermanent(err) {
		t.Fatalf("got %v, want a temporary error", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the context's", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("send returned %v after the context ended", d)
	}
}

func TestSendConnectFailuresAreTemporary(t *testing.T) {
	t.Run("greeting 554", func(t *testing.T) {
		srv := newFakeServer(t, func(verb string, n int) string {
			if verb == "GREETING" {
				return "CLOSE 554 5.3.2 no service for you"
			}
			return ""
		})
		s := newSender(t, smtp.Config{URL: srv.url("", "")})
		err := s.SendEmail(t.Context(), testEmail(1))
		if err == nil || notifications.IsPermanent(err) {
			t.Fatalf("got %v, want a temporary error", err)
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Error("ping succeeded against a server that refuses service")
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		s := newSender(t, smtp.Config{URL: "smtp://" + addr, Timeout: time.Second})
		err = s.SendEmail(t.Context(), testEmail(1))
		if err == nil || notifications.IsPermanent(err) {
			t.Fatalf("got %v, want a temporary error", err)
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Error("ping succeeded with nothing listening")
		}
	})
	t.Run("starttls required but not offered", func(t *testing.T) {
		srv := newFakeServer(t, nil)
		s := newSender(t, smtp.Config{URL: srv.url("", "starttls=required")})
		err := s.SendEmail(t.Context(), testEmail(1))
		if err == nil || notifications.IsPermanent(err) {
			t.Fatalf("got %v, want a temporary error", err)
		}
		if _, msgs := srv.stats(); len(msgs) != 0 {
			t.Error("message sent in clear although STARTTLS was required")
		}
	})
}

func TestSendConcurrentBoundedByPool(t *testing.T) {
	srv := newFakeServer(t, nil)
	const pool, workers, each = 3, 10, 5
	s := newSender(t, smtp.Config{URL: srv.url("", ""), PoolSize: pool})
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				errs <- s.SendEmail(t.Context(), testEmail(w*each+i))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conns, msgs := srv.stats()
	if len(msgs) != workers*each {
		t.Errorf("%d messages, want %d", len(msgs), workers*each)
	}
	if conns < 1 || conns > pool {
		t.Errorf("%d connections, want 1 to %d", conns, pool)
	}
}

func TestSendRefusesHeaderInjection(t *testing.T) {
	srv := newFakeServer(t, nil)
	s := newSender(t, smtp.Config{URL: srv.url("", "")})
	for name, mutate := range map[string]func(*notifications.Email){
		"subject":       func(e *notifications.Email) { e.Subject = "hi\r\nBcc: victim@example.test" },
		"to":            func(e *notifications.Email) { e.To = "a@example.test\nBcc: victim@example.test" },
		"from":          func(e *notifications.Email) { e.From = "a@example.test\r\n" },
		"message id":    func(e *notifications.Email) { e.MessageID = "x@y\r\nBcc: v@example.test" },
		"header value":  func(e *notifications.Email) { e.Headers["List-Unsubscribe"] = "<https://x>\r\nBcc: v@example.test" },
		"header name":   func(e *notifications.Email) { e.Headers["X-A\r\nBcc"] = "v@example.test" },
		"reserved":      func(e *notifications.Email) { e.Headers["bcc"] = "v@example.test" },
		"no message id": func(e *notifications.Email) { e.MessageID = "" },
		"bad to":        func(e *notifications.Email) { e.To = "not an address" },
	} {
		e := testEmail(1)
		mutate(&e)
		if err := s.SendEmail(t.Context(), e); !notifications.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", name, err)
		}
	}
	if conns, _ := srv.stats(); conns != 0 {
		t.Errorf("%d connections made for messages refused before sending", conns)
	}
}

func TestSendUsesConfigFrom(t *testing.T) {
	srv := newFakeServer(t, nil)
	s := newSender(t, smtp.Config{URL: srv.url("", ""), From: "Default <default@eventflow.test>"})
	e := testEmail(1)
	e.From = ""
	if err := s.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	_, msgs := srv.stats()
	m, err := mail.ReadMessage(strings.NewReader(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("From"); got != `"Default" <default@eventflow.test>` {
		t.Errorf("From = %q", got)
	}
}

func TestClose(t *testing.T) {
	srv := newFakeServer(t, nil)
	s := newSender(t, smtp.Config{URL: srv.url("", "")})
	if err := s.SendEmail(t.Context(), testEmail(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := srv.count("QUIT"); got != 1 {
		t.Errorf("QUIT sent %d times on Close, want 1", got)
	}
	if err := s.SendEmail(t.Context(), testEmail(2)); err == nil {
		t.Error("send after Close succeeded")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []smtp.Config{
		{URL: "http://mail.example.test"},
		{URL: "smtp://mail.example.test", From: "not an address"},
		{URL: "smtp://mail.example.test", From: "a@example.test\r\nBcc: x@y"},
		{URL: "smtp://mail.example.test", Timeout: -time.Second},
	} {
		if _, err := smtp.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestSendTLS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		implicit bool
		query    string
		ok       bool
	}{
		{"smtps", true, "insecure_skip_verify=1", true},
		{"smtps untrusted certificate", true, "", false},
		{"starttls opportunistic", false, "insecure_skip_verify=1", true},
		{"starttls required", false, "starttls=required&insecure_skip_verify=1", true},
		{"starttls untrusted certificate", false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t, nil, func(s *fakeServer) {
				s.tls, s.implicit = selfSignedTLS(t), tc.implicit
				s.user, s.pass = "eventflow", "secret"
			})
			u := srv.url("eventflow:secret", tc.query)
			if tc.implicit {
				u = "smtps" + strings.TrimPrefix(u, "smtp")
			}
			s := newSender(t, smtp.Config{URL: u, Timeout: 2 * time.Second})
			err := s.SendEmail(t.Context(), testEmail(1))
			if !tc.ok {
				if err == nil || notifications.IsPermanent(err) {
					t.Fatalf("got %v, want a temporary error", err)
				}
				if _, msgs := srv.stats(); len(msgs) != 0 {
					t.Error("message sent although the certificate was not trusted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := srv.tlsCount(); got != 1 {
				t.Errorf("%d messages over TLS, want 1", got)
			}
			if got := srv.count("AUTH"); got != 1 {
				t.Errorf("AUTH sent %d times, want 1", got)
			}
		})
	}
}

// TestSendDotLines: lines that start with a dot, or are one, arrive as
// written; quoted-printable leaves dots alone, so the sender must escape
// them on the wire or the server would take a "." line for the end.
func TestSendDotLines(t *testing.T) {
	srv := newFakeServer(t, nil)
	s := newSender(t, smtp.Config{URL: srv.url("", "")})
	e := testEmail(3)
	e.Text = ".leading dot\n.\n..two dots\nmiddle . dot\n.\n"
	e.HTML = ".<p>dot first</p>\n.\n"
	if err := s.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if err := s.SendEmail(t.Context(), testEmail(4)); err != nil {
		t.Fatalf("next message on the session: %v", err)
	}
	_, msgs := srv.stats()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	m, err := mail.ReadMessage(strings.NewReader(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, strings.ReplaceAll(string(body), "\r\n", "\n"))
	}
	if len(bodies) != 2 || bodies[0] != e.Text || bodies[1] != e.HTML {
		t.Errorf("bodies %q, want %q and %q", bodies, e.Text, e.HTML)
	}
}
