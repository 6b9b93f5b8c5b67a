package smtp_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a small SMTP server on 127.0.0.1 that speaks just enough of
// RFC 5321 for go-mail (greeting, EHLO, AUTH PLAIN, MAIL, RCPT, DATA, NOOP,
// RSET, QUIT) and answers what a test scripts, so that the sender's error
// classification and connection reuse meet a real protocol exchange.
type fakeServer struct {
	t  *testing.T
	ln net.Listener

	// script, when set, picks the reply to the nth (from 1) command of a
	// verb, counted over all connections; "" means the normal reply. The
	// verbs are the commands' plus GREETING and END (the end of the data).
	// Besides a reply line it may return:
	//   "DROP"          close the connection without a reply
	//   "HANG"          send nothing and wait for the client to go away
	//   "CLOSE <reply>" send the reply, then close the connection
	script func(verb string, n int) string
	// user and pass, when set, make the server offer AUTH PLAIN and
	// require those credentials.
	user, pass string
	// tls, when set, is offered with STARTTLS, or from the first byte when
	// implicit is set too.
	tls      *tls.Config
	implicit bool

	mu       sync.Mutex
	conns    int
	counts   map[string]int
	commands []string
	messages []string
	overTLS  int // messages received over TLS
	wg       sync.WaitGroup
}

// newFakeServer starts a server; configure, when given, sets its fields
// before it accepts anything.
func newFakeServer(t *testing.T, script func(verb string, n int) string, configure ...func(*fakeServer)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, script: script, counts: map[string]int{}}
	for _, f := range configure {
		f(s)
	}
	s.wg.Go(s.accept)
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// url is the server's smtp:// URL with the given user info ("" for none)
// and query.
func (s *fakeServer) url(userinfo, query string) string {
	u := "smtp://"
	if userinfo != "" {
		u += userinfo + "@"
	}
	u += s.ln.Addr().String()
	if query != "" {
		u += "?" + query
	}
	return u
}

func (s *fakeServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(c) })
	}
}

// reply decides the answer to a verb, counting it.
func (s *fakeServer) reply(verb, normal string) string {
	s.mu.Lock()
	s.counts[verb]++
	n := s.counts[verb]
	s.mu.Unlock()
	if s.script != nil {
		if r := s.script(verb, n); r != "" {
			return r
		}
	}
	return normal
}

func (s *fakeServer) serve(c net.Conn) {
	defer func() { c.Close() }()
	if s.implicit {
		c = tls.Server(c, s.tls)
	}
	r := textproto.NewReader(bufio.NewReader(c))
	// answer writes the reply; false means the connection is done.
	answer := func(reply string) bool {
		switch {
		case reply == "DROP":
			return false
		case reply == "HANG":
			_, _ = io.Copy(io.Discard, c)
			return false
		case strings.HasPrefix(reply, "CLOSE "):
			fmt.Fprintf(c, "%s\r\n", strings.TrimPrefix(reply, "CLOSE "))
			return false
		}
		_, err := fmt.Fprintf(c, "%s\r\n", reply)
		return err == nil
	}
	if !answer(s.reply("GREETING", "220 fake.test ESMTP ready")) {
		return
	}
	for {
		line, err := r.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		s.commands = append(s.commands, line)
		s.mu.Unlock()
		var reply string
		switch verb {
		case "EHLO":
			ext := "250-fake.test\r\n250-8BITMIME\r\n"
			if s.user != "" {
				ext += "250-AUTH PLAIN\r\n"
			}
			if _, isTLS := c.(*tls.Conn); s.tls != nil && !isTLS {
				ext += "250-STARTTLS\r\n"
			}
			reply = s.reply(verb, ext+"250 SIZE 10485760")
		case "HELO", "NOOP", "RSET":
			reply = s.reply(verb, "250 2.0.0 ok")
		case "MAIL", "RCPT":
			reply = s.reply(verb, "250 2.1.0 ok")
		case "AUTH":
			reply = s.reply(verb, s.auth(arg))
		case "STARTTLS":
			if !answer(s.reply(verb, "220 2.0.0 ready to start TLS")) {
				return
			}
			c = tls.Server(c, s.tls)
			r = textproto.NewReader(bufio.NewReader(c))
			continue
		case "QUIT":
			answer(s.reply(verb, "221 2.0.0 bye"))
			return
		case "DATA":
			if reply = s.reply(verb, "354 go ahead"); !strings.HasPrefix(reply, "354") {
				break
			}
			if !answer(reply) {
				return
			}
			data, err := r.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.messages = append(s.messages, string(data))
			if _, isTLS := c.(*tls.Conn); isTLS {
				s.overTLS++
			}
			s.mu.Unlock()
			reply = s.reply("END", "250 2.0.0 queued")
		default:
			reply = s.reply(verb, "502 5.5.2 command not implemented")
		}
		if !answer(reply) {
			return
		}
	}
}

func (s *fakeServer) auth(arg string) string {
	mech, resp, _ := strings.Cut(arg, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return "504 5.5.4 mechanism not supported"
	}
	raw, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return "501 5.5.2 bad base64"
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass {
		return "535 5.7.8 authentication credentials invalid"
	}
	return "235 2.7.0 authentication succeeded"
}

// tlsCount returns how many messages arrived over TLS.
func (s *fakeServer) tlsCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overTLS
}

// stats returns how many connections were accepted and the messages
// received so far.
func (s *fakeServer) stats() (conns int, messages []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, append([]string(nil), s.messages...)
}

// count returns how many commands of verb were received.
func (s *fakeServer) count(verb string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.commands {
		v, _, _ := strings.Cut(c, " ")
		if strings.EqualFold(v, verb) {
			n++
		}
	}
	return n
}

// selfSignedTLS is a server TLS configuration with a fresh certificate for
// 127.0.0.1 that no one trusts, so clients need insecure_skip_verify=1.
func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fake.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
