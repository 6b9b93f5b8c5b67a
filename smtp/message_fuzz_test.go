package smtp_test

import (
	"bytes"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

// Whatever the recipient, subject and extra header, BuildMessage either
// refuses the email or writes one whose headers are exactly those asked
// for: one To, the recipient given; one Subject; no header that none of the
// values named (no Bcc smuggled in by a line break).
//
//	go test ./smtp -run '^$' -fuzz '^FuzzBuildMessage$' -fuzztime 1m
func FuzzBuildMessage(f *testing.F) {
	for _, s := range [][4]string{
		{"alice@example.com", "Order 1 created", "X-Eventflow-Event-Id", "0190c0de-0000-7000-8000-000000000001"},
		{"alice@example.com\r\nBcc: v@example.com", "hi", "X-A", "b"},
		{"alice@example.com", "hi\r\nBcc: v@example.com", "X-A", "b"},
		{"alice@example.com", "hi\nBcc: v@example.com", "X-A", "b"},
		{"alice@example.com", "hi", "X-A", "b\r\nBcc: v@example.com"},
		{"alice@example.com", "hi", "X-A\r\nBcc", "v@example.com"},
		{"alice@example.com", "hi", "Bcc", "v@example.com"},
		{"Alice <alice@example.com>", "Заказ №1 создан", "X-A", "ünïcödé"},
		{"alice@example.com", "=?utf-8?q?=0D=0ABcc:_v@example.com?=", "X-A", "b"},
		{"alice@example.com", strings.Repeat("long subject ", 40), "X-A", strings.Repeat("v", 2000)},
		{"alice@example.com, v@example.com", "hi", "X-A", "b"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, to, subject, name, value string) {
		var (
			buf  bytes.Buffer
			err  error
			done = make(chan struct{})
		)
		go func() {
			defer close(done)
			msg, berr := smtp.BuildMessage(notifications.Email{
				From: "eventflow <notifications@eventflow.localhost>", To: to, Subject: subject,
				Text: "text", HTML: "<p>html</p>", MessageID: "d1@eventflow.localhost",
				Headers: map[string]string{name: value, "List-Unsubscribe": "<http://127.0.0.1/unsubscribe/t>"},
			})
			if err = berr; err == nil {
				_, err = msg.WriteTo(&buf)
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("building the message did not end: to %q, subject %q, %q: %q", to, subject, name, value)
		}
		if err != nil {
			if !notifications.IsPermanent(err) {
				t.Fatalf("a refusal must be permanent: %v", err)
			}
			return
		}
		m, err := mail.ReadMessage(&buf)
		if err != nil {
			t.Fatalf("the message written does not parse: %v\n%s", err, buf.Bytes())
		}
		allowed := map[string]bool{
			"From": true, "To": true, "Subject": true, "Message-Id": true, "Date": true, "Mime-Version": true,
			"Content-Type": true, "Content-Transfer-Encoding": true, "List-Unsubscribe": true,
			textproto.CanonicalMIMEHeaderKey(name): true,
		}
		for k, vs := range m.Header {
			if !allowed[k] {
				t.Fatalf("header %s: %q appeared; built from to %q, subject %q, %s: %q", k, vs, to, subject, name, value)
			}
		}
		for _, k := range []string{"To", "Subject", "From", "Message-Id"} {
			if n := len(m.Header[k]); n != 1 && !(k == "Subject" && n == 0 && subject == "") {
				t.Fatalf("%d %s headers", n, k)
			}
		}
		got, err := mail.ParseAddressList(m.Header.Get("To"))
		if err != nil || len(got) != 1 {
			t.Fatalf("To %q: %v", m.Header.Get("To"), err)
		}
		if want, err := mail.ParseAddress(to); err == nil && !strings.EqualFold(got[0].Address, want.Address) {
			t.Fatalf("To is %q; asked for %q", got[0].Address, want.Address)
		}
	})
}
