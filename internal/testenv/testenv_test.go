package testenv

import (
	"runtime"
	"testing"
)

// recorder stands in for the testing.TB a test gets, recording whether it
// was skipped or failed; like the real one, both end the calling goroutine.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()             {}
func (r *recorder) Skip(...any)         { r.skipped = true; runtime.Goexit() }
func (r *recorder) Fatal(...any)        { r.failed = true; runtime.Goexit() }
func (r *recorder) Logf(string, ...any) {}

// run calls Postgres with r on its own goroutine, as the testing package
// would, and returns what it returned.
func run(r *recorder) (url string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		url = Postgres(r)
	}()
	<-done
	return url
}

func TestPostgres(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		url, ci, full        string
		want                 string
		wantSkip, wantFailed bool
	}{
		{name: "set", url: "postgres://x", ci: "true", want: "postgres://x"},
		{name: "unset", wantSkip: true},
		{name: "unset in CI", ci: "true", wantFailed: true},
		{name: "unset in full run", full: "1", wantFailed: true},
		{name: "CI other than true", ci: "1", wantSkip: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EVENTFLOW_TEST_POSTGRES_URL", tc.url)
			t.Setenv("CI", tc.ci)
			t.Setenv("EVENTFLOW_TEST_FULL", tc.full)
			r := &recorder{TB: t}
			got := run(r)
			if got != tc.want || r.skipped != tc.wantSkip || r.failed != tc.wantFailed {
				t.Errorf("Postgres = %q, skipped %v, failed %v; want %q, %v, %v",
					got, r.skipped, r.failed, tc.want, tc.wantSkip, tc.wantFailed)
			}
			if Strict() != (tc.ci == "true" || tc.full == "1") {
				t.Errorf("Strict() = %v with CI=%q EVENTFLOW_TEST_FULL=%q", Strict(), tc.ci, tc.full)
			}
		})
	}
}
