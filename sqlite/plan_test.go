package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	// Bound values count: SQLite weighs a range against them when it plans.
	now := formatTime(time.Now())
	later := formatTime(time.Now().Add(time.Minute))
	for name, q := range map[string]struct {
		query string
		args  []any
	}{
		"claim": {claimQuery, []any{later, now, now, 500}},
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
			if strings.HasPrefix(step, "SCAN ") {
				t.Errorf("%s walks a whole table (%q); plan:\n%s", name, step, strings.Join(plan, "\n"))
			}
		}
	}
}
