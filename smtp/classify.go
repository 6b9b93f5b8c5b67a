package smtp

import (
	"errors"

	"github.com/wneessen/go-mail"

	"github.com/eventflow/eventflow/notifications"
)

// classify marks err permanent when retrying the message cannot help: the
// server answered it with a 5xx reply, or go-mail found no usable sender or
// recipient in it. The reply code decides, not the text, because go-mail's
// own IsTemp is false for network errors, which are the most temporary of
// all.
func classify(err error) error {
	var se *mail.SendError
	if !errors.As(err, &se) {
		return err // connecting failed: network, TLS, greeting, EHLO, AUTH
	}
	switch se.Reason {
	case mail.ErrGetSender, mail.ErrGetRcpts, mail.ErrNoUnencoded:
		return notifications.Permanent(err)
	}
	if code := se.ErrorCode(); code >= 500 && code < 600 && !authReply(code) {
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
	var se *mail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode()
	}
	return 0
}

// beforeTransaction reports whether err happened before the transaction
// got under way, so that nothing of the message reached the server and
// another connection may be tried at once: the session was found closed
// before MAIL FROM, or MAIL FROM itself failed on the connection (no reply
// at all) or met 421, the server closing the session.
func beforeTransaction(err error) bool {
	var se *mail.SendError
	if errors.Is(err, errStale) {
		return true
	}
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case mail.ErrConnCheck:
		return true
	case mail.ErrSMTPMailFrom:
		code := se.ErrorCode()
		return code == 0 || code == 421
	}
	return false
}
