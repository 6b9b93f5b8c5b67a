package smtp_test

import (
	"strings"
	"testing"

	"github.com/eventflow/eventflow/smtp"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want smtp.Server
	}{
		{"smtp://mail.example.test", smtp.Server{Host: "mail.example.test", Port: 587, StartTLS: smtp.StartTLSOpportunistic}},
		{"smtp://127.0.0.1:11025/", smtp.Server{Host: "127.0.0.1", Port: 11025, StartTLS: smtp.StartTLSOpportunistic}},
		{"SMTP://u:p%40ss@mail.example.test:25?starttls=required", smtp.Server{
			Host: "mail.example.test", Port: 25, StartTLS: smtp.StartTLSRequired, Username: "u", Password: "p@ss"}},
		{"smtp://[::1]:2525?starttls=none", smtp.Server{Host: "::1", Port: 2525, StartTLS: smtp.StartTLSNone}},
		{"smtps://user@mail.example.test?insecure_skip_verify=1", smtp.Server{
			Host: "mail.example.test", Port: 465, ImplicitTLS: true, InsecureSkipVerify: true, Username: "user"}},
	} {
		got, err := smtp.ParseURL(tc.raw)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.raw, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for raw, want := range map[string]string{
		"":                                  "no scheme",
		"mail.example.test:25":              "scheme",
		"http://mail.example.test":          `scheme "http"`,
		"smtp://":                           "no host",
		"smtp://mail.example.test:0":        "port",
		"smtp://mail.example.test:99999":    "port",
		"smtp://mail.example.test/path":     "want only",
		"smtp://:secret@mail.example.test":  "user name",
		"smtp://h?starttls=maybe":           "starttls",
		"smtps://h?starttls=required":       "does not apply",
		"smtp://h?insecure_skip_verify=yes": "insecure_skip_verify",
		"smtp://h?tls=1":                    `unknown parameter "tls"`,
		"smtp://u:topsecret@h:port":         "port",
	} {
		_, err := smtp.ParseURL(raw)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", raw)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURL(%q) = %q, want it to mention %q", raw, err, want)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("ParseURL(%q) error shows the password: %q", raw, err)
		}
	}
}

func TestServerStringHidesPassword(t *testing.T) {
	s, err := smtp.ParseURL("smtp://user:topsecret@mail.example.test?starttls=required")
	if err != nil {
		t.Fatal(err)
	}
	got := s.String()
	if strings.Contains(got, "topsecret") || !strings.Contains(got, "user:xxxxx@mail.example.test:587") ||
		!strings.Contains(got, "starttls=required") {
		t.Errorf("String() = %q", got)
	}
}
