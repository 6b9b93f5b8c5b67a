package orders

import (
	"math"
	"math/bits"

	"golang.org/x/text/currency"
)

// MaxAmount bounds every amount, in minor units: ten trillion units of any
// currency is no real order, and the bound keeps sums far from overflow.
const MaxAmount int64 = 1_000_000_000_000_000

// validCurrency reports whether code is an ISO 4217 currency code for money
// (the testing and no-currency codes are refused).
func validCurrency(code string) bool {
	if len(code) != 3 || code == "XXX" || code == "XTS" {
		return false
	}
	for _, r := range code {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	_, err := currency.ParseISO(code)
	return err == nil
}

// lineTotal returns quantity × unitPrice, or false when it exceeds MaxAmount.
func lineTotal(quantity, unitPrice int64) (int64, bool) {
	if quantity < 0 || unitPrice < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(quantity), uint64(unitPrice))
	if hi != 0 || lo > uint64(MaxAmount) || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}
