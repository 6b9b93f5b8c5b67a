package chaos

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// SinkMode is how the SMTP sink behaves towards its clients.
type SinkMode string

const (
	// SinkUp accepts every message.
	SinkUp SinkMode = "up"
	// SinkDown is not listening: connections are refused, and the ones open
	// when it went down are cut.
	SinkDown SinkMode = "down"
	// SinkTempFail answers 451, alternately to RCPT and at the end of DATA
	// (after the whole message came in). Nothing is accepted.
	SinkTempFail SinkMode = "4xx"
	// SinkSlow delays every reply by the slow delay.
	SinkSlow SinkMode = "slow"
	// SinkDropAfterData accepts the message at the end of DATA and closes
	// the connection without answering: the client cannot know that the
	// message went through, and sends it again.
	SinkDropAfterData SinkMode = "drop-after-data"
)

// Reply outcomes of an accepted message.
const (
	ReplySent        = "250"          // the 250 was written
	ReplyDropped     = "dropped"      // the sink closed the connection instead (SinkDropAfterData)
	ReplyWriteFailed = "write-failed" // the 250 could not be written: the client was gone
)

// Accepted is a message the sink accepted: it had the whole message, as a
// real server has when it has queued it, whether or not the client then
// heard the 250.
type Accepted struct {
	// N numbers accepted messages from 1 in the order they were accepted.
	N         int
	MessageID string // without angle brackets
	From      string
	To        []string
	// Instance is the user name the client authenticated with: the chaos
	// driver gives each notifier process its own, so it names the process.
	Instance   string
	EventID    string // X-Eventflow-Event-Id
	EventType  string // X-Eventflow-Event-Type
	DeliveryID string // X-Eventflow-Delivery-Id
	At         time.Time
	// Reply is ReplySent, ReplyDropped or ReplyWriteFailed ("" while the
	// reply is being held in SinkSlow).
	Reply string
	// Confirmed is set when the client sent another command on the same
	// connection after the 250: it surely read it.
	Confirmed bool
}

// Sink is a small SMTP server on 127.0.0.1 for the fault-injection suite.
// It records every message it accepts (by Message-ID, with the sending
// notifier process), and can be switched to behave like a broken server:
// down, answering 4xx, slow, or dropping the connection after DATA.
type Sink struct {
	addr string

	mu        sync.Mutex
	ln        net.Listener
	mode      SinkMode
	slow      time.Duration
	hold      time.Duration
	tempfails int
	accepted  []*Accepted
	conns     map[net.Conn]struct{}
	watchers  []chan Accepted
	closed    bool
	wg        sync.WaitGroup
}

// StartSink starts a sink on a free port of 127.0.0.1.
func StartSink() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtp sink: %w", err)
	}
	s := &Sink{addr: ln.Addr().String(), ln: ln, mode: SinkUp, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept(ln)
	return s, nil
}

// Addr is the sink's host:port.
func (s *Sink) Addr() string { return s.addr }

// URL is the smtp:// URL a notifier process named instance sends with.
func (s *Sink) URL(instance string) string {
	return "smtp://" + instance + ":chaos@" + s.addr + "?starttls=none"
}

// SetMode switches the sink; slow is the delay of every reply in SinkSlow.
func (s *Sink) SetMode(mode SinkMode, slow time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("smtp sink: closed")
	}
	prev := s.mode
	s.mode, s.slow = mode, slow
	switch {
	case mode == SinkDown && prev != SinkDown:
		s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
	case mode != SinkDown && prev == SinkDown:
		var ln net.Listener
		var err error
		// The port was ours a moment ago; give the kernel a few tries.
		for range 50 {
			if ln, err = net.Listen("tcp", s.addr); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("smtp sink: listen again on %s: %w", s.addr, err)
		}
		s.ln = ln
		s.wg.Add(1)
		go s.accept(ln)
	}
	return nil
}

