package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers and secret format of the Standard Webhooks specification,
// which receivers' libraries in most languages already verify.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"

	secretPrefix = "whsec_"
	// DefaultTolerance is how far Verify lets a timestamp stray from now
	// when given no tolerance: long enough for clock skew and a slow
	// network, short enough to make a captured request useless soon.
	DefaultTolerance = 5 * time.Minute
)

// ErrUnverified wraps every reason Verify rejects a request for.
var ErrUnverified = errors.New("webhook not verified")

// NewSecret returns a fresh signing secret: "whsec_" and the base64 of 24
// random bytes.
func NewSecret() (string, error) {
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// Sign returns the webhook-signature header value for a request: "v1," and
// the base64 of HMAC-SHA256 over id "." unix-seconds "." body, keyed with
// the secret's decoded bytes.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

// Verify checks a received request against the secret: the webhook-id,
// webhook-timestamp and webhook-signature headers must be present, the
// timestamp within tolerance of now (DefaultTolerance when tolerance is not
// positive), and one of the space-separated signatures a v1 signature of
// this id, timestamp and body. Every failure wraps ErrUnverified.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	key, err := decodeSecret(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s, %s or %s header", ErrUnverified, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrUnverified, tsText)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if skew := time.Now().Unix() - ts; math.Abs(float64(skew)) > tolerance.Seconds() {
		return fmt.Errorf("%w: timestamp is %ds off, more than the %v allowed", ErrUnverified, skew, tolerance)
	}
	want := mac(key, id, ts, body)
	for sig := range strings.FieldsSeq(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a, asymmetric) are not ours
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching v1 signature", ErrUnverified)
}

func mac(key []byte, id string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// decodeSecret takes a secret with or without the "whsec_" prefix, as
// Standard Webhooks libraries do.
func decodeSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook secret: not whsec_ and base64: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("webhook secret: empty")
	}
	return key, nil
}
