package maildir_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/eventflow/eventflow/maildir"
	"github.com/eventflow/eventflow/notifications"
)

func testEmail(id string) notifications.Email {
	return notifications.Email{
		From:      "Eventflow <noreply@eventflow.test>",
		To:        "Ann Buyer <ann@example.test>",
		Subject:   "Ваш заказ №42 создан — ünïcode",
		Text:      "Hello Ann,\nyour order 42 was created: 12.50 €.\n" + strings.Repeat("long line ", 20) + "\n",
		HTML:      `<p>Hello Ann,</p><p>your order <b>42</b> was created: 12.50&nbsp;€.</p>`,
		MessageID: id,
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://eventflow.test/unsubscribe/tok>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"X-Eventflow-Event-Id":  "evt-1",
		},
	}
}

func newMaildir(t *testing.T) (*maildir.Maildir, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mail")
	md, err := maildir.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return md, dir
}

func read(t *testing.T, dir string) []*maildir.Message {
	t.Helper()
	msgs, err := maildir.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func files(t *testing.T, dir, sub string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDeliverAndRead(t *testing.T) {
	md, dir := newMaildir(t)
	e := testEmail("delivery-1@eventflow.test")
	if err := md.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, dir)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	for _, c := range []struct{ name, got, want string }{
		{"MessageID", m.MessageID, e.MessageID},
		{"Message-ID header", m.Header.Get("Message-Id"), "<" + e.MessageID + ">"},
		{"Subject", m.Subject, e.Subject},
		{"From", m.Header.Get("From"), `"Eventflow" <noreply@eventflow.test>`},
		{"To", m.Header.Get("To"), `"Ann Buyer" <ann@example.test>`},
		{"List-Unsubscribe", m.Header.Get("List-Unsubscribe"), e.Headers["List-Unsubscribe"]},
		{"List-Unsubscribe-Post", m.Header.Get("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click"},
		{"X-Eventflow-Event-Id", m.Header.Get("X-Eventflow-Event-Id"), "evt-1"},
		{"Text", m.Text, e.Text},
		{"HTML", m.HTML, e.HTML},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if raw := m.Header.Get("Subject"); !strings.HasPrefix(raw, "=?UTF-8?") {
		t.Errorf("raw Subject %q is not RFC 2047-encoded", raw)
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
		t.Errorf("Content-Type = %q", ct)
	}
	// A Maildir name in new/: time.unique.host, no info part.
	names := files(t, dir, "new")
	valid := regexp.MustCompile(`^\d+\.M\d+P\d+R[A-Z2-7]{16}\.[^/:]+$`)
	if len(names) != 1 || !valid.MatchString(names[0]) {
		t.Errorf("new/ holds %q, want one file named time.MusecPpidRrandom.host", names)
	}
	if filepath.Dir(m.Path) != filepath.Join(dir, "new") {
		t.Errorf("Path = %s, want it in new/", m.Path)
	}
	if left := files(t, dir, "tmp"); len(left) != 0 {
		t.Errorf("tmp/ still holds %q", left)
	}
}

func TestSinglePartMessages(t *testing.T) {
	md, dir := newMaildir(t)
	textOnly := testEmail("text@eventflow.test")
	textOnly.HTML = ""
	htmlOnly := testEmail("html@eventflow.test")
	htmlOnly.Text = ""
	for _, e := range []notifications.Email{textOnly, htmlOnly} {
		if err := md.SendEmail(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	byID := map[string]*maildir.Message{}
	for _, m := range read(t, dir) {
		byID[m.MessageID] = m
	}
	if m := byID["text@eventflow.test"]; m == nil || m.Text != textOnly.Text || m.HTML != "" ||
		!strings.HasPrefix(m.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("text-only message: %+v", m)
	}
	if m := byID["html@eventflow.test"]; m == nil || m.HTML != htmlOnly.HTML || m.Text != "" ||
		!strings.HasPrefix(m.Header.Get("Content-Type"), "text/html") {
		t.Errorf("HTML-only message: %+v", m)
	}
}

func TestRetryDeliversOnce(t *testing.T) {
	md, dir := newMaildir(t)
	e := testEmail("delivery-2@eventflow.test")
	for range 3 {
		if err := md.SendEmail(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(read(t, dir)); n != 1 {
		t.Fatalf("%d messages after three deliveries of one Message-ID, want 1", n)
	}

	// A mail client reads it: new/ to cur/ with flags. A retry still
	// writes nothing.
	name := files(t, dir, "new")[0]
	if err := os.Rename(filepath.Join(dir, "new", name), filepath.Join(dir, "cur", name+":2,S")); err != nil {
		t.Fatal(err)
	}
	if err := md.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if n := len(read(t, dir)); n != 1 {
		t.Fatalf("%d messages after a retry of a read message, want 1", n)
	}

	// The user deletes it: a retry does not bring it back.
	if err := os.Remove(filepath.Join(dir, "cur", name+":2,S")); err != nil {
		t.Fatal(err)
	}
	if err := md.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if n := len(read(t, dir)); n != 0 {
		t.Fatalf("%d messages after a retry of a deleted message, want 0", n)
	}

	// Another Message-ID is another delivery.
	if err := md.SendEmail(t.Context(), testEmail("delivery-3@eventflow.test")); err != nil {
		t.Fatal(err)
	}
	if n := len(read(t, dir)); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	md, dir := newMaildir(t)
	// Two instances on one folder, as two processes would be.
	md2, err := maildir.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 50 {
		wg.Go(func() {
			// Ten distinct Message-IDs, five deliveries of each.
			errs <- []*maildir.Maildir{md, md2}[i%2].SendEmail(t.Context(), testEmail(fmt.Sprintf("d%d@eventflow.test", i%10)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	msgs := read(t, dir)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.MessageID]++
	}
	if len(msgs) != 10 || len(seen) != 10 {
		t.Errorf("%d messages with %d Message-IDs, want 10 and 10: %v", len(msgs), len(seen), seen)
	}
	if left := files(t, dir, "tmp"); len(left) != 0 {
		t.Errorf("tmp/ still holds %q", left)
	}
}

func TestInvalidEmailIsPermanentAndWritesNothing(t *testing.T) {
	md, dir := newMaildir(t)
	for name, mutate := range map[string]func(*notifications.Email){
		"subject with CRLF": func(e *notifications.Email) { e.Subject = "hi\r\nBcc: v@example.test" },
		"header with LF":    func(e *notifications.Email) { e.Headers["X-Eventflow-Event-Id"] = "a\nBcc: v@example.test" },
		"no message id":     func(e *notifications.Email) { e.MessageID = "" },
		"no from":           func(e *notifications.Email) { e.From = "" },
	} {
		e := testEmail("bad@eventflow.test")
		mutate(&e)
		if err := md.SendEmail(t.Context(), e); !notifications.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", name, err)
		}
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if left := files(t, dir, sub); len(left) != 0 {
			t.Errorf("%s/ holds %q", sub, left)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	md, dir := newMaildir(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := md.SendEmail(ctx, testEmail("x@eventflow.test")); err == nil || notifications.IsPermanent(err) {
		t.Errorf("got %v, want a temporary error", err)
	}
	if n := len(read(t, dir)); n != 0 {
		t.Errorf("%d messages written with a cancelled context", n)
	}
}

func TestNewErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", file} {
		if _, err := maildir.New(dir); err == nil {
			t.Errorf("New(%q) succeeded", dir)
		}
	}
}

func TestReadDecodesTransferEncodings(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"new", "cur"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Written by hand, as another mailer might: base64 text, quoted-
	// printable HTML inside a multipart/mixed, LF line ends, in cur/.
	raw := "From: a@example.test\n" +
		"To: b@example.test\n" +
		"Subject: =?utf-8?b?0J/RgNC40LLQtdGC?= =?iso-8859-1?q?_W=F6rld?=\n" +
		"Message-ID: <hand@example.test>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=outer\n" +
		"\n" +
		"--outer\n" +
		"Content-Type: multipart/alternative; boundary=inner\n" +
		"\n" +
		"--inner\n" +
		"Content-Type: text/plain; charset=utf-8\n" +
		"Content-Transfer-Encoding: base64\n" +
		"\n" +
		"0J/RgNC40LLQtdGCLCB3b3JsZCEK\n" +
		"--inner\n" +
		"Content-Type: text/html; charset=utf-8\n" +
		"Content-Transfer-Encoding: quoted-printable\n" +
		"\n" +
		"<p>=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82, a very long line that was wrapped =\n" +
		"softly</p>\n" +
		"--inner--\n" +
		"--outer\n" +
		"Content-Type: application/octet-stream\n" +
		"\n" +
		"ignored\n" +
		"--outer--\n"
	if err := os.WriteFile(filepath.Join(dir, "cur", "1.hand.host:2,S"), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	msgs := read(t, dir)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "Привет Wörld" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if m.MessageID != "hand@example.test" {
		t.Errorf("MessageID = %q", m.MessageID)
	}
	if m.Text != "Привет, world!\n" {
		t.Errorf("Text = %q", m.Text)
	}
	if want := "<p>Привет, a very long line that was wrapped softly</p>"; strings.TrimSpace(m.HTML) != want {
		t.Errorf("HTML = %q, want %q", m.HTML, want)
	}
}
