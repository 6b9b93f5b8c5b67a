package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventflow/eventflow/internal/backoff"
)

// sample is one operation of a load: when it started and how long it took.
type sample struct {
	start time.Time
	took  time.Duration
	err   bool
}

// recorder collects the samples of a load from many goroutines.
type recorder struct {
	mu      sync.Mutex
	samples []sample
	began   time.Time
	ended   time.Time
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

// op is one operation of a load; n numbers the operations from 0.
type op func(ctx context.Context, n int) error

// closedLoop runs op from clients goroutines back to back for d, or until
// limit operations started (0: no limit): the most the system takes.
func closedLoop(ctx context.Context, clients int, d time.Duration, limit int, do op) *recorder {
	r := &recorder{began: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if limit > 0 && n >= limit {
					return
				}
				start := time.Now()
				err := do(ctx, n)
				if ctx.Err() != nil && err != nil {
					return // cut by the end of the run, not a failure
				}
				r.add(sample{start: start, took: time.Since(start), err: err != nil})
			}
		})
	}
	wg.Wait()
	r.ended = time.Now()
	return r
}

// openLoop starts op at rate per second for d, whatever the answers: the
// load of users who do not wait for each other. At most maxInFlight run at
// once; an operation that finds none free is counted as an error, so an
// overloaded system shows as errors, not as a quietly lower rate.
func openLoop(ctx context.Context, rate float64, d time.Duration, maxInFlight int, do op) *recorder {
	r := &recorder{began: time.Now()}
	slots := make(chan struct{}, maxInFlight)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	for n := 0; ; n++ {
		at := r.began.Add(time.Duration(n) * interval)
		if at.Sub(r.began) >= d {
			break
		}
		if !backoff.Sleep(ctx, time.Until(at)) || ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			r.add(sample{start: at, err: true})
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			// Latency counts from the planned start: a late start is the
			// system's delay too.
			err := do(ctx, n)
			r.add(sample{start: at, took: time.Since(at), err: err != nil})
		})
	}
	wg.Wait()
	r.ended = time.Now()
	return r
}
