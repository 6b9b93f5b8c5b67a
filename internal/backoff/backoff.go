// Package backoff spaces out retries: exponential growth with jitter, so
// that many retriers after one outage do not act in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jittered is base × 2^(attempt-1), at most limit, then jittered at random
// to between half of it and all of it. attempt counts from 1.
func Jittered(attempt int, base, limit time.Duration) time.Duration {
	d := base << min(max(attempt-1, 0), 30)
	if d <= 0 || d > limit {
		d = limit
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or until ctx ends; it reports whether it waited all of d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
