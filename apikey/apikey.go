// Package apikey is eventflow's API keys: their scopes, the
// EVENTFLOW_API_KEYS setting that lists them by hash, making new ones, and
// checking the key a request presents.
//
// A key is a random string (efk_ and 43 base64url characters, 256 bits)
// that only its holder knows: eventflow keeps its SHA-256 hash. A plain
// hash suffices because the key is random; a slow password hash would only
// make every request slower.
//
// The setting is a list of entries separated by ';', each
//
//	name|sha256-hex|user-id|scope,scope
//
// name identifies the key in logs (letters, digits and ._-, up to 64);
// sha256-hex is the SHA-256 of the key's bytes as 64 hex digits; user-id is
// the user the key acts for, and may be empty only for an admin key; the
// scopes are those below. Fields are separated by '|' because user ids and
// scopes may contain ':'. Spaces around entries and fields are ignored.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/eventflow/eventflow"
)

// Scope is what a key may do.
type Scope string

const (
	OrdersWrite        Scope = "orders:write"        // create orders, change their status
	OrdersRead         Scope = "orders:read"         // read and list orders
	SubscriptionsWrite Scope = "subscriptions:write" // subscribe, change, pause, delete
	SubscriptionsRead  Scope = "subscriptions:read"  // read and list subscriptions
	DeliveriesRead     Scope = "deliveries:read"     // read the activity log
	DeliveriesWrite    Scope = "deliveries:write"    // retry dead deliveries
	// Admin may do everything, for every user, including subscriptions of
	// scope all.
	Admin Scope = "admin"
)

// Scopes lists every scope.
var Scopes = []Scope{OrdersWrite, OrdersRead, SubscriptionsWrite, SubscriptionsRead, DeliveriesRead, DeliveriesWrite, Admin}

// Prefix starts every key this package makes, so that secret scanners can
// recognise one that leaked.
const Prefix = "efk_"

// MaxKeyLen bounds a presented key; a longer one is not hashed at all.
const MaxKeyLen = 256

// Key is one configured key, without the key itself.
type Key struct {
	Name   string
	UserID string
	Scopes []Scope
	hash   [sha256.Size]byte
}

// Has reports whether the key grants scope; an admin key grants every one.
func (k Key) Has(s Scope) bool {
	return slices.Contains(k.Scopes, Admin) || slices.Contains(k.Scopes, s)
}

// Caller is who a request with the key is, for the services.
func (k Key) Caller() eventflow.Caller {
	return eventflow.Caller{UserID: k.UserID, Admin: k.Has(Admin)}
}

// Entry is the key's entry in the setting.
func (k Key) Entry() string {
	scopes := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = string(s)
	}
	return k.Name + "|" + hex.EncodeToString(k.hash[:]) + "|" + k.UserID + "|" + strings.Join(scopes, ",")
}

// String, GoString and LogValue show the key's name only, so that a key
// printed or logged by mistake shows no hash.
func (k Key) String() string       { return k.Name }
func (k Key) GoString() string     { return "apikey.Key(" + strconv.Quote(k.Name) + ")" }
func (k Key) LogValue() slog.Value { return slog.StringValue(k.Name) }

// Set is the configured keys.
type Set struct{ keys []Key }

// String, GoString and LogValue show the keys' names only.
func (s *Set) String() string       { return "[" + strings.Join(s.Names(), " ") + "]" }
func (s *Set) GoString() string     { return "apikey.Set" + s.String() }
func (s *Set) LogValue() slog.Value { return slog.AnyValue(s.Names()) }

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	hashPattern = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	// scopeLike is what an unknown scope must look like to be quoted in an
	// error: anything else may be a key pasted into the wrong field.
	scopeLike = regexp.MustCompile(`^[a-z]{1,20}(:[a-z]{1,20})?$`)
)

// Parse reads the setting. An empty setting is nil: access control is off.
// Errors name an entry by its position and name, never by its hash.
func Parse(setting string) (*Set, error) {
	if strings.TrimSpace(setting) == "" {
		return nil, nil
	}
	set := &Set{}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	n := 0
	for _, entry := range strings.Split(setting, ";") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		n++
		k, err := parseEntry(entry)
		if e := (*entryError)(nil); errors.As(err, &e) && e.name != "" {
			return nil, fmt.Errorf("entry %d (%s): %s", n, e.name, e.reason)
		} else if err != nil {
			return nil, fmt.Errorf("entry %d: %w", n, err)
		}
		if prev, dup := names[k.Name]; dup {
			return nil, fmt.Errorf("entries %d and %d are both named %q", prev, n, k.Name)
		}
		if prev, dup := hashes[k.hash]; dup {
			return nil, fmt.Errorf("entries %d and %d have the same hash", prev, n)
		}
		names[k.Name], hashes[k.hash] = n, n
		set.keys = append(set.keys, k)
	}
	if len(set.keys) == 0 {
		return nil, errors.New("holds no entry; leave it empty to turn access control off")
	}
	return set, nil
}

