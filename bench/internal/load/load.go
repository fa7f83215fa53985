// Package load drives closed-loop load for the bench commands: c workers
// call a function n times in all, each call timed.
package load

import (
	"log"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Run calls f(i) for i in [0, n) from c concurrent workers and returns the
// calls per second and each call's latency, sorted. An error from f stops
// the program: a benchmark whose calls fail measures nothing.
func Run(c, n int, f func(i int) error) (rate float64, sorted []time.Duration) {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := f(i); err != nil {
					log.Fatal(err)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	rate = float64(n) / time.Since(start).Seconds()
	slices.Sort(lat)
	return rate, lat
}

// Pct returns the p-th percentile of sorted latencies, rounded to the
// microsecond.
func Pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100].Round(time.Microsecond)
}