// SetHold delays the reply to the end of DATA by hold, in every mode that
// answers it: the message is accepted, and the client does not know yet.
// It widens the window between a server accepting a message and the client
// recording it as sent.
func (s *Sink) SetHold(hold time.Duration) {
	s.mu.Lock()
	s.hold = hold
	s.mu.Unlock()
}

// Mode returns the current mode.
func (s *Sink) Mode() SinkMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Watch returns a channel that receives each message accepted from now on,
// before its reply is written. Sends never block: a full channel misses
// messages. Unwatch stops them.
func (s *Sink) Watch() chan Accepted {
	ch := make(chan Accepted, 64)
	s.mu.Lock()
	s.watchers = append(s.watchers, ch)
	s.mu.Unlock()
	return ch
}

// Unwatch stops sending to ch.
func (s *Sink) Unwatch(ch chan Accepted) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.watchers {
		if w == ch {
			s.watchers = append(s.watchers[:i], s.watchers[i+1:]...)
			return
		}
	}
}

// Messages returns a copy of every accepted message, in order.
func (s *Sink) Messages() []Accepted {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Accepted, len(s.accepted))
	for i, a := range s.accepted {
		out[i] = *a
	}
	return out
}

// Count is how many messages were accepted.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// Close stops the sink and waits for its connections to end.
func (s *Sink) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Sink) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed || s.ln != ln {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// idleTimeout ends a session that sends nothing for this long.
const idleTimeout = 2 * time.Minute

// session is one SMTP connection.
type session struct {
	s        *Sink
	c        net.Conn
	r        *textproto.Reader
	instance string
	from     string
	to       []string
	// last is the message accepted on this connection whose 250 is not yet
	// known to have been read.
	last *Accepted
}

func (s *Sink) serve(c net.Conn) {
	ss := &session{s: s, c: c, r: textproto.NewReader(bufio.NewReader(c))}
	if !ss.reply("220 chaos-sink ESMTP ready") {
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		line, err := ss.r.ReadLine()
		if err != nil {
			return
		}
		ss.confirm()
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if !ss.reply("250-chaos-sink\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n250 AUTH PLAIN") {
				return
			}
		case "HELO":
			if !ss.reply("250 chaos-sink") {
				return
			}
		case "AUTH":
			if !ss.auth(arg) {
				return
			}
		case "MAIL":
			ss.from, ss.to = addrArg(arg), nil
			if !ss.reply("250 2.1.0 ok") {
				return
			}
		case "RCPT":
			if ss.s.tempFail(0) {
				if !ss.reply("451 4.7.1 chaos: try again later") {
					return
				}
				continue
			}
			ss.to = append(ss.to, addrArg(arg))
			if !ss.reply("250 2.1.5 ok") {
				return
			}
		case "DATA":
			if len(ss.to) == 0 {
				if !ss.reply("503 5.5.1 no recipients") {
					return
				}
				continue
			}
			if !ss.data() {
				return
			}
		case "RSET":
			ss.from, ss.to = "", nil
			if !ss.reply("250 2.0.0 ok") {
				return
			}
		case "NOOP":
			if !ss.reply("250 2.0.0 ok") {
				return
			}
		case "QUIT":
			ss.reply("221 2.0.0 bye")
			return
		default:
			if !ss.reply("502 5.5.2 command not recognized") {
				return
			}
		}
	}
}

// reply writes a reply, after the slow delay in SinkSlow. It reports false
// when the connection is gone.
func (ss *session) reply(text string) bool {
	ss.s.mu.Lock()
	mode, slow := ss.s.mode, ss.s.slow
	ss.s.mu.Unlock()
	if mode == SinkDown {
		return false
	}
	if mode == SinkSlow && slow > 0 {
		time.Sleep(slow)
	}
	ss.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := io.WriteString(ss.c, text+"\r\n")
	return err == nil
}

