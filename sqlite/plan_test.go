package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventflow/eventflow/notifications"
)

// TestHotQueriesUseIndexes pins the query plans of the statements that run
// all the time: none of them may walk a whole table, since the deliveries
// and inbox tables keep every delivery and event ever handled and a scan
// makes each call slower with the system's age.
func TestHotQueriesUseIndexes(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "eventflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Walking a partial index (of the pending or the dead deliveries) is
	// fine: it holds only the rows the query wants.
	partial := map[string]bool{}
	rows, err := db.write.QueryContext(t.Context(), `SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		partial[name] = true
	}
	rows.Close()
	// Bound values count: SQLite weighs a range against them when it plans.
	now := formatTime(time.Now())
	later := formatTime(time.Now().Add(time.Minute))
	for name, q := range map[string]plannedQuery{
		"claim":            {claimQuery, []any{later, now, now, 500}},
		"delivery counts":  {deliveryCountsQuery, nil},
		"pending subjects": {pendingSubjectsQuery, []any{`[["a", "b"], ["c", "d"]]`}},
		"dead deliveries":  deliveryPage(t, notifications.DeliveryFilter{Status: notifications.DeliveryDead, Limit: 50}),
	} {
		rows, err := db.write.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q.query, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if walksAll(step, partial) {
				t.Errorf("%s walks a whole table (%q); plan:\n%s", name, step, strings.Join(plan, "\n"))
			}
		}
	}
}

// walksAll reports whether a step of a query plan reads a whole table or a
// whole index that is not one of the partial ones (the rows of json_each
// are the statement's own argument, not a table).
func walksAll(step string, partial map[string]bool) bool {
	if !strings.HasPrefix(step, "SCAN ") || step == "SCAN CONSTANT ROW" || strings.Contains(step, " VIRTUAL TABLE ") {
		return false // one row, or the rows of a JSON argument
	}
	_, index, ok := strings.Cut(step, " INDEX ")
	return !ok || !partial[strings.Fields(index)[0]]
}

type plannedQuery struct {
	query string
	args  []any
}

func deliveryPage(t *testing.T, f notifications.DeliveryFilter) plannedQuery {
	query, args, err := deliveriesQuery(f)
	if err != nil {
		t.Fatal(err)
	}
	return plannedQuery{query, args}
}
