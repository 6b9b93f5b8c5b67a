package smtp

import (
	"errors"
	"net/textproto"

	"github.com/wneessen/go-mail"

	"github.com/eventflow/eventflow/notifications"
)

// sendError is a failed step of the SMTP transaction. The steps are named
// by go-mail's SendErrReason, as go-mail's own Send names them; err is what
// the step met, a *textproto.Error when the server replied.
type sendError struct {
	reason mail.SendErrReason
	err    error
}

func (e *sendError) Error() string { return e.reason.String() + ": " + e.err.Error() }

func (e *sendError) Unwrap() error { return e.err }

// code is the server's 4xx or 5xx reply code, 0 when the step failed
// without one (network error, timeout, connection closed, or a reply that
// was not an error but not the one expected either).
func (e *sendError) code() int {
	var te *textproto.Error
	if errors.As(e.err, &te) && te.Code >= 400 && te.Code < 600 {
		return te.Code
	}
	return 0
}

// classify marks err permanent when retrying the message cannot help: the
// server answered it with a 5xx reply, or the message has no usable sender
// or recipient. The reply code decides, not the text, because network
// errors are the most temporary of all.
func classify(err error) error {
	var se *sendError
	if !errors.As(err, &se) {
		return err // connecting failed: network, TLS, greeting, EHLO, AUTH
	}
	switch se.reason {
	case mail.ErrGetSender, mail.ErrGetRcpts:
		return notifications.Permanent(err)
	}
	if code := se.code(); code >= 500 && code < 600 && !authReply(code) {
		return notifications.Permanent(err)
	}
	return err
}

// authReply reports whether code is one of the RFC 4954 replies about
// authentication (530 required, 534 mechanism too weak, 535 invalid
// credentials, 538 encryption required): they say the connection is
// misconfigured, which an operator can fix, not that the message is bad.
func authReply(code int) bool {
	switch code {
	case 530, 534, 535, 538:
		return true
	}
	return false
}

// replyCode is the SMTP reply code in err, 0 when the failure was not a
// reply (network error, timeout, connection closed).
func replyCode(err error) int {
	var se *sendError
	if errors.As(err, &se) {
		return se.code()
	}
	return 0
}

// beforeTransaction reports whether err happened before the transaction
// got under way, so that nothing of the message reached the server and
// another connection may be tried at once: the session was found closed
// before MAIL FROM, or MAIL FROM itself failed on the connection (no reply
// at all) or met 421, the server closing the session.
func beforeTransaction(err error) bool {
	if errors.Is(err, errStale) {
		return true
	}
	var se *sendError
	if !errors.As(err, &se) || se.reason != mail.ErrSMTPMailFrom {
		return false
	}
	code := se.code()
	return code == 0 || code == 421
}