// confirm marks the last message of the session as read by the client: it
// sent another command after its 250.
func (ss *session) confirm() {
	if ss.last == nil {
		return
	}
	ss.s.mu.Lock()
	if ss.last.Reply == ReplySent {
		ss.last.Confirmed = true
	}
	ss.s.mu.Unlock()
	ss.last = nil
}

// auth takes any AUTH PLAIN credentials and keeps the user name.
func (ss *session) auth(arg string) bool {
	mech, initial, _ := strings.Cut(strings.TrimSpace(arg), " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return ss.reply("504 5.5.4 only PLAIN")
	}
	if initial == "" {
		if !ss.reply("334 ") {
			return false
		}
		line, err := ss.r.ReadLine()
		if err != nil {
			return false
		}
		initial = line
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(initial))
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		return ss.reply("501 5.5.2 bad PLAIN response")
	}
	ss.instance = parts[1]
	return ss.reply("235 2.7.0 authenticated")
}

// data reads the message and accepts it, or not, as the mode says.
func (ss *session) data() bool {
	if !ss.reply("354 end with <CRLF>.<CRLF>") {
		return false
	}
	var buf bytes.Buffer
	for {
		ss.c.SetReadDeadline(time.Now().Add(idleTimeout))
		line, err := ss.r.ReadLine()
		if err != nil {
			return false
		}
		if line == "." {
			break
		}
		buf.WriteString(strings.TrimPrefix(line, "."))
		buf.WriteString("\r\n")
	}
	from, to := ss.from, ss.to
	ss.from, ss.to = "", nil
	if ss.s.tempFail(1) {
		return ss.reply("451 4.3.0 chaos: message not queued, try again")
	}
	a := &Accepted{From: from, To: to, Instance: ss.instance, At: time.Now()}
	if m, err := mail.ReadMessage(bytes.NewReader(buf.Bytes())); err == nil {
		a.MessageID = strings.Trim(strings.TrimSpace(m.Header.Get("Message-Id")), "<>")
		a.EventID = m.Header.Get("X-Eventflow-Event-Id")
		a.EventType = m.Header.Get("X-Eventflow-Event-Type")
		a.DeliveryID = m.Header.Get("X-Eventflow-Delivery-Id")
	}
	s := ss.s
	s.mu.Lock()
	s.accepted = append(s.accepted, a)
	a.N = len(s.accepted)
	mode, hold := s.mode, s.hold
	for _, w := range s.watchers {
		select {
		case w <- *a:
		default:
		}
	}
	s.mu.Unlock()

	if mode == SinkDropAfterData {
		s.setReply(a, ReplyDropped)
		return false
	}
	if hold > 0 {
		time.Sleep(hold)
	}
	if !ss.reply("250 2.0.0 queued as " + fmt.Sprint(a.N)) {
		s.setReply(a, ReplyWriteFailed)
		return false
	}
	s.setReply(a, ReplySent)
	ss.last = a
	return true
}

func (s *Sink) setReply(a *Accepted, reply string) {
	s.mu.Lock()
	a.Reply = reply
	s.mu.Unlock()
}

// tempFail reports whether this command gets a 451: in SinkTempFail, the
// RCPT (stage 0) and the end of DATA (stage 1) of alternate transactions.
func (s *Sink) tempFail(stage int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode != SinkTempFail {
		return false
	}
	if stage == 0 {
		s.tempfails++
		return s.tempfails%2 == 0
	}
	return true // RCPT let it through: fail it at the end of the data
}

// addrArg takes the address out of "FROM:<a@b> SIZE=…" or "TO:<a@b>".
func addrArg(arg string) string {
	_, rest, _ := strings.Cut(arg, ":")
	rest = strings.TrimSpace(rest)
	if i := strings.Index(rest, ">"); strings.HasPrefix(rest, "<") && i > 0 {
		return strings.ToLower(rest[1:i])
	}
	addr, _, _ := strings.Cut(rest, " ")
	return strings.ToLower(addr)
}
