package kernels

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// TestParallelFor checks that the ranges cover [0, n) exactly once, also
// when calls nest (the caller works too, so nesting cannot deadlock).
func TestParallelFor(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
		hits := make([]atomic.Int32, n)
		parallelFor(n, func(lo, hi int) {
			if lo < 0 || hi > n || lo >= hi {
				t.Errorf("n=%d: bad range [%d, %d)", n, lo, hi)
				return
			}
			for i := lo; i < hi; i++ {
				// Nested calls over a small inner range.
				parallelFor(3, func(a, b int) {
					for range b - a {
						hits[i].Add(1)
					}
				})
			}
		})
		for i := range hits {
			if got := hits[i].Load(); got != 3 {
				t.Fatalf("n=%d: item %d visited %d times, want 3", n, i, got)
			}
		}
	}
}

// TestSpreadRows checks that the ranges cover [0, rows) exactly once,
// on the caller for small arrays and on the pool for large ones.
func TestSpreadRows(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, c := range []struct{ rows, cols int }{{0, 5}, {1, 1 << 20}, {7, 3}, {1000, 49}, {40000, 49}} {
		hits := make([]atomic.Int32, c.rows)
		var calls atomic.Int32
		SpreadRows(c.rows, c.cols, func(lo, hi int) {
			if lo < 0 || hi > c.rows || lo >= hi {
				t.Errorf("%dx%d: bad range [%d, %d)", c.rows, c.cols, lo, hi)
				return
			}
			calls.Add(1)
			for i := lo; i < hi; i++ {
				hits[i].Add(1)
			}
		})
		for i := range hits {
			if got := hits[i].Load(); got != 1 {
				t.Fatalf("%dx%d: row %d visited %d times", c.rows, c.cols, i, got)
			}
		}
		if small := c.rows*c.cols < parallelMinWork; small && c.rows > 0 && calls.Load() != 1 {
			t.Errorf("%dx%d: %d calls, want one on the caller", c.rows, c.cols, calls.Load())
		}
		if large := c.rows >= 2 && c.rows*c.cols >= parallelMinWork; large && calls.Load() < 2 {
			t.Errorf("%dx%d: %d calls, want the rows cut into chunks for the pool", c.rows, c.cols, calls.Load())
		}
	}
}
