package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/eventflow/eventflow/notifications"
)

// BuildMessage turns m into the MIME message that both the SMTP sender and
// the maildir package write, so the two deliver the same headers and
// structure: text and HTML as multipart/alternative (or the one part given),
// UTF-8, quoted-printable, the Subject RFC 2047-encoded when not ASCII,
// Message-ID exactly <m.MessageID>, Date now, and every header in m.Headers.
//
// Any invalid input is a notifications.Permanent error, since a retry would
// build the same message: a missing or unparsable address, a Message-ID
// that is not local@domain, a control character (CR and LF above all, which
// would let a value inject headers) in an address, the subject or a header,
// or an extra header that would override one set here.
func BuildMessage(m notifications.Email) (*mail.Msg, error) {
	if err := checkEmail(m); err != nil {
		return nil, notifications.Permanent(err)
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if from := lastFrom.Load(); from != nil && from.raw == m.From {
		msg.FromMailAddress(from.addr)
	} else {
		if err := msg.From(m.From); err != nil {
			return nil, notifications.Permanent(fmt.Errorf("from address: %w", err))
		}
		lastFrom.Store(&parsedAddress{raw: m.From, addr: msg.GetFrom()[0]})
	}
	if err := msg.To(m.To); err != nil {
		return nil, notifications.Permanent(fmt.Errorf("to address: %w", err))
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDateWithValue(time.Now())
	// No need to sort: go-mail writes these headers in name order.
	for name, value := range m.Headers {
		msg.SetGenHeader(mail.Header(name), value)
	}
	switch {
	case m.Text != "" && m.HTML != "":
		// Plain text first: RFC 2046 orders alternatives from least to most
		// faithful, and clients show the last one they can render.
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(mail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
	}
	return msg, nil
}

// parsedAddress is a From address as go-mail parsed it.
type parsedAddress struct {
	raw  string
	addr *netmail.Address
}

// lastFrom is the From address BuildMessage parsed last. Notifications all
// come from the same sender (the renderer's, or Config.From), so keeping
// one saves parsing it for every message. go-mail only reads the address it
// is given, so messages may share it.
var lastFrom atomic.Pointer[parsedAddress]

// WriteMessage writes msg to w in a single Write. go-mail's writer issues a
// small write for every header line, boundary and part, which costs a
// system call each on a file and a pass through the dot-encoder each on an
// SMTP DATA writer; rendering into memory first costs one copy.
func WriteMessage(w io.Writer, msg *mail.Msg) error {
	buf := getBuffer()
	defer putBuffer(buf)
	if _, err := msg.WriteTo(buf); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// buffers holds the buffers messages are rendered into, so that sending
// one does not grow a fresh buffer to the message's size.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer bounds the buffers kept: an unusually large message
// should not pin its memory for good.
const maxPooledBuffer = 1 << 20

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() > maxPooledBuffer {
		return
	}
	buf.Reset()
	buffers.Put(buf)
}

// reserved reports whether BuildMessage or the MIME writer sets the header
// named: an extra one would be a second, contradicting copy.
func reserved(name string) bool {
	switch strings.ToLower(name) {
	case "bcc", "cc", "content-transfer-encoding", "content-type", "date", "from",
		"message-id", "mime-version", "return-path", "sender", "subject", "to":
		return true
	}
	return false
}

func checkEmail(m notifications.Email) error {
	if m.From == "" {
		return errors.New("no from address")
	}
	if m.To == "" {
		return errors.New("no to address")
	}
	for _, f := range []struct{ name, value string }{
		{"from address", m.From}, {"to address", m.To}, {"subject", m.Subject},
	} {
		if err := checkValue(f.value); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if err := checkMessageID(m.MessageID); err != nil {
		return err
	}
	for name, value := range m.Headers {
		if err := checkHeaderName(name); err != nil {
			return err
		}
		if reserved(name) {
			return fmt.Errorf("header %q: set by the sender, not allowed as an extra header", name)
		}
		if err := checkValue(value); err != nil {
			return fmt.Errorf("header %q: %w", name, err)
		}
	}
	return nil
}

// checkValue refuses control characters other than tab: CR and LF would end
// the header and start another, and the rest have no business in one.
func checkValue(v string) error {
	for _, r := range v {
		if (r < ' ' && r != '\t') || r == 0x7f {
			if r == '\r' || r == '\n' {
				return errors.New("contains CR or LF")
			}
			return fmt.Errorf("contains control character %U", r)
		}
	}
	return nil
}

// checkHeaderName accepts RFC 5322 field names: printable ASCII but colon.
func checkHeaderName(name string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == ':' {
			return fmt.Errorf("header name %q: invalid character %q", name, c)
		}
	}
	return nil
}

// checkMessageID wants the id-left@id-right of RFC 5322 without the angle
// brackets: printable ASCII with no space, brackets or quote, because the
// header is written verbatim and a retry must carry it unchanged.
func checkMessageID(id string) error {
	if id == "" {
		return errors.New("no message id")
	}
	left, right, ok := strings.Cut(id, "@")
	if !ok || left == "" || right == "" || strings.Contains(right, "@") {
		return fmt.Errorf("message id %q: want local@domain without angle brackets", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '<' || c == '>' || c == '"' {
			return fmt.Errorf("message id %q: invalid character %q", id, c)
		}
	}
	return nil
}
