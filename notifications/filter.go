package notifications

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/cel"

	"github.com/eventflow/eventflow/event"
)

// Filter is a compiled CEL expression over an event. The expression sees
//
//	type, source, subject, id  strings
//	time                       a timestamp
//	data                       the event's JSON data (an order: data.total,
//	                           data.currency, data.user_id, data.items …)
//
// and must yield a bool, e.g. `data.total >= 10000 && data.currency == "EUR"`.
type Filter struct {
	text string
	prg  cel.Program
}

// maxFilterLength bounds an expression; maxFilterCost bounds the work one
// evaluation may do, so no filter can stall the notifier.
const (
	maxFilterLength = 2000
	maxFilterCost   = 10_000
)

// filterEnv is the CEL environment filters are compiled in.
func newFilterEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("id", cel.StringType),
		cel.Variable("type", cel.StringType),
		cel.Variable("source", cel.StringType),
		cel.Variable("subject", cel.StringType),
		cel.Variable("time", cel.TimestampType),
		cel.Variable("data", cel.DynType),
	)
}

// Filters compiles filter expressions; one env serves them all.
type Filters struct{ env *cel.Env }

// NewFilters returns a filter compiler.
func NewFilters() (*Filters, error) {
	env, err := newFilterEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	return &Filters{env: env}, nil
}

// Compile checks and compiles an expression. The error says what is wrong
// in terms a person writing the filter can act on.
func (f *Filters) Compile(expr string) (*Filter, error) {
	if len(expr) > maxFilterLength {
		return nil, fmt.Errorf("at most %d characters", maxFilterLength)
	}
	if err := checkFilterText(expr); err != nil {
		return nil, err
	}
	ast, iss := f.env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(cel.BoolType) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("must yield a bool, not %s", ast.OutputType())
	}
	prg, err := f.env.Program(ast, cel.CostLimit(maxFilterCost))
	if err != nil {
		return nil, err
	}
	return &Filter{text: expr, prg: prg}, nil
}

// checkFilterText refuses what CEL would accept but no filter needs: invalid
// UTF-8, and control characters other than line feed and tab, even inside
// string literals (where CEL takes them raw). A NUL cannot be stored in
// PostgreSQL text, and a carriage return has no business in a value that is
// shown back to people; CEL's escapes (\x00, \r) say the same thing safely.
func checkFilterText(expr string) error {
	if !utf8.ValidString(expr) {
		return fmt.Errorf("not valid UTF-8")
	}
	for i, r := range expr {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') {
			return fmt.Errorf("control character %U at byte %d; write it as an escape in a string literal", r, i)
		}
	}
	return nil
}

// Match evaluates the filter on e. An evaluation error (a missing field, a
// type mismatch at run time, the cost limit) counts as no match, and is
// returned so that it can be recorded.
func (f *Filter) Match(e event.Event) (bool, error) {
	var data any
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return false, fmt.Errorf("event data: %w", err)
	}
	out, _, err := f.prg.Eval(map[string]any{
		"id":      e.ID,
		"type":    e.Type,
		"source":  e.Source,
		"subject": e.Subject,
		"time":    e.Time.UTC().Truncate(time.Microsecond),
		"data":    data,
	})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("filter yielded %v, not a bool", out.Value())
	}
	return b, nil
}
