package orders

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/eventflow/eventflow"
)

// Limits on a create request. They keep one order to a size that fits an
// email and a Kafka record comfortably.
const (
	MaxItems         = 100
	MaxQuantity      = 1_000_000
	MaxNameLength    = 200
	MaxCommentLength = 1000
)

var (
	skuPattern = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,64}$`)
	// Idempotency keys are opaque to us; the bound keeps them indexable and
	// the character set keeps them out of trouble in logs and headers.
	idempotencyKeyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)
)

// validateCreate checks every field of req, naming the first that fails as a
// JSON pointer into the request body.
func validateCreate(req CreateRequest) error {
	if !eventflow.ValidUserID(req.UserID) {
		return eventflow.FieldError("/user_id", eventflow.UserIDRule)
	}
	if !validCurrency(req.Currency) {
		return eventflow.FieldError("/currency", "must be an ISO 4217 currency code such as EUR")
	}
	if len(req.Items) == 0 && req.Total == nil {
		return eventflow.FieldError("/items", "give items, or a total")
	}
	if len(req.Items) > MaxItems {
		return eventflow.FieldError("/items", "at most %d items", MaxItems)
	}
	for i, it := range req.Items {
		field := fmt.Sprintf("/items/%d/", i)
		switch {
		case !skuPattern.MatchString(it.SKU):
			return eventflow.FieldError(field+"sku", "must be 1 to 64 letters, digits or ._/-")
		case !validText(it.Name, MaxNameLength, false) || strings.TrimSpace(it.Name) == "":
			return eventflow.FieldError(field+"name", "must be 1 to %d printable characters on one line", MaxNameLength)
		case it.Quantity < 1 || it.Quantity > MaxQuantity:
			return eventflow.FieldError(field+"quantity", "must be between 1 and %d", MaxQuantity)
		case it.UnitPrice < 0 || it.UnitPrice > MaxAmount:
			return eventflow.FieldError(field+"unit_price", "must be between 0 and %d minor units", MaxAmount)
		}
	}
	if req.Total != nil && (*req.Total < 0 || *req.Total > MaxAmount) {
		return eventflow.FieldError("/total", "must be between 0 and %d minor units", MaxAmount)
	}
	if !validText(req.Comment, MaxCommentLength, true) {
		return eventflow.FieldError("/comment", "must be at most %d printable characters", MaxCommentLength)
	}
	return nil
}

// orderTotal is the sum of req's items, or req.Total when there are none. A
// total given beside items must equal their sum.
func orderTotal(req CreateRequest) (int64, error) {
	if len(req.Items) == 0 {
		return *req.Total, nil
	}
	var sum int64
	for i, it := range req.Items {
		line, ok := lineTotal(it.Quantity, it.UnitPrice)
		if !ok || sum+line > MaxAmount {
			return 0, eventflow.FieldError(fmt.Sprintf("/items/%d", i), "the order's total would exceed %d minor units", MaxAmount)
		}
		sum += line
	}
	if req.Total != nil && *req.Total != sum {
		return 0, eventflow.FieldError("/total", "is %d but the items add up to %d", *req.Total, sum)
	}
	return sum, nil
}

// validText reports whether s is valid UTF-8 of at most max characters with
// no control characters; multiline allows line feeds and tabs (never a
// carriage return, so no text can smuggle a header line into an email).
func validText(s string, max int, multiline bool) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

func validateIdempotencyKey(key string) error {
	if !idempotencyKeyPattern.MatchString(key) {
		return eventflow.FieldError("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
	}
	return nil
}
