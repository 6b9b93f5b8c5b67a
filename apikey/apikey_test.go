package apikey_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/apikey"
)

func newKey(t *testing.T, name, user string, scopes ...apikey.Scope) (string, apikey.Key) {
	t.Helper()
	key, k, err := apikey.New(name, user, scopes)
	if err != nil {
		t.Fatal(err)
	}
	return key, k
}

// A key made by New is let in by the entry it prints, as the key it was
// made for, and any other string is not.
func TestNewKeyVerifiesAgainstItsEntry(t *testing.T) {
	aliceKey, alice := newKey(t, "alice-app", "alice", apikey.OrdersRead, apikey.OrdersWrite)
	opsKey, ops := newKey(t, "ops", "", apikey.Admin)
	if !strings.HasPrefix(aliceKey, apikey.Prefix) || len(aliceKey) != len(apikey.Prefix)+43 || aliceKey == opsKey {
		t.Fatalf("keys %q, %q", aliceKey, opsKey)
	}
	if strings.Contains(alice.Entry(), aliceKey) || !strings.Contains(alice.Entry(), apikey.Hash(aliceKey)) {
		t.Fatalf("entry %q must hold the hash, not the key", alice.Entry())
	}
	set, err := apikey.Parse(" " + alice.Entry() + " ; " + ops.Entry() + ";")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := set.Verify(aliceKey)
	if !ok || got.Name != "alice-app" || got.Caller() != (eventflow.Caller{UserID: "alice"}) {
		t.Fatalf("alice's key: %+v %v", got, ok)
	}
	if !got.Has(apikey.OrdersWrite) || got.Has(apikey.SubscriptionsRead) || got.Has(apikey.Admin) {
		t.Fatalf("alice's scopes: %v", got.Scopes)
	}
	got, ok = set.Verify(opsKey)
	if !ok || got.Caller() != (eventflow.Caller{Admin: true}) {
		t.Fatalf("ops key: %+v %v", got, ok)
	}
	for _, s := range apikey.Scopes {
		if !got.Has(s) {
			t.Errorf("an admin key lacks %s", s)
		}
	}
	for _, wrong := range []string{"", aliceKey[:len(aliceKey)-1], aliceKey + "x", strings.ToUpper(aliceKey), apikey.Hash(aliceKey), strings.Repeat("a", apikey.MaxKeyLen+1)} {
		if k, ok := set.Verify(wrong); ok {
			t.Errorf("Verify(%q) let in %s", wrong, k.Name)
		}
	}
	if names := set.Names(); !slices.Equal(names, []string{"alice-app", "ops"}) {
		t.Fatalf("names %v", names)
	}
}

// A key anyone can make (printf %s "$KEY" | sha256sum) works the same.
func TestHandMadeEntry(t *testing.T) {
	const key = "correct-horse-battery-staple"
	set, err := apikey.Parse("mine|" + strings.ToUpper(apikey.Hash(key)) + "|tenant:42|subscriptions:read, deliveries:read,deliveries:read")
	if err != nil {
		t.Fatal(err)
	}
	k, ok := set.Verify(key)
	if !ok || k.UserID != "tenant:42" || !slices.Equal(k.Scopes, []apikey.Scope{apikey.SubscriptionsRead, apikey.DeliveriesRead}) {
		t.Fatalf("%+v %v", k, ok)
	}
	if got := apikey.Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash is not hex SHA-256: %s", got)
	}
}

