// Package mailpittest gives tests a real SMTP server, Mailpit, and reads
// what it received through its HTTP API: the shared one that
// scripts/services.sh starts, or a private one a test may break at will
// (stop it, make it answer 4xx or 5xx with Mailpit's chaos triggers).
package mailpittest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eventflow/eventflow/internal/testenv"
)

// Mailpit is a running Mailpit.
type Mailpit struct {
	// SMTPURL is what EVENTFLOW_SMTP_URL should be to send to it.
	SMTPURL string
	// APIURL is its HTTP API, e.g. http://127.0.0.1:18025.
	APIURL string

	cmd  *exec.Cmd
	args []string
}

// Shared returns the Mailpit named by EVENTFLOW_TEST_SMTP_URL and
// EVENTFLOW_TEST_MAILPIT_URL; it skips the test without them (fails it in a
// strict run). Tests sharing it tell their mail apart by recipient.
func Shared(t testing.TB) *Mailpit {
	t.Helper()
	smtpURL := testenv.Require(t, "EVENTFLOW_TEST_SMTP_URL", "an SMTP server (Mailpit)")
	apiURL := testenv.Require(t, "EVENTFLOW_TEST_MAILPIT_URL", "Mailpit's API")
	return &Mailpit{SMTPURL: smtpURL, APIURL: apiURL}
}

// Start runs a Mailpit of the test's own, with chaos triggers enabled, on
// free loopback ports, and stops it when the test ends. It skips the test
// when the mailpit binary is not installed (fails it in a strict run).
func Start(t testing.TB) *Mailpit {
	t.Helper()
	bin, err := exec.LookPath("mailpit")
	if err != nil {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, "go", "bin", "mailpit")
		if _, statErr := os.Stat(bin); statErr != nil {
			msg := "mailpit is not installed (scripts/install-deps.sh installs it)"
			if testenv.Strict() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	smtpPort, apiPort := freePort(t), freePort(t)
	m := &Mailpit{
		SMTPURL: "smtp://127.0.0.1:" + strconv.Itoa(smtpPort),
		APIURL:  "http://127.0.0.1:" + strconv.Itoa(apiPort),
		args: []string{bin,
			"--smtp", "127.0.0.1:" + strconv.Itoa(smtpPort),
			"--listen", "127.0.0.1:" + strconv.Itoa(apiPort),
			"--database", filepath.Join(t.TempDir(), "mailpit.db"),
			"--enable-chaos", "--smtp-auth-accept-any", "--smtp-auth-allow-insecure",
			"--smtp-disable-rdns", "--disable-version-check", "--max", "0", "--quiet"},
	}
	m.Restart(t)
	t.Cleanup(m.Stop)
	return m
}

// Stop kills a private Mailpit: the mail server is down until Restart.
func (m *Mailpit) Stop() {
	if m.cmd != nil && m.cmd.ProcessState == nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
	}
}

// Restart starts a stopped private Mailpit again, on the same ports and
// database, and waits until it answers.
func (m *Mailpit) Restart(t testing.TB) {
	t.Helper()
	m.cmd = exec.Command(m.args[0], m.args[1:]...)
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("mailpittest: start mailpit: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(m.APIURL + "/api/v1/info"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("mailpittest: mailpit did not answer within 20s")
}

// SetChaos makes the SMTP server answer code to MAIL FROM with the given
// probability (0 to 100); SetChaos(t, 0, 0) turns it off. The Recipient
// trigger is set alike, with the same code.
func (m *Mailpit) SetChaos(t testing.TB, code, probability int) {
	t.Helper()
	if code == 0 {
		code = 451
	}
	body := fmt.Sprintf(`{"Sender":{"ErrorCode":%d,"Probability":%d},"Recipient":{"ErrorCode":%d,"Probability":0},"Authentication":{"ErrorCode":535,"Probability":0}}`,
		code, probability, code)
	req, _ := http.NewRequest(http.MethodPut, m.APIURL+"/api/v1/chaos", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mailpittest: set chaos: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("mailpittest: set chaos: status %d (is --enable-chaos on?)", res.StatusCode)
	}
}

// Summary is a message as Mailpit lists it.
type Summary struct {
	ID        string `json:"ID"`
	MessageID string `json:"MessageID"`
	Subject   string `json:"Subject"`
}

// To lists the messages sent to address.
func (m *Mailpit) To(t testing.TB, address string) []Summary {
	t.Helper()
	var out struct {
		Messages []Summary `json:"messages"`
	}
	m.get(t, "/api/v1/search?limit=1000&query="+url.QueryEscape("to:"+address), &out)
	return out.Messages
}

// WaitTo waits until at least n messages were sent to address, and returns
// them all.
func (m *Mailpit) WaitTo(t testing.TB, address string, n int, timeout time.Duration) []Summary {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := m.To(t, address)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpittest: %d of %d messages to %s arrived within %v", len(got), n, address, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Message is one message in full.
type Message struct {
	ID        string `json:"ID"`
	MessageID string `json:"MessageID"`
	Subject   string `json:"Subject"`
	Text      string `json:"Text"`
	HTML      string `json:"HTML"`
	From      struct {
		Address string `json:"Address"`
	} `json:"From"`
	Headers map[string][]string `json:"-"`
}

// Message fetches a message with its headers.
func (m *Mailpit) Message(t testing.TB, id string) Message {
	t.Helper()
	var msg Message
	m.get(t, "/api/v1/message/"+url.PathEscape(id), &msg)
	m.get(t, "/api/v1/message/"+url.PathEscape(id)+"/headers", &msg.Headers)
	return msg
}

func (m *Mailpit) get(t testing.TB, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.APIURL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mailpittest: GET %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("mailpittest: GET %s: status %d", path, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("mailpittest: GET %s: %v", path, err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