// entryError is what is wrong with one entry; name is empty when the name
// itself is wrong.
type entryError struct{ name, reason string }

func (e *entryError) Error() string { return e.reason }

// parseEntry reads one entry.
func parseEntry(entry string) (Key, error) {
	fields := strings.Split(entry, "|")
	if len(fields) != 4 {
		return Key{}, &entryError{reason: fmt.Sprintf("must be name|sha256-hex|user-id|scope,scope: 4 fields, not %d", len(fields))}
	}
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return parseFields(fields[0], fields[1], fields[2], fields[3])
}

// parseFields checks and reads the fields of one entry.
func parseFields(name, hash, user, scopes string) (Key, error) {
	switch {
	case strings.HasPrefix(name, Prefix):
		return Key{}, &entryError{reason: "the name looks like a key; the setting must never hold a key, only its hash"}
	case !namePattern.MatchString(name):
		return Key{}, &entryError{reason: "the name must be 1 to 64 letters, digits or ._- (starting with a letter or digit)"}
	}
	fail := func(format string, args ...any) (Key, error) {
		return Key{}, &entryError{name: name, reason: fmt.Sprintf(format, args...)}
	}
	k := Key{Name: name, UserID: user}
	switch {
	case strings.HasPrefix(hash, Prefix):
		return fail("the second field holds a key; it must hold the key's SHA-256 hash (eventflow apikey new prints the entry)")
	case !hashPattern.MatchString(hash):
		return fail("the hash must be 64 hex digits, the SHA-256 of the key")
	}
	hex.Decode(k.hash[:], []byte(strings.ToLower(hash)))
	if user != "" && !eventflow.ValidUserID(user) {
		return fail("the user id %s", eventflow.UserIDRule)
	}
	list, err := ParseScopes(scopes)
	if err != nil {
		return fail("%v", err)
	}
	k.Scopes = list
	if user == "" && !k.Has(Admin) {
		return fail("only an admin key may have no user id")
	}
	return k, nil
}

// ParseScopes reads a comma-separated list of scopes.
func ParseScopes(list string) ([]Scope, error) {
	var out []Scope
	for _, s := range strings.Split(list, ",") {
		scope := Scope(strings.TrimSpace(s))
		switch {
		case scope == "":
			continue
		case !slices.Contains(Scopes, scope):
			if scopeLike.MatchString(string(scope)) {
				return nil, fmt.Errorf("unknown scope %q (known: %s)", scope, knownScopes())
			}
			return nil, fmt.Errorf("unknown scope (known: %s)", knownScopes())
		case !slices.Contains(out, scope):
			out = append(out, scope)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("give at least one scope (%s)", knownScopes())
	}
	return out, nil
}

func knownScopes() string {
	names := make([]string, len(Scopes))
	for i, s := range Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Verify returns the key whose hash is the presented key's. It compares
// with every configured hash, in constant time each and without stopping
// at a match, so the time it takes says nothing about which key matched or
// how much of a hash did.
func (s *Set) Verify(presented string) (Key, bool) {
	if len(presented) == 0 || len(presented) > MaxKeyLen {
		return Key{}, false
	}
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range s.keys {
		if subtle.ConstantTimeCompare(s.keys[i].hash[:], sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Key{}, false
	}
	return s.keys[found], true
}

// Names lists the keys' names, for the startup log.
func (s *Set) Names() []string {
	names := make([]string, len(s.keys))
	for i, k := range s.keys {
		names[i] = k.Name
	}
	return names
}

// New makes a key: the key itself, to give to its holder once, and its
// configuration, whose Entry goes into the setting. The setting's rules
// apply to name, userID and scopes.
func New(name, userID string, scopes []Scope) (key string, k Key, err error) {
	var random [32]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", Key{}, fmt.Errorf("random key: %w", err)
	}
	key = Prefix + base64.RawURLEncoding.EncodeToString(random[:])
	list := make([]string, len(scopes))
	for i, s := range scopes {
		list[i] = string(s)
	}
	if k, err = parseFields(name, Hash(key), userID, strings.Join(list, ",")); err != nil {
		return "", Key{}, err
	}
	return key, k, nil
}

// Hash is the hex SHA-256 of a key, as the setting holds it.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
