// Package smtp sends eventflow's notification emails to an SMTP server,
// implementing notifications.EmailSender with go-mail. It keeps a few
// connections open and sends one message after another on each, and it tells
// the delivery workers which failures are worth retrying: a 5xx reply to the
// message is notifications.Permanent, everything else is temporary.
//
// BuildMessage, which renders an Email into MIME, is shared with the maildir
// package so that both write the same message.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"sync"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/eventflow/eventflow/notifications"
)

// Defaults for the zero Config fields.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultPoolSize = 4
)

// Config configures a Sender.
type Config struct {
	// URL is the server: smtp://[user:pass@]host[:port][?starttls=…] or
	// smtps://…; see ParseURL.
	URL string
	// From is the sender address used when an Email has none.
	From string
	// Timeout bounds connecting (TCP, TLS, EHLO, AUTH) and, separately,
	// each message sent; DefaultTimeout when zero.
	Timeout time.Duration
	// PoolSize is how many connections may be open at once, and so how many
	// messages go out in parallel; DefaultPoolSize when zero.
	PoolSize int
	// Logger receives debug records about connections; none when nil.
	Logger *slog.Logger
}

// Sender is a notifications.EmailSender over SMTP. It is safe for
// concurrent use; Close it to say QUIT on the idle connections.
type Sender struct {
	server  Server
	from    string
	timeout time.Duration
	tls     *tls.Config
	log     *slog.Logger

	// slots holds one token per connection in use, so at most PoolSize
	// messages are in flight and at most PoolSize connections are open.
	slots chan struct{}

	mu     sync.Mutex
	idle   []*conn // connected, between messages; most recently used last
	closed bool
}

var _ notifications.EmailSender = (*Sender)(nil)

// New checks cfg and returns a Sender. It does not connect: the first
// message, or Ping, does.
func New(cfg Config) (*Sender, error) {
	server, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.From != "" {
		if err := checkValue(cfg.From); err != nil {
			return nil, fmt.Errorf("smtp from address: %w", err)
		}
		if _, err := netmail.ParseAddress(cfg.From); err != nil {
			return nil, fmt.Errorf("smtp from address %q: %w", cfg.From, err)
		}
	}
	if cfg.Timeout < 0 || cfg.PoolSize < 0 {
		return nil, errors.New("smtp: negative timeout or pool size")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{
		server:  server,
		from:    cfg.From,
		timeout: cfg.Timeout,
		tls: &tls.Config{
			ServerName:         server.Host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: server.InsecureSkipVerify, //nolint:gosec // opt-in, for test servers
		},
		log:   cfg.Logger.With("smtp", server.String()),
		slots: make(chan struct{}, cfg.PoolSize),
	}, nil
}

// SendEmail sends m, using Config.From when m.From is empty. On a pooled
// connection that the server has closed meanwhile it reconnects and sends
// again, which is safe because nothing of the message had been sent yet.
//
// The error is notifications.Permanent when the input is invalid or the
// server rejected the message with a 5xx reply (550 no such mailbox, 554
// transaction failed…). Everything else is temporary and worth a retry with
// the same Message-ID: 4xx replies, authentication replies (535 and kin,
// which mean the server or eventflow is misconfigured, not the message),
// network errors, timeouts, and a connection lost after the data was sent,
// when the server may or may not have accepted it.
func (s *Sender) SendEmail(ctx context.Context, m notifications.Email) error {
	if m.From == "" {
		m.From = s.from
	}
	msg, err := BuildMessage(m)
	if err != nil {
		return err
	}
	out := outgoing{}
	if out.from, err = msg.GetSender(false); err != nil {
		return classify(&sendError{reason: mail.ErrGetSender, err: err})
	}
	if out.rcpts, err = msg.GetRecipients(); err != nil {
		return classify(&sendError{reason: mail.ErrGetRcpts, err: err})
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if _, err := msg.WriteTo(buf); err != nil {
		return fmt.Errorf("smtp: render message: %w", err)
	}
	out.data = buf.Bytes()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("smtp: wait for a connection: %w", context.Cause(ctx))
	}
	c, err := s.take()
	if err != nil {
		<-s.slots
		return err
	}
	for {
		reused := c != nil
		if !reused {
			if c, err = s.dial(ctx); err != nil {
				<-s.slots
				return err
			}
		}
		err = s.send(ctx, c, &out)
		if err == nil {
			s.put(c, !c.isDead())
			return nil
		}
		if reused && beforeTransaction(err) && ctx.Err() == nil {
			s.log.Debug("smtp connection found closed; reconnecting", "error", err)
			c.abort()
			c = nil
			continue
		}
		s.put(c, s.recover(c, err))
		return classify(err)
	}
}

// Ping connects to the server, saying EHLO and, with user info, AUTH, then
// NOOP and QUIT: a readiness check of everything SendEmail needs. It uses a
// connection of its own, outside the pool.
func (s *Sender) Ping(ctx context.Context) error {
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	if err := c.noop(s.timeout); err != nil {
		c.abort()
		return fmt.Errorf("smtp ping %s: %w", s.server.Addr(), err)
	}
	c.quit(s.timeout)
	return nil
}

// Close says QUIT on the idle connections and makes later sends fail.
// Connections in use are closed when their message is done.
func (s *Sender) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range idle {
		c.quit(s.timeout)
	}
	return nil
}

// take returns an idle connection, or nil when a new one must be dialled.
// The caller holds a slot.
func (s *Sender) take() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("smtp: sender is closed")
	}
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		return c, nil
	}
	return nil, nil
}

// put returns c to the pool when keep is true and the Sender is open, closes
// it otherwise, and releases the caller's slot.
func (s *Sender) put(c *conn, keep bool) {
	defer func() { <-s.slots }()
	if keep {
		s.mu.Lock()
		if !s.closed {
			s.idle = append(s.idle, c)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		c.quit(s.timeout)
		return
	}
	c.abort()
}
