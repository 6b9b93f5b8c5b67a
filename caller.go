package eventflow

// Caller is who asks a service for something: the user an API key acts for,
// and whether the key is an admin's. The HTTP API makes it from the
// request's key; the services take it as an argument, not from the context,
// so that every call says who is calling and a forgotten caller is a
// compile error rather than an open door. The zero Caller may act for
// nobody.
type Caller struct {
	// UserID is the user the caller acts for; empty for an admin key bound
	// to no user.
	UserID string
	// Admin may see and change every user's objects.
	Admin bool
}

// Owns reports whether the caller may see and change an object of userID.
func (c Caller) Owns(userID string) bool {
	return c.Admin || (c.UserID != "" && c.UserID == userID)
}

// UserFor is the user a request by the caller is about: the one asked for,
// or the caller's own when none was.
func (c Caller) UserFor(asked string) string {
	if asked == "" {
		return c.UserID
	}
	return asked
}

// ListUser is the user filter a listing by the caller runs with, given the
// one asked for. An admin's is as asked (empty lists every user's objects);
// anyone else's is always their own, and when they ask for another user's,
// ok is false: the listing is empty.
func (c Caller) ListUser(asked string) (user string, ok bool) {
	switch {
	case c.Admin:
		return asked, true
	case c.UserID == "" || (asked != "" && asked != c.UserID):
		return "", false
	}
	return c.UserID, true
}
