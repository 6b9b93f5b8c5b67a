package postgres

import (
	"bytes"
	"encoding/json"
	"testing"
)

// compactJSON must agree with encoding/json.Compact on valid JSON, the way
// jsonb prints it and otherwise.
func TestCompactJSON(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"a": 1, "b": [1, 2, {"c": null}], "d": true}`,
		`{"s": "spaces stay: , and \" quotes \\", "t": "\\\\", "u": "\\\" x"}`,
		` { "nested" : { "deep" : [ "a b" , "c\td" ] } } `,
		"{\n\t\"multi\":\r\n \"line\"\n}",
		`{"unicode": "caf\u00e9 ☕", "empty": ""}`,
		`"just a string"`,
		`[ 1.5e3 , -2 , "x" ]`,
	} {
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(in)); err != nil {
			t.Fatalf("json.Compact(%q): %v", in, err)
		}
		if got := compactJSON([]byte(in)); string(got) != want.String() {
			t.Errorf("compactJSON(%q) = %q, want %q", in, got, want.String())
		}
	}
}

func FuzzCompactJSON(f *testing.F) {
	f.Add(`{"a": "b \" c", "d": [1, 2]}`)
	f.Fuzz(func(t *testing.T, in string) {
		var want bytes.Buffer
		if json.Compact(&want, []byte(in)) != nil {
			return // only valid JSON is promised
		}
		if got := compactJSON([]byte(in)); string(got) != want.String() {
			t.Errorf("compactJSON(%q) = %q, want %q", in, got, want.String())
		}
	})
}
