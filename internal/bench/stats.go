package bench

import (
	"math"
	"slices"
	"time"
)

// Latency is a latency distribution, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func latencyOf(ds []time.Duration) *Latency {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return &Latency{Count: len(s), P50: ms(quantile(s, 0.50)), P90: ms(quantile(s, 0.90)),
		P99: ms(quantile(s, 0.99)), Max: ms(s[len(s)-1])}
}

// quantile of sorted s, by the nearest-rank method.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }

// round keeps three significant decimals: enough for any figure we print.
func round(f float64) float64 {
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return f
	}
	scale := math.Pow(10, 3-math.Ceil(math.Log10(math.Abs(f))))
	if scale < 1 {
		return math.Round(f)
	}
	return math.Round(f*scale) / scale
}

// Point is one second of a run: operations completed in it and the latency
// of those.
type Point struct {
	T    float64 `json:"t_s"` // seconds since the run began
	Rate float64 `json:"rate_per_s"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
}

// timed is one completed operation: when it ended and how long it took.
type timed struct {
	end  time.Time
	took time.Duration
}

// seriesOf buckets operations into seconds since began.
func seriesOf(began time.Time, ops []timed) []Point {
	if len(ops) == 0 {
		return nil
	}
	var buckets [][]time.Duration
	for _, o := range ops {
		i := max(0, int(o.end.Sub(began)/time.Second))
		for len(buckets) <= i {
			buckets = append(buckets, nil)
		}
		buckets[i] = append(buckets[i], o.took)
	}
	points := make([]Point, len(buckets))
	for i, b := range buckets {
		points[i] = Point{T: float64(i + 1), Rate: float64(len(b))}
		if l := latencyOf(b); l != nil {
			points[i].P50, points[i].P99 = l.P50, l.P99
		}
	}
	return points
}

// summary is what a load did: its rate of successful operations and their
// latency, second by second too.
type summary struct {
	ok, failed int
	rate       float64 // successful operations per second
	latency    *Latency
	series     []Point
}

func (r *recorder) summary() summary {
	var (
		s    summary
		lats []time.Duration
		ops  []timed
	)
	for _, x := range r.samples {
		if x.err {
			s.failed++
			continue
		}
		s.ok++
		lats = append(lats, x.took)
		ops = append(ops, timed{end: x.start.Add(x.took), took: x.took})
	}
	if elapsed := r.ended.Sub(r.began).Seconds(); elapsed > 0 {
		s.rate = round(float64(s.ok) / elapsed)
	}
	s.latency = latencyOf(lats)
	s.series = seriesOf(r.began, ops)
	return s
}
