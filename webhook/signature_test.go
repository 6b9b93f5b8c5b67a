package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/webhook"
)

// The vector was computed outside Go, with
//
//	printf '%s' 'msg_2LJKn.1700000000.{"type":"orders.order.created","id":"e1"}' |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:31f290f6…2da4b0 -binary | base64
//
// where the hex key is the secret's base64 part decoded.
func TestSignVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_2LJKn"
		body   = `{"type":"orders.order.created","id":"e1"}`
		want   = "v1,GDHUm7Doju5mwzj6qHuLhouOVmmBugKu+ObXHqcYFE0="
	)
	ts := time.Unix(1700000000, 0)
	got, err := webhook.Sign(secret, id, ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}

	// And by hand, from the specification's recipe.
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "." + body))
	if byHand := "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil)); got != byHand {
		t.Errorf("Sign = %q, by hand %q", got, byHand)
	}

	// A secret without the prefix is the same key.
	if bare, _ := webhook.Sign(strings.TrimPrefix(secret, "whsec_"), id, ts, []byte(body)); bare != want {
		t.Errorf("Sign without prefix = %q", bare)
	}
}

func TestNewSecret(t *testing.T) {
	a, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := webhook.NewSecret()
	if a == b {
		t.Error("two secrets are equal")
	}
	raw, ok := strings.CutPrefix(a, "whsec_")
	key, err := base64.StdEncoding.DecodeString(raw)
	if !ok || err != nil || len(key) != 24 {
		t.Errorf("secret %q: want whsec_ and the base64 of 24 bytes", a)
	}
}

func signedHeader(t *testing.T, secret, id string, ts time.Time, body string) http.Header {
	t.Helper()
	sig, err := webhook.Sign(secret, id, ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestVerify(t *testing.T) {
	secret, _ := webhook.NewSecret()
	other, _ := webhook.NewSecret()
	now := time.Now()
	good := signedHeader(t, secret, "d1", now, testBody)
	if err := webhook.Verify(secret, good, []byte(testBody), time.Minute); err != nil {
		t.Fatalf("valid request: %v", err)
	}

	// Several signatures, as during a secret rotation: one must match.
	rotated := good.Clone()
	rotated.Set("webhook-signature", "v1a,ignored "+signedHeader(t, other, "d1", now, testBody).Get("webhook-signature")+
		" "+good.Get("webhook-signature"))
	if err := webhook.Verify(secret, rotated, []byte(testBody), time.Minute); err != nil {
		t.Errorf("rotated signatures: %v", err)
	}

	for name, tc := range map[string]struct {
		header http.Header
		body   string
	}{
		"tampered body":     {good, testBody + " "},
		"other secret":      {signedHeader(t, other, "d1", now, testBody), testBody},
		"other id":          {with(good, "webhook-id", "d2"), testBody},
		"shifted timestamp": {with(good, "webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), testBody},
		"stale":             {signedHeader(t, secret, "d1", now.Add(-2*time.Minute), testBody), testBody},
		"future":            {signedHeader(t, secret, "d1", now.Add(2*time.Minute), testBody), testBody},
		"no signature":      {with(good, "webhook-signature", ""), testBody},
		"no id":             {with(good, "webhook-id", ""), testBody},
		"bad timestamp":     {with(good, "webhook-timestamp", "yesterday"), testBody},
		"huge timestamp":    {with(good, "webhook-timestamp", "9223372036854775807"), testBody},
		"unversioned":       {with(good, "webhook-signature", strings.TrimPrefix(good.Get("webhook-signature"), "v1,")), testBody},
		"other version":     {with(good, "webhook-signature", "v2,"+strings.TrimPrefix(good.Get("webhook-signature"), "v1,")), testBody},
	} {
		err := webhook.Verify(secret, tc.header, []byte(tc.body), time.Minute)
		if !errors.Is(err, webhook.ErrUnverified) {
			t.Errorf("%s: got %v, want ErrUnverified", name, err)
		}
	}

	// The default tolerance is five minutes.
	old := signedHeader(t, secret, "d1", now.Add(-4*time.Minute), testBody)
	if err := webhook.Verify(secret, old, []byte(testBody), 0); err != nil {
		t.Errorf("4 minutes old with the default tolerance: %v", err)
	}
	if err := webhook.Verify("whsec_!!", good, []byte(testBody), 0); err == nil {
		t.Error("verified with an invalid secret")
	}
}

func with(h http.Header, key, value string) http.Header {
	h = h.Clone()
	if value == "" {
		h.Del(key)
	} else {
		h.Set(key, value)
	}
	return h
}
