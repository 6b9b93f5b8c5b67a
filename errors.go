// Package eventflow holds what every part of eventflow shares: the error kinds
// that cross layers. The domain lives in orders (and later notifications);
// each dependency has a package of its own (sqlite, postgres, kafka, httpapi)
// and cmd/eventflow wires them together.
package eventflow

import (
	"errors"
	"fmt"
)

// Error codes say what kind of failure an Error is, so that outer layers (the
// HTTP API) can map it without knowing where it came from.
const (
	EINVALID   = "invalid"   // the request is malformed or fails validation
	ENOTFOUND  = "not_found" // the object does not exist
	ECONFLICT  = "conflict"  // the request conflicts with the object's current state
	EFORBIDDEN = "forbidden" // the caller may not do this
	EINTERNAL  = "internal"  // anything else; details are logged, not shown
)

// Error is an error meant to be shown to the caller: Message is safe to show,
// Field names the request field that failed (a JSON pointer such as
// "/items/0/quantity"), when one did.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID Error about one request field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first Error in err's chain, EINTERNAL when
// there is none, and "" for a nil err.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return EINTERNAL
}
