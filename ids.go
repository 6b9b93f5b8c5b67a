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

// MaxPageSize bounds a page of any listing; DefaultPageSize is a page when
// the caller gives no limit.
const (
	MaxPageSize     = 200
	DefaultPageSize = 50
)

// PageParams checks the parameters every listing shares: the user filter,
// the cursor (an id from a previous page) and the limit, which becomes
// DefaultPageSize when zero.
func PageParams(userID, cursor string, limit int) (int, error) {
	switch {
	case userID != "" && !ValidUserID(userID):
		return 0, FieldError("user_id", UserIDRule)
	case cursor != "" && !ValidUUID(cursor):
		return 0, FieldError("cursor", "is not a cursor this API returned")
	case limit < 0 || limit > MaxPageSize:
		return 0, FieldError("limit", "must be between 1 and %d", MaxPageSize)
	case limit == 0:
		return DefaultPageSize, nil
	}
	return limit, nil
}
