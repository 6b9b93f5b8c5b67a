package notifications

import (
	"strings"
	"testing"
	"time"
)

// A filter may span lines, but holds no other control character, even in a
// string literal where CEL would take it: a NUL cannot be stored in
// PostgreSQL, and escapes say the same thing safely.
func TestFilterRefusesControlCharacters(t *testing.T) {
	filters, err := NewFilters()
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"data.total > 0 &&\n\tdata.currency == \"EUR\"", `data.comment == "\x00\r\n"`} {
		if _, err := filters.Compile(ok); err != nil {
			t.Errorf("Compile(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"data.comment == \"a\x00b\"", "true\r\n", "data.comment == \"\x1b[2J\"", "true\u2028", "type == \"\xff\""} {
		if _, err := filters.Compile(bad); err == nil {
			t.Errorf("Compile(%q) accepted", bad)
		}
	}
}

// Matching takes time linear in the type, however many "#" a pattern has.
func TestPatternMatchIsLinear(t *testing.T) {
	p, err := ParsePattern("#.#.#.#.#.#.#.#.#.x")
	if err != nil {
		t.Fatal(err)
	}
	typ := strings.Repeat("a.", 10_000) + "y"
	start := time.Now()
	if p.Match(typ) || !p.Match(typ+".x") {
		t.Fatal("wrong answer")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v", took)
	}
}

// An email address is a plain address: no display name, no comment, no
// group, no second address, no domain literal that would let the mail
// server relay to an address of the sender's choosing.
func TestValidateEmail(t *testing.T) {
	for _, ok := range []string{"alice@example.com", "a.b+c@example.co.uk", "o'brien@example.com", "名前@example.jp"} {
		if err := validateEmail(ok); err != nil {
			t.Errorf("validateEmail(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"Alice <alice@example.com>", "<alice@example.com>", "alice@example.com (Alice)",
		"a@example.com, b@example.com", "all: a@example.com;", "alice@[127.0.0.1]", "alice@[IPv6:::1]",
		"alice@example.com\r\nBcc: v@example.com", "alice@example.com\n", "\"a b\"@example.com", "alice"} {
		if err := validateEmail(bad); err == nil {
			t.Errorf("validateEmail(%q) accepted", bad)
		}
	}
}
