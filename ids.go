package eventflow

import (
	"regexp"

	"github.com/google/uuid"
)

// userIDPattern is what a user id may be: eventflow does not own users, so
// it takes any id that is safe to store, log and put in a header.
var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@+-]{1,128}$`)

// UserIDRule says, for error messages, what ValidUserID accepts.
const UserIDRule = "must be 1 to 128 letters, digits or ._:@+-"

// ValidUserID reports whether s is an acceptable user id.
func ValidUserID(s string) bool { return userIDPattern.MatchString(s) }

// ValidUUID reports whether s is a UUID in its canonical lower-case form,
// the only form eventflow hands out.
func ValidUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}
