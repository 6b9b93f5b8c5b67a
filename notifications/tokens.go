package notifications

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"github.com/google/uuid"
)

// Tokens signs and checks unsubscribe tokens. A token is the subscription id
// and an HMAC of it under a secret key: it names one subscription, and
// nobody without the key can make one for another.
type Tokens struct{ key []byte }

// NewTokens returns Tokens signing with key (at least 32 random bytes).
func NewTokens(key []byte) *Tokens { return &Tokens{key: key} }

const tokenMACLen = 16

func (t *Tokens) mac(id []byte) []byte {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte("eventflow unsubscribe v1\x00"))
	h.Write(id)
	return h.Sum(nil)[:tokenMACLen]
}

// Token returns the unsubscribe token of a subscription.
func (t *Tokens) Token(subscriptionID string) string {
	id := uuid.MustParse(subscriptionID)
	return base64.RawURLEncoding.EncodeToString(append(id[:], t.mac(id[:])...))
}

// Parse returns the subscription id a token names, if the token is genuine.
func (t *Tokens) Parse(token string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 16+tokenMACLen {
		return "", false
	}
	if !hmac.Equal(raw[16:], t.mac(raw[:16])) {
		return "", false
	}
	id, err := uuid.FromBytes(raw[:16])
	if err != nil {
		return "", false
	}
	return id.String(), true
}
