package main

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/internal/mailpittest"
	"github.com/eventflow/eventflow/maildir"
)

// mail is a received email, however it was received.
type mail struct {
	Subject string
	Text    string
	HTML    string
	// Header holds the headers, keys in canonical form.
	Header map[string][]string
}

func (m mail) header(name string) string {
	if v := m.Header[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// mailbox is where a tier's emails arrive: the Maildir in the data folder
// on embedded defaults, Mailpit on the real stack.
type mailbox interface {
	// to returns the messages sent to address so far.
	to(t *testing.T, address string) []mail
}

type maildirBox struct{ dir string }

func (b maildirBox) to(t *testing.T, address string) []mail {
	t.Helper()
	msgs, err := maildir.Read(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []mail
	for _, m := range msgs {
		if strings.Contains(m.Header.Get("To"), address) {
			out = append(out, mail{Subject: m.Subject, Text: m.Text, HTML: m.HTML, Header: m.Header})
		}
	}
	return out
}

type mailpitBox struct{ mp *mailpittest.Mailpit }

func (b mailpitBox) to(t *testing.T, address string) []mail {
	t.Helper()
	var out []mail
	for _, s := range b.mp.To(t, address) {
		m := b.mp.Message(t, s.ID)
		out = append(out, mail{Subject: m.Subject, Text: m.Text, HTML: m.HTML, Header: m.Headers})
	}
	return out
}

// mailboxFor returns the tier's mailbox and the settings that send mail to
// it.
func mailboxFor(t *testing.T, tr tier) (mailbox, map[string]string) {
	t.Helper()
	if tr.name == "embedded" {
		return maildirBox{dir: filepath.Join(tr.env["EVENTFLOW_DATA_DIR"], "maildir")}, nil
	}
	mp := mailpittest.Shared(t)
	return mailpitBox{mp}, map[string]string{"EVENTFLOW_SMTP_URL": mp.SMTPURL}
}

// waitForMail waits until n messages to address arrived, then a moment
// more, and returns all that arrived: a test asserting "exactly n" sees an
// extra one that comes late.
func waitForMail(t *testing.T, box mailbox, address string, n int) []mail {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(box.to(t, address)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d emails to %s arrived within 30s", len(box.to(t, address)), n, address)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond)
	return box.to(t, address)
}

// uniqueAddress is an address no other test sends to.
func uniqueAddress(name string) string {
	var b [4]byte
	rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:]) + "@example.com"
}
