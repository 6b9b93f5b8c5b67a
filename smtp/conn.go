package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/wneessen/go-mail"
	gomailsmtp "github.com/wneessen/go-mail/smtp"
)

// conn is one open SMTP session. Each has a go-mail Client of its own
// because go-mail's Client keeps per-session state (the AUTH mechanism it
// settled on) that concurrent dials would race on.
type conn struct {
	mc *mail.Client
	sc *gomailsmtp.Client

	// raw is the TCP connection under any TLS, kept so that a cancelled
	// context can close it: go-mail's session methods take no context.
	mu   sync.Mutex
	raw  net.Conn
	dead bool

	// lastUsed is when the session last carried a message (or was
	// opened): only a session idle for longer is checked with NOOP first.
	lastUsed time.Time
}

// noopAfter is how long a pooled session may be idle and still be used
// without a NOOP first. A busy session skips the NOOP's round trip, one of
// five per message; should the server have closed it all the same, MAIL
// FROM fails before anything of the message was sent, and the message goes
// out on a new session (see beforeTransaction).
const noopAfter = time.Second

// errStale says a pooled connection could not even be given a new deadline:
// it is closed, and nothing of a message was sent on it.
var errStale = errors.New("connection is closed")

// dial opens a session: TCP, TLS (implicit or STARTTLS), EHLO and, when the
// URL has user info, AUTH, all within the timeout and ctx.
func (s *Sender) dial(ctx context.Context) (*conn, error) {
	c := &conn{}
	opts := []mail.Option{
		mail.WithPort(s.server.Port),
		mail.WithTimeout(s.timeout),
		mail.WithTLSConfig(s.tls),
		// The reply to the data ends the transaction (RFC 5321 4.1.1.4), so
		// go-mail's RSET after each success is a wasted round trip.
		mail.WithoutRset(),
		// send says NOOP itself, and only on a session idle for a while.
		mail.WithoutNoop(),
		mail.WithDialContextFunc(func(ctx context.Context, network, _ string) (net.Conn, error) {
			return s.connect(ctx, network, c)
		}),
	}
	switch {
	case s.server.ImplicitTLS:
		// connect does the TLS handshake; WithSSL stops go-mail trying
		// STARTTLS inside it.
		opts = append(opts, mail.WithSSL())
	case s.server.StartTLS == StartTLSRequired:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case s.server.StartTLS == StartTLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if s.server.Username != "" {
		// Not SMTPAuthAutoDiscover: with a custom dialer go-mail counts even
		// an smtps:// session as unencrypted, and then discovers neither
		// PLAIN nor LOGIN. PLAIN and LOGIN still refuse to send a password
		// in clear to anything but localhost.
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1,
				mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(s.server.Username),
			mail.WithPassword(s.server.Password))
	}
	mc, err := mail.NewClient(s.server.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	stop := context.AfterFunc(ctx, c.abort)
	sc, err := mc.DialToSMTPClientWithContext(ctx)
	if !stop() {
		err = errors.Join(context.Cause(ctx), err)
	}
	if err != nil {
		c.abort() // go-mail leaves the connection open when EHLO or STARTTLS fails
		return nil, fmt.Errorf("smtp connect %s: %w", s.server.Addr(), err)
	}
	c.mc, c.sc, c.lastUsed = mc, sc, time.Now()
	s.log.Debug("smtp connected", "addr", s.server.Addr())
	return c, nil
}

// connect is go-mail's dialer: TCP to the server (the address go-mail
// passes lacks brackets around IPv6 hosts), and TLS for smtps://.
func (s *Sender) connect(ctx context.Context, network string, c *conn) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, s.server.Addr())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	dead := c.dead
	c.raw = raw
	c.mu.Unlock()
	if dead {
		raw.Close()
		return nil, context.Cause(ctx)
	}
	if !s.server.ImplicitTLS {
		return raw, nil
	}
	tc := tls.Client(raw, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// outgoing is a message ready for the wire: its envelope, as go-mail
// takes it from the message, and the message rendered once, so that
// sending it again on a fresh session sends the same bytes.
type outgoing struct {
	from  string
	rcpts []string
	data  []byte
}

// send sends out on c, within the timeout and ctx. A session idle for
// longer than noopAfter is checked with NOOP first, so a connection the
// server closed while idle fails before the transaction starts (see
// beforeTransaction).
func (s *Sender) send(ctx context.Context, c *conn, out *outgoing) error {
	// Idle since its last use, the connection has an expired deadline,
	// which would fail the NOOP.
	if err := c.sc.UpdateDeadline(s.timeout); err != nil {
		return fmt.Errorf("smtp send: %w: %w", errStale, err)
	}
	stop := context.AfterFunc(ctx, c.abort)
	var err error
	if time.Since(c.lastUsed) > noopAfter {
		if nerr := c.sc.Noop(); nerr != nil {
			err = fmt.Errorf("%w: noop: %w", errStale, nerr)
		}
	}
	if err == nil {
		err = transact(c.sc, out)
		c.lastUsed = time.Now()
	}
	if !stop() && err != nil {
		err = errors.Join(context.Cause(ctx), err)
	}
	if err != nil {
		return fmt.Errorf("smtp send to %s: %w", s.server.Addr(), err)
	}
	return nil
}

// transact runs one mail transaction: MAIL, RCPT, DATA and the message,
// as go-mail's Client.Send does, RSET after a refused MAIL or RCPT
// included, but with the message already rendered. go-mail's Send renders
// the message straight into the DATA writer in many small writes; here it
// goes out in one.
func transact(sc *gomailsmtp.Client, out *outgoing) error {
	if !sc.HasConnection() {
		return fmt.Errorf("%w: no connection", errStale)
	}
	if err := sc.Mail(out.from); err != nil {
		_ = sc.Reset()
		return &sendError{reason: mail.ErrSMTPMailFrom, err: err}
	}
	var rcptErr error
	for _, rcpt := range out.rcpts {
		if err := sc.Rcpt(rcpt); err != nil {
			rcptErr = err // go-mail reports the last refusal
		}
	}
	if rcptErr != nil {
		_ = sc.Reset()
		return &sendError{reason: mail.ErrSMTPRcptTo, err: rcptErr}
	}
	w, err := sc.Data()
	if err != nil {
		return &sendError{reason: mail.ErrSMTPData, err: err}
	}
	if err := writeData(sc.Text.W, w, out.data); err != nil {
		return &sendError{reason: mail.ErrWriteContent, err: err}
	}
	if err := w.Close(); err != nil {
		return &sendError{reason: mail.ErrSMTPDataClose, err: err}
	}
	return nil
}

// writeData writes data to dw, the DATA writer (a textproto DotWriter on
// raw, the session's buffered writer), with the same result as
// dw.Write(data). The DotWriter looks at every byte on its own, through
// two function calls, to escape a dot that starts a line and to turn a
// bare LF into CRLF, which took about a tenth of the CPU in BenchmarkSend's
// profile. A rendered message has CRLF line ends only, and then the
// escaping is all there is to do, a line at a time: everything but the
// final CRLF goes to raw directly, and that CRLF goes through dw, so that
// dw knows it stands at the start of a line and Close ends the data with
// just ".\r\n". Anything else (a bare CR or LF) goes through dw, which
// knows what to do with it.
func writeData(raw *bufio.Writer, dw io.Writer, data []byte) error {
	if !crlfOnly(data) {
		_, err := dw.Write(data)
		return err
	}
	body := data[:len(data)-2]
	for len(body) > 0 {
		if body[0] == '.' {
			raw.WriteByte('.')
		}
		i := bytes.Index(body, crlfDot)
		if i < 0 {
			raw.Write(body)
			break
		}
		raw.Write(body[:i+2])
		body = body[i+2:]
	}
	// The buffered writer keeps its first error and returns it here.
	_, err := dw.Write(data[len(data)-2:])
	return err
}

var crlfDot = []byte("\r\n.")

// crlfOnly reports whether data ends with CRLF and has no CR or LF but in
// CRLF pairs.
func crlfOnly(data []byte) bool {
	if !bytes.HasSuffix(data, crlf) {
		return false
	}
	n := bytes.Count(data, crlf)
	return bytes.Count(data, []byte{'\r'}) == n && bytes.Count(data, []byte{'\n'}) == n
}

var crlf = []byte("\r\n")

// recover reports whether c can carry another message after err: only
// after a 4xx or 5xx reply (the server is in step with us) and a RSET that
// clears whatever the failed transaction left open.
func (s *Sender) recover(c *conn, err error) bool {
	code := replyCode(err)
	if code < 400 || code == 421 || c.isDead() {
		return false
	}
	if c.sc.UpdateDeadline(s.timeout) != nil || c.sc.Reset() != nil {
		return false
	}
	return true
}

func (c *conn) noop(timeout time.Duration) error {
	if err := c.sc.UpdateDeadline(timeout); err != nil {
		return err
	}
	return c.sc.Noop()
}

// quit ends the session politely; its errors do not matter any more.
func (c *conn) quit(timeout time.Duration) {
	if !c.isDead() && c.sc.UpdateDeadline(timeout) == nil {
		_ = c.mc.CloseWithSMTPClient(c.sc)
	}
	c.abort()
}

// abort closes the connection at once, ending any I/O in progress.
func (c *conn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	if c.raw != nil {
		c.raw.Close()
	}
}

func (c *conn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}