// Every malformed setting is refused with a reason that names the entry,
// and never shows a hash or a key that was put where it does not belong.
func TestParseRefusesMalformedSettings(t *testing.T) {
	key, _ := newKey(t, "x", "u", apikey.OrdersRead)
	hash := apikey.Hash(key)
	other := apikey.Hash("another key")
	cases := map[string]struct{ setting, want string }{
		"only separators":      {" ; ;", "holds no entry"},
		"too few fields":       {"a|" + hash + "|u", "4 fields, not 3"},
		"too many fields":      {"a|" + hash + "|u|orders:read|x", "4 fields, not 5"},
		"colon separated":      {"a:" + hash + ":u:orders:read", "4 fields, not 1"},
		"empty name":           {"|" + hash + "|u|orders:read", "the name must be"},
		"bad name":             {"a b|" + hash + "|u|orders:read", "the name must be"},
		"key as name":          {key + "|" + hash + "|u|orders:read", "the name looks like a key"},
		"key as hash":          {"a|" + key + "|u|orders:read", "holds a key"},
		"short hash":           {"a|" + hash[:63] + "|u|orders:read", "64 hex digits"},
		"non-hex hash":         {"a|" + strings.Repeat("g", 64) + "|u|orders:read", "64 hex digits"},
		"bad user":             {"a|" + hash + "|al ice|orders:read", "the user id must be"},
		"no scope":             {"a|" + hash + "|u|", "at least one scope"},
		"unknown scope":        {"a|" + hash + "|u|orders:delete", `unknown scope "orders:delete"`},
		"no user, not admin":   {"a|" + hash + "||orders:read", "only an admin key may have no user id"},
		"duplicate name":       {"a|" + hash + "|u|orders:read;a|" + other + "|v|orders:read", `entries 1 and 2 are both named "a"`},
		"duplicate hash":       {"a|" + hash + "|u|orders:read;b|" + hash + "|v|orders:read", "entries 1 and 2 have the same hash"},
		"second entry is bad":  {"a|" + hash + "|u|orders:read;b|" + other + "|v|nope", "entry 2 (b): unknown scope"},
		"key in scopes":        {"a|" + hash + "|u|" + key, "unknown scope ("},
		"key in scopes, short": {"a|" + hash + "|u|" + key[:20], "unknown scope ("},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			set, err := apikey.Parse(c.setting)
			if err == nil {
				t.Fatalf("accepted: %v", set.Names())
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q; want it to say %q", err, c.want)
			}
			for _, secret := range []string{key, key[:20], hash, other} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
		})
	}
	if set, err := apikey.Parse("  "); set != nil || err != nil {
		t.Fatalf("an empty setting: %v %v; want nil, nil (access control off)", set, err)
	}
}

func TestNewRefusesWhatTheSettingWould(t *testing.T) {
	for name, c := range map[string]struct {
		name, user string
		scopes     []apikey.Scope
	}{
		"no name":            {"", "u", []apikey.Scope{apikey.OrdersRead}},
		"separator in name":  {"a|b", "u", []apikey.Scope{apikey.OrdersRead}},
		"separator in user":  {"a", "u|v", []apikey.Scope{apikey.OrdersRead}},
		"no scopes":          {"a", "u", nil},
		"unknown scope":      {"a", "u", []apikey.Scope{"everything"}},
		"no user, not admin": {"a", "", []apikey.Scope{apikey.OrdersRead}},
	} {
		if _, _, err := apikey.New(c.name, c.user, c.scopes); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A key or set printed or logged by mistake shows names, never hashes.
func TestPrintingShowsNamesOnly(t *testing.T) {
	key, k := newKey(t, "alice-app", "alice", apikey.OrdersRead)
	set, err := apikey.Parse(k.Entry())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := set.Verify(key)
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("oops", "key", got, "set", set, "keys", []apikey.Key{got})
	printed := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", got, got, got, set, set, set, set) + log.String()
	if !strings.Contains(printed, "alice-app") {
		t.Fatalf("printed: %s", printed)
	}
	sum := sha256.Sum256([]byte(key))
	for _, secret := range []string{key, apikey.Hash(key), fmt.Sprint(sum[:4])[1:12], base64.StdEncoding.EncodeToString(sum[:])} {
		if strings.Contains(printed, secret) {
			t.Fatalf("printed %q: %s", secret, printed)
		}
	}
}
